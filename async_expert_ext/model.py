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
        """``path:line`` (``In[5]:3`` for notebook cells)."""
        return f"{self.path}:{self.line}" if self.path else str(self.line)

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

    def by_kind(self) -> dict[str, list[Finding]]:
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
