"""The data model shared by the static scanner and the runtime profiler.

Everything that finds a problem produces :class:`Finding` objects; they are
collected in a :class:`ScanReport` (static scans) or a ``LoopReport`` (runtime
profiles, see :mod:`async_expert_ext.loop`). Renderers, the memory file and the
CLI read only these types.

This module imports only the standard library. pandas is imported lazily by
:meth:`ScanReport.to_frame`.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "Severity",
    "Confidence",
    "Section",
    "Finding",
    "ScanReport",
    "FINDING_COLUMNS",
    "KINDS",
    "LoopReport",
    "TASK_COLUMNS",
    "BLOCKING_COLUMNS",
    "CALLBACK_COLUMNS",
    "LAG_COLUMNS",
    "LOCK_COLUMNS",
    "LOG_COLUMNS",
]


class Severity(str, enum.Enum):
    """How bad a finding is. Ordered: ``CRITICAL > WARNING > INFO``."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """2 for critical, 1 for warning, 0 for info."""
        return {"critical": 2, "warning": 1, "info": 0}[self.value]

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """Parse ``"critical"``/``"warning"``/``"info"`` (any case).

        Raises:
            ValueError: for any other value.
        """
        if isinstance(value, Severity):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(
                f"unknown severity {value!r}; use one of: critical, warning, info"
            ) from None

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


class Confidence(str, enum.Enum):
    """How sure the rule is that the finding is real."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


class Section(str, enum.Enum):
    """The report part a finding belongs to."""

    CRITICAL_ISSUES = "critical-issues"
    ASYNC_PATTERNS = "async-patterns"
    FASTAPI = "fastapi"
    ERROR_HANDLING = "error-handling"
    CONCURRENCY = "concurrency"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


#: The shared vocabulary for :attr:`Finding.kind` (see the corpus README), plus
#: the kinds this tool adds (``syntax-error``, the info hints).
KINDS: dict[str, str] = {
    "blocking-call-in-async": "a call that blocks the event loop thread, directly or through sync helpers",
    "cpu-bound-in-async": "long pure-Python or C computation on the loop thread",
    "never-awaited": "a coroutine created and never awaited",
    "fire-and-forget-task": "a task whose only reference is dropped, so it can be garbage-collected mid-flight",
    "task-exception-never-retrieved": "a task that failed and nobody looked at its exception",
    "leaked-task": "a task still pending when its owner finished",
    "cancelled-error-swallowed": "cancellation caught and not re-raised",
    "lock-held-across-await": "an asyncio lock held while awaiting slow I/O (contention)",
    "lock-not-released": "acquire() without a guaranteed release",
    "sync-lock-in-async": "a threading lock taken on the loop thread or held across an await",
    "deadlock": "tasks waiting on each other, or the loop waiting on itself",
    "gather-partial-failure": "gather siblings left running after one failed",
    "missing-timeout": "an await on network or queue I/O with no timeout",
    "event-loop-already-running": "asyncio.run / run_until_complete inside a running loop",
    "unclosed-session": "an async client or session that is never closed",
    "threadsafe-misuse": "loop methods called from another thread",
    "executor-exhaustion": "the default executor or threadpool saturated, work queued",
    "sync-endpoint-threadpool": "sync endpoints saturating FastAPI/Starlette's threadpool",
    "basehttpmiddleware": "BaseHTTPMiddleware semantics that break contextvars, disconnects or streaming",
    "async-generator-not-closed": "an async generator abandoned without aclose()",
    "cross-loop-resource": "an object bound to one event loop used from another",
    "slow-endpoint": "an endpoint whose latency is inflated by another one",
    "busy-wait": "a loop polling a flag with asyncio.sleep instead of waiting on an Event",
    "timeout-without-await": "a timeout block with no await inside, so it can never fire",
    "get-event-loop-in-coroutine": "asyncio.get_event_loop() inside a coroutine",
    "async-without-await": "an async def that never awaits",
    "fastapi-pattern": "a FastAPI/Starlette usage that costs performance or correctness",
    "syntax-error": "the file could not be parsed",
}

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _tuple(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


_WS = re.compile(r"\s+")
_TRAILING_COMMENT = re.compile(r"\s+#.*$")


def normalise_source_line(text: str) -> str:
    """Normalise a source line for fingerprinting: strip comments and collapse whitespace."""
    text = _TRAILING_COMMENT.sub("", text.strip())
    return _WS.sub(" ", text).strip()


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem, static or runtime.

    Attributes:
        code: stable rule id, such as ``"AEX101"`` (static) or ``"AEX9xx"`` (runtime).
        kind: a key of :data:`KINDS`, e.g. ``"blocking-call-in-async"``.
        severity: :class:`Severity`.
        section: :class:`Section`, the report part it is shown in.
        path: the file path, or a cell label such as ``"In[5]"`` / ``"<cell>"``.
        line: 1-based line number (0 when unknown).
        col: 0-based column offset.
        end_line: last line of the offending node (``>= line``).
        symbol: the enclosing function or class (``"Class.method"``), ``""`` at module level.
        message: one-line description of this occurrence.
        explanation: why it hurts, in 1-3 sentences.
        fix: what to do instead, in one sentence.
        fix_example: before/after code (``# before`` ... ``# after`` ...).
        references: documentation URLs.
        confidence: :class:`Confidence`.
        call_chain: for interprocedural findings, the frames from the call site down
            to the blocking call, each ``"qualname (path:line)"``.
        source: ``"static"`` or ``"runtime"``.
        snippet: the offending source line (used for fingerprints and excerpts).
        extra: free-form, JSON-serialisable measures (e.g. ``{"blocked_ms": 612.0}``).
    """

    code: str
    kind: str
    severity: Severity
    message: str
    path: str = ""
    line: int = 0
    col: int = 0
    end_line: int = 0
    symbol: str = ""
    section: Section = Section.ASYNC_PATTERNS
    explanation: str = ""
    fix: str = ""
    fix_example: str = ""
    references: tuple[str, ...] = ()
    confidence: Confidence = Confidence.HIGH
    call_chain: tuple[str, ...] = ()
    source: str = "static"
    snippet: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        object.__setattr__(self, "section", Section(self.section))
        object.__setattr__(self, "confidence", Confidence(self.confidence))
        object.__setattr__(self, "references", _tuple(self.references))
        object.__setattr__(self, "call_chain", _tuple(self.call_chain))
        if self.end_line < self.line:
            object.__setattr__(self, "end_line", self.line)

    @property
    def location(self) -> str:
        """``path:line`` (``In[5]:3`` for notebook cells); ``"?"`` when unknown."""
        if not self.path:
            return str(self.line) if self.line else "?"
        return f"{self.path}:{self.line}" if self.line else self.path

    @property
    def fingerprint(self) -> str:
        """A stable id that survives edits moving the line: a hash of kind, path,
        symbol and the normalised source line (not the line number)."""
        path = self.path
        if path.startswith("In[") or path.startswith("<"):
            path = "<cell>"
        key = "\x1f".join((self.kind, path, self.symbol, normalise_source_line(self.snippet)))
        return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]

    def sort_key(self) -> tuple:
        """Report order: critical first, then path, line, column and code."""
        return (_SEVERITY_ORDER[self.severity.value], self.path, self.line, self.col, self.code)

    def replace(self, **changes: Any) -> Finding:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; enum fields become their string values."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        out["fingerprint"] = self.fingerprint
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`; unknown keys (such as ``fingerprint``) are ignored.

        Raises:
            TypeError: when a required field (code, kind, severity, message) is missing.
            ValueError: when severity, section or confidence has an unknown value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


#: Columns of :meth:`ScanReport.to_frame`, with their pandas dtypes.
FINDING_COLUMNS: dict[str, str] = {
    "code": "string",
    "kind": "category",
    "severity": "category",  # ordered: info < warning < critical
    "section": "category",
    "path": "string",
    "line": "int64",
    "col": "int64",
    "end_line": "int64",
    "symbol": "string",
    "message": "string",
    "explanation": "string",
    "fix": "string",
    "fix_example": "string",
    "references": "object",  # tuple[str, ...]
    "confidence": "category",
    "call_chain": "object",  # tuple[str, ...]
    "source": "category",
    "snippet": "string",
    "fingerprint": "string",
}


def findings_frame(findings: Sequence[Finding]) -> Any:
    """One row per finding, columns and dtypes as in :data:`FINDING_COLUMNS`."""
    import pandas as pd

    rows = []
    for f in findings:
        rows.append(
            {
                "code": f.code,
                "kind": f.kind,
                "severity": f.severity.value,
                "section": f.section.value,
                "path": f.path,
                "line": f.line,
                "col": f.col,
                "end_line": f.end_line,
                "symbol": f.symbol,
                "message": f.message,
                "explanation": f.explanation,
                "fix": f.fix,
                "fix_example": f.fix_example,
                "references": f.references,
                "confidence": f.confidence.value,
                "call_chain": f.call_chain,
                "source": f.source,
                "snippet": f.snippet,
                "fingerprint": f.fingerprint,
            }
        )
    frame = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    for col, dtype in FINDING_COLUMNS.items():
        if dtype == "category":
            if col == "severity":
                frame[col] = pd.Categorical(
                    frame[col], categories=["info", "warning", "critical"], ordered=True
                )
            else:
                frame[col] = frame[col].astype("category")
        elif dtype != "object":
            frame[col] = frame[col].astype(dtype)
    return frame


@dataclass
class ScanReport:
    """The result of a static scan.

    Attributes:
        findings: sorted by severity (critical first), then path and line.
        files_scanned: the paths (or cell labels) that were parsed.
        errors: one-line notes on what could not be scanned (unreadable, binary, huge).
        seconds: wall time of the scan, in seconds.
        target: what was scanned, as the user named it.
    """

    findings: list[Finding] = field(default_factory=list)
    files_scanned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    target: str = ""
    #: the source text of each scanned file or cell, by path; used for excerpts.
    #: Not serialised by :meth:`to_dict`.
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=Finding.sort_key)

    # -- queries ----------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Finding counts by severity: ``{"critical": n, "warning": n, "info": n}``."""
        out = {"critical": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    def scanned_text(self) -> str:
        """What was scanned, in words: ``"12 file(s)"``, ``"6 cell(s)"`` or
        ``"3 file(s) and 5 cell(s)"`` (notebook cells are labelled ``In[n]`` or ``nb.ipynb[cell n]``)."""
        cells = sum(1 for p in self.files_scanned if p.startswith(("In[", "<")) or "[cell " in p)
        files = len(self.files_scanned) - cells
        parts = [f"{files} file(s)" if files or not cells else "", f"{cells} cell(s)" if cells else ""]
        return " and ".join(p for p in parts if p)

    def by_kind(self) -> dict[str, list[Finding]]:
        """The findings grouped by :attr:`Finding.kind`, in report order."""
        out: dict[str, list[Finding]] = {}
        for f in self.findings:
            out.setdefault(f.kind, []).append(f)
        return out

    def filter(
        self,
        select: Iterable[str] = (),
        ignore: Iterable[str] = (),
        min_severity: str | Severity | None = None,
    ) -> ScanReport:
        """A copy keeping findings whose code or kind matches ``select`` (all when
        empty), dropping those matching ``ignore``, and at or above ``min_severity``.
        A code prefix such as ``"AEX1"`` matches every code that starts with it."""
        sel, ign = tuple(select), tuple(ignore)
        floor = Severity.parse(min_severity).rank if min_severity else 0

        def matches(f: Finding, keys: tuple[str, ...]) -> bool:
            return any(f.kind == k or f.code.startswith(k) for k in keys)

        kept = [
            f
            for f in self.findings
            if (not sel or matches(f, sel))
            and not matches(f, ign)
            and f.severity.rank >= floor
        ]
        return dataclasses.replace(self, findings=kept)

    def __len__(self) -> int:
        return len(self.findings)

    def __iter__(self):
        return iter(self.findings)

    # -- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"findings": [...], "files_scanned": N, "errors": [...], "seconds": S, "target": T}``."""
        return {
            "findings": [f.to_dict() for f in self.findings],
            "files_scanned": len(self.files_scanned),
            "errors": list(self.errors),
            "seconds": round(self.seconds, 6),
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanReport:
        """Inverse of :meth:`to_dict` (``files_scanned`` may be a count or a list)."""
        files = data.get("files_scanned", [])
        if isinstance(files, int):
            files = [f"<file {i}>" for i in range(files)]
        return cls(
            findings=[Finding.from_dict(d) for d in data.get("findings", [])],
            files_scanned=list(files),
            errors=list(data.get("errors", [])),
            seconds=float(data.get("seconds", 0.0)),
            target=str(data.get("target", "")),
        )

    # -- outputs ----------------------------------------------------------
    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per finding; columns and dtypes are those of
        :data:`FINDING_COLUMNS` (``severity`` is an ordered categorical)."""
        return findings_frame(self.findings)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .render import html as _html, text as _text

        return {"text/plain": _text.render_scan(self), "text/html": _html.render_scan(self)}

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"<ScanReport {self.target or ''} files={len(self.files_scanned)} "
            f"critical={c['critical']} warning={c['warning']} info={c['info']} "
            f"seconds={self.seconds:.3f}>"
        )


# ---------------------------------------------------------------------------
# Runtime profiles (``%%loop_profile``, ``async-expert profile``, ``profile()``)
# ---------------------------------------------------------------------------

#: Columns of :attr:`LoopReport.tasks`: one row per task created while profiling.
#: Times are seconds since the profile started (``*_s``) or milliseconds (``*_ms``).
TASK_COLUMNS: dict[str, str] = {
    "task_id": "int64",  # a per-report counter, in creation order
    "name": "string",  # Task.get_name()
    "coro": "string",  # the coroutine's __qualname__
    "created_at": "string",  # user frame that created it, "path:line" ("In[3]:4")
    "created_path": "string",
    "created_line": "int64",  # 0 when unknown
    "start_s": "float64",  # creation time, seconds since the profile started
    "end_s": "float64",  # completion time; NaN while pending
    "duration_ms": "float64",  # end - start in ms; NaN while pending
    "state": "category",  # "done" | "failed" | "cancelled" | "pending"
    "exception": "string",  # "ValueError: boom" or ""
    "exception_retrieved": "boolean",  # <NA> when there is no exception
    "await_stack": "object",  # tuple[str, ...] of "qualname (path:line)", innermost last; pending tasks only
}

#: Columns of :attr:`LoopReport.blocking`: one row per loop stall past the threshold.
BLOCKING_COLUMNS: dict[str, str] = {
    "start_s": "float64",  # when the heartbeat became late, seconds since start
    "duration_ms": "float64",  # how long the loop thread did not run callbacks, ms
    "location": "string",  # "path:line" of the user line that dominated the samples
    "path": "string",
    "line": "int64",
    "function": "string",  # qualname of the function holding that line
    "snippet": "string",  # the source text of that line
    "kind": "category",  # "blocking-call-in-async" | "cpu-bound-in-async" (cpu_ms >= 15% of duration)
    "cpu_ms": "float64",  # CPU time of the loop thread during the stall, ms
    "samples": "int64",  # stack samples taken during the stall
    "share": "float64",  # fraction (0-1) of the samples in which that line was on the stack
    "task": "string",  # the task running at the time, "" for a plain callback
    "stack": "object",  # tuple[str, ...] "qualname (path:line)", outermost first
}

#: Columns of :attr:`LoopReport.callbacks`: handles whose single run took longer
#: than the threshold (what ``loop.slow_callback_duration`` would log in debug mode).
CALLBACK_COLUMNS: dict[str, str] = {
    "start_s": "float64",
    "duration_ms": "float64",
    "callback": "string",  # repr of the callback, or "Task step: <task name> (<coro>)"
    "task": "string",
    "location": "string",  # where the task's coroutine was suspended after the step
}

#: Columns of :attr:`LoopReport.lag`: heartbeat lateness samples (the loop lag series).
LAG_COLUMNS: dict[str, str] = {
    "t_s": "float64",  # seconds since the profile started
    "lag_ms": "float64",  # how late the heartbeat ran, ms (0 = on time)
}

#: Columns of :attr:`LoopReport.locks`: one row per wait on an asyncio primitive
#: (filled by the contention instrument).
LOCK_COLUMNS: dict[str, str] = {
    "primitive": "category",  # "Lock" | "Semaphore" | "BoundedSemaphore" | "Event" | "Condition" | "Queue"
    "name": "string",  # where the primitive was created, "path:line"
    "task": "string",  # the waiting task
    "location": "string",  # where it waited, "path:line"
    "start_s": "float64",
    "wait_ms": "float64",  # time spent waiting, ms; NaN if still waiting at the end
    "hold_ms": "float64",  # time the lock was then held, ms; NaN when not a lock
    "holder": "string",  # the task holding the lock while this one waited
}

#: Columns of :attr:`LoopReport.logs`: records the loop would otherwise print to
#: no cell (asyncio logger, loop exception handler, RuntimeWarnings, unraisables).
LOG_COLUMNS: dict[str, str] = {
    "t_s": "float64",
    "source": "category",  # "logging" | "exception-handler" | "warning" | "unraisable"
    "level": "string",  # "ERROR", "WARNING", ...
    "logger": "string",
    "message": "string",
    "location": "string",  # "path:line" when known
}


def _frame(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> Any:
    import pandas as pd

    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))
    for col, dtype in columns.items():
        if dtype == "object":
            continue
        if dtype == "float64":
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        elif dtype == "int64":
            frame[col] = frame[col].fillna(0).astype("int64")
        elif dtype == "string":
            frame[col] = frame[col].fillna("").astype("string")
        else:
            frame[col] = frame[col].astype(dtype)
    return frame


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass
class LoopReport:
    """The result of a runtime profile of an event loop.

    The raw records are plain lists of dicts (JSON-serialisable); the
    properties of the same names without ``_records`` give pandas DataFrames
    with the documented columns and dtypes (pandas is imported only then).

    Attributes:
        finding_list: :class:`Finding` objects with ``source="runtime"`` (codes
            ``AEX9xx``) plus static findings joined with runtime evidence
            (``extra["confirmed"] is True``). Sorted critical first.
        task_records: rows of :data:`TASK_COLUMNS`.
        blocking_records: rows of :data:`BLOCKING_COLUMNS`.
        callback_records: rows of :data:`CALLBACK_COLUMNS`.
        lag_records: rows of :data:`LAG_COLUMNS`.
        lock_records: rows of :data:`LOCK_COLUMNS`.
        log_records: rows of :data:`LOG_COLUMNS`.
        tables: further tables added by instruments, name -> rows (e.g. ``"executor"``).
        target: what was profiled (``"In[3]"``, a file path, a coroutine's qualname).
        seconds: wall time of the profiled run, seconds.
        settings: the options used: ``threshold_ms``, ``interval_ms``, ``profile``,
            ``timeout_s``, ``cancel_leaked``, ``nest``.
        notes: one-line remarks for the user (what ``--nest`` changed, a timeout fired).
        errors: instruments that crashed and were switched off, one line each.
        exception: ``"Type: message"`` of the exception the profiled code raised, or "".
        timed_out: True when ``timeout`` cancelled the work.
        profile: the ``pyinstrument.session.Session`` or None (not serialised).
    """

    finding_list: list[Finding] = field(default_factory=list)
    task_records: list[dict[str, Any]] = field(default_factory=list)
    blocking_records: list[dict[str, Any]] = field(default_factory=list)
    callback_records: list[dict[str, Any]] = field(default_factory=list)
    lag_records: list[dict[str, Any]] = field(default_factory=list)
    lock_records: list[dict[str, Any]] = field(default_factory=list)
    log_records: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    target: str = ""
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exception: str = ""
    timed_out: bool = False
    profile: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.finding_list = sorted(self.finding_list, key=Finding.sort_key)

    # -- DataFrames -------------------------------------------------------
    @property
    def findings(self) -> Any:
        """DataFrame of :data:`FINDING_COLUMNS`, one row per finding."""
        return findings_frame(self.finding_list)

    @property
    def tasks(self) -> Any:
        """DataFrame of :data:`TASK_COLUMNS` (``state`` categorical)."""
        return _frame(self.task_records, TASK_COLUMNS)

    @property
    def blocking(self) -> Any:
        """DataFrame of :data:`BLOCKING_COLUMNS`; durations in ms."""
        return _frame(self.blocking_records, BLOCKING_COLUMNS)

    @property
    def callbacks(self) -> Any:
        """DataFrame of :data:`CALLBACK_COLUMNS` (slow handles); durations in ms."""
        return _frame(self.callback_records, CALLBACK_COLUMNS)

    @property
    def lag(self) -> Any:
        """DataFrame of :data:`LAG_COLUMNS`: the loop lag time series (``t_s`` seconds, ``lag_ms`` ms)."""
        return _frame(self.lag_records, LAG_COLUMNS)

    @property
    def locks(self) -> Any:
        """DataFrame of :data:`LOCK_COLUMNS`; waits in ms."""
        return _frame(self.lock_records, LOCK_COLUMNS)

    @property
    def logs(self) -> Any:
        """DataFrame of :data:`LOG_COLUMNS`."""
        return _frame(self.log_records, LOG_COLUMNS)

    # -- queries ----------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Finding counts by severity: ``{"critical": n, "warning": n, "info": n}``."""
        out = {"critical": 0, "warning": 0, "info": 0}
        for f in self.finding_list:
            out[f.severity.value] += 1
        return out

    def by_kind(self) -> dict[str, list[Finding]]:
        """The findings grouped by :attr:`Finding.kind`, in report order."""
        out: dict[str, list[Finding]] = {}
        for f in self.finding_list:
            out.setdefault(f.kind, []).append(f)
        return out

    def __len__(self) -> int:
        return len(self.finding_list)

    def __iter__(self):
        return iter(self.finding_list)

    def summary(self) -> dict[str, Any]:
        """Headline numbers, with no pandas needed.

        Returns:
            ``{"target", "seconds", "findings": {severity: n}, "tasks": n,
            "tasks_by_state": {state: n}, "blocking_events": n, "blocked_ms": total ms,
            "worst_block_ms": ms, "worst_block_at": "path:line", "max_lag_ms": ms,
            "slow_callbacks": n, "log_records": n, "exception": str, "timed_out": bool}``.
        """
        states: dict[str, int] = {}
        for t in self.task_records:
            states[t.get("state", "")] = states.get(t.get("state", ""), 0) + 1
        worst = max(self.blocking_records, key=lambda b: b.get("duration_ms") or 0.0, default=None)
        return {
            "target": self.target,
            "seconds": self.seconds,
            "findings": self.counts(),
            "tasks": len(self.task_records),
            "tasks_by_state": states,
            "blocking_events": len(self.blocking_records),
            "blocked_ms": float(sum(b.get("duration_ms") or 0.0 for b in self.blocking_records)),
            "worst_block_ms": float(worst.get("duration_ms") or 0.0) if worst else 0.0,
            "worst_block_at": str(worst.get("location", "")) if worst else "",
            "max_lag_ms": float(max((r.get("lag_ms") or 0.0 for r in self.lag_records), default=0.0)),
            "slow_callbacks": len(self.callback_records),
            "log_records": len(self.log_records),
            "exception": self.exception,
            "timed_out": self.timed_out,
        }

    # -- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``{"findings": [Finding.to_dict()...], "tasks": [...],
        "blocking": [...], "callbacks", "lag", "locks", "logs", "tables", "target",
        "seconds", "settings", "notes", "errors", "exception", "timed_out"}``.
        Row dicts use the column names above; NaN becomes null; the profile is dropped."""
        return {
            "findings": [f.to_dict() for f in self.finding_list],
            "tasks": _jsonable(self.task_records),
            "blocking": _jsonable(self.blocking_records),
            "callbacks": _jsonable(self.callback_records),
            "lag": _jsonable(self.lag_records),
            "locks": _jsonable(self.lock_records),
            "logs": _jsonable(self.log_records),
            "tables": _jsonable(self.tables),
            "target": self.target,
            "seconds": round(self.seconds, 6),
            "settings": _jsonable(self.settings),
            "notes": list(self.notes),
            "errors": list(self.errors),
            "exception": self.exception,
            "timed_out": self.timed_out,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopReport:
        """Inverse of :meth:`to_dict` (lists come back as lists, not tuples;
        ``profile`` is None)."""
        return cls(
            finding_list=[Finding.from_dict(d) for d in data.get("findings", [])],
            task_records=[dict(r) for r in data.get("tasks", [])],
            blocking_records=[dict(r) for r in data.get("blocking", [])],
            callback_records=[dict(r) for r in data.get("callbacks", [])],
            lag_records=[dict(r) for r in data.get("lag", [])],
            lock_records=[dict(r) for r in data.get("locks", [])],
            log_records=[dict(r) for r in data.get("logs", [])],
            tables={k: [dict(r) for r in v] for k, v in dict(data.get("tables", {})).items()},
            target=str(data.get("target", "")),
            seconds=float(data.get("seconds", 0.0)),
            settings=dict(data.get("settings", {})),
            notes=list(data.get("notes", [])),
            errors=list(data.get("errors", [])),
            exception=str(data.get("exception", "")),
            timed_out=bool(data.get("timed_out", False)),
        )

    # -- outputs ----------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .render import html as _html, text as _text

        return {"text/plain": _text.render(self), "text/html": _html.render(self)}

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"<LoopReport {self.target or ''} tasks={len(self.task_records)} "
            f"blocking={len(self.blocking_records)} critical={c['critical']} "
            f"warning={c['warning']} info={c['info']} seconds={self.seconds:.3f}>"
        )
