"""A profiling session: install instruments on the *running* event loop, restore
everything on exit, and produce a :class:`~async_expert_ext.model.LoopReport`.

No nested loop and no thread runs the profiled code: the instruments are put on
the loop that is already running (the kernel's own loop in a notebook, see
``DESIGN.md``, "Facts measured here"), so futures and clients created elsewhere
keep working. ``loop.set_debug(True)`` is never turned on (it costs about 5x CPU
on task-heavy code); the debug flag and ``slow_callback_duration`` are still
saved and restored in case an instrument or the profiled code changes them.

Entry points:

- :class:`ProfileSession` with :meth:`~ProfileSession.start` / :meth:`~ProfileSession.stop`
  (the magic's input transformer and ``post_run_cell`` hook use these);
- :func:`profile`: ``async with profile() as report: ...`` or ``report = await profile(coro)``.
"""
from __future__ import annotations

import asyncio
import asyncio.base_events
import linecache
import os
import sys
import sysconfig
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType
from typing import Any

from ..model import Confidence, Finding, LoopReport, Section, Severity
from .instrument import Instrument

__all__ = ["RUNTIME_CODES", "Profile", "ProfileSession", "is_library_file", "profile"]

#: Runtime finding codes. AEX93x is reserved for contention/deadlock, AEX94x for
#: executors, AEX95x for threadsafe misuse.
RUNTIME_CODES: dict[str, str] = {
    "blocking-call-in-async": "AEX901",
    "cpu-bound-in-async": "AEX902",
    "never-awaited": "AEX910",
    "task-exception-never-retrieved": "AEX911",
    "leaked-task": "AEX912",
    "fire-and-forget-task": "AEX913",
    "event-loop-already-running": "AEX914",
    "missing-timeout": "AEX915",
    "async-generator-not-closed": "AEX916",
    "cancelled-error-swallowed": "AEX917",
    # contention.py, executors.py, threads.py, lifecycle.py
    "lock-held-across-await": "AEX930",
    "deadlock": "AEX931",
    "executor-exhaustion": "AEX940",
    "sync-endpoint-threadpool": "AEX941",
    "slow-endpoint": "AEX942",
    "threadsafe-misuse": "AEX950",
    "gather-partial-failure": "AEX960",
    "cross-loop-resource": "AEX961",
}

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LIB_PREFIXES: tuple[str, ...] = tuple(
    sorted(
        {
            p + (os.sep if not p.endswith(os.sep) else "")
            for p in (
                sysconfig.get_paths().get("stdlib"),
                sysconfig.get_paths().get("platstdlib"),
                sysconfig.get_paths().get("purelib"),
                sysconfig.get_paths().get("platlib"),
                sysconfig.get_paths().get("scripts"),  # console scripts (async-expert, ipython, jupyter)
                _PKG_DIR,
            )
            if p
        }
    )
)
_LIB_MARKERS = (
    os.sep + "site-packages" + os.sep,
    os.sep + "dist-packages" + os.sep,
    os.sep + "asyncio" + os.sep,
    os.sep + "ipykernel" + os.sep,
    os.sep + "IPython" + os.sep,
    os.sep + "tornado" + os.sep,
)
_lib_cache: dict[str, bool] = {}


def is_library_file(filename: str) -> bool:
    """True for frames that are not the user's code: the standard library
    (asyncio included), site-packages (IPython, ipykernel, tornado ...), this
    package, and frozen modules. Notebook cells and the user's files are False."""
    hit = _lib_cache.get(filename)
    if hit is None:
        if filename.startswith("<frozen") or filename.startswith("<__array_function"):
            hit = True
        elif filename.startswith("<"):
            hit = False
        else:
            path = os.path.abspath(filename)
            hit = path.startswith(_LIB_PREFIXES) or any(m in path for m in _LIB_MARKERS)
        _lib_cache[filename] = hit
    return hit


#: the TASK_COLUMNS a row gets at stop() unless set before
_ROW_DEFAULTS: dict[str, Any] = {
    "created_at": "",
    "created_path": "",
    "end_s": None,
    "duration_ms": None,
    "exception": "",
    "exception_retrieved": None,
    "await_stack": (),
}


class _TaskTable:
    """Task records (rows of TASK_COLUMNS) keyed by ``id(task)``; weak references only."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.by_id: dict[int, dict[str, Any]] = {}
        self.refs: dict[int, weakref.ref] = {}

    def add(self, task: asyncio.Task, row: dict[str, Any]) -> None:
        key = id(task)
        self.rows.append(row)
        self.by_id[key] = row
        # No callback: the cyclic GC clears weak references *before* it runs
        # finalizers, and a task's finalizer is what reports "never retrieved" /
        # "destroyed but pending"; the row stays findable by id (lookup() then
        # checks the coroutine's name, since ids are reused).
        self.refs[key] = weakref.ref(task)

    def lookup(self, task: Any) -> dict[str, Any] | None:
        if task is None:
            return None
        key = id(task)
        row = self.by_id.get(key)
        if row is not None:
            ref = self.refs.get(key)
            if ref is None or ref() is not task:
                try:
                    coro = task.get_coro()
                except Exception:
                    return None
                if getattr(coro, "__qualname__", type(coro).__name__) != row["coro"]:
                    return None
        return row

    def alive(self) -> list[tuple[asyncio.Task, dict[str, Any]]]:
        out = []
        for key, ref in list(self.refs.items()):
            task = ref()
            row = self.by_id.get(key)
            if task is not None and row is not None and row["coro"] == getattr(task.get_coro(), "__qualname__", row["coro"]):
                out.append((task, row))
        return out


class ProfileSession:
    """Instruments on one running event loop, from :meth:`start` to :meth:`stop`.

    Args:
        threshold_ms: a loop stall longer than this is a blocking event (ms). Default 50,
            the same order as asyncio's own ``slow_callback_duration`` (100 ms,
            https://docs.python.org/3/library/asyncio-dev.html#debug-mode).
        interval_ms: heartbeat interval for the loop-lag series (ms).
        profile: record a pyinstrument profile (``Profiler(async_mode="enabled")``).
        timeout_s: after this many seconds, cancel the profiled work (see :meth:`arm_timeout`).
        cancel_leaked: cancel tasks still pending at :meth:`stop`.
        nest: apply nest-asyncio2 so ``asyncio.run()`` works inside the running loop.
        target: what is profiled, for the report header.
        label: maps a code filename to the name users know (``"In[3]"``); identity by default.
        static_source: ``{label: source}`` scanned statically and joined with the runtime
            evidence (the cell, or the CLI's file). Paths of runtime findings not in it are
            read through :mod:`linecache` and joined too (only confirmed findings kept).
        instruments: replaces the default instruments (see :func:`default_instruments`).
        origin_depth: frames recorded by ``sys.set_coroutine_origin_tracking_depth``.
        origin_tracking: ``"auto"`` (on from the first never-awaited coroutine),
            ``"on"`` (from the start; about 1 us per coroutine created) or ``"off"``.
        static: join the runtime findings with a static scan of the code involved.
    """

    def __init__(
        self,
        *,
        threshold_ms: float = 50.0,
        interval_ms: float = 10.0,
        profile: bool = True,
        timeout_s: float | None = None,
        cancel_leaked: bool = False,
        nest: bool = False,
        target: str = "",
        label: Callable[[str], str] | None = None,
        static_source: dict[str, str] | None = None,
        instruments: Iterable[Instrument] | None = None,
        origin_depth: int = 12,
        origin_tracking: str = "auto",
        static: bool = True,
    ) -> None:
        if threshold_ms <= 0 or interval_ms <= 0:
            raise ValueError("threshold_ms and interval_ms must be positive")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.threshold_ms = float(threshold_ms)
        self.interval_ms = float(interval_ms)
        self.profile_enabled = bool(profile)
        self.timeout_s = timeout_s
        self.cancel_leaked = cancel_leaked
        self.nest = nest
        if origin_tracking not in ("auto", "on", "off"):
            raise ValueError("origin_tracking must be 'auto', 'on' or 'off'")
        self.origin_depth = origin_depth
        self.origin_tracking = origin_tracking
        self.static = static
        self._label = label or (lambda f: f)
        #: label -> code filename, for every label handed out (used by the static join)
        self.files: dict[str, str] = {}
        self.static_source = dict(static_source or {})
        self.report = LoopReport(
            target=target,
            settings={
                "threshold_ms": self.threshold_ms,
                "interval_ms": self.interval_ms,
                "profile": self.profile_enabled,
                "timeout_s": timeout_s,
                "cancel_leaked": cancel_leaked,
                "nest": nest,
            },
        )
        if instruments is None:
            from .detectors import default_instruments

            instruments = default_instruments(self)
        self.instruments: list[Instrument] = list(instruments)
        #: per hook, the instruments that override it (per-task hooks are hot paths)
        self._hooked: dict[str, list[Instrument]] = {
            hook: [i for i in self.instruments if getattr(type(i), hook) is not getattr(Instrument, hook)]
            for hook in ("task_created", "task_done", "exception_handler")
        }
        self.tasks = _TaskTable()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread_id = 0
        self.t0 = 0.0
        self.active = False
        self.stopped = False
        self.timed_out = False
        self.host_task: asyncio.Task | None = None
        self.awaited: Any = None  # the coroutine `await profile(coro)` runs, if any
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._findings: list[Finding] = []
        self._saved: dict[str, Any] = {}
        self._task_seq = 0
        self._done_cb = self._task_done
        self._named = hasattr(asyncio.Task, "get_name")
        self._wall0 = 0.0

    # -- helpers for instruments -----------------------------------------
    def now_s(self) -> float:
        """Seconds since :meth:`start` (``time.perf_counter`` based)."""
        return time.perf_counter() - self.t0

    def label(self, filename: str) -> str:
        """The name users know for ``filename`` (a cell label such as ``In[3]``)."""
        try:
            out = self._label(filename) or filename
        except Exception:
            out = filename
        self.files.setdefault(out, filename)
        return out

    def user_frame(self, frame: FrameType | None) -> FrameType | None:
        """The innermost frame at or above ``frame`` that is user code (not asyncio,
        this package, IPython, ipykernel, tornado, site-packages or the stdlib);
        None when there is none."""
        while frame is not None:
            if not is_library_file(frame.f_code.co_filename):
                return frame
            frame = frame.f_back
        return None

    def where(self, filename: str, line: int) -> str:
        """``"label:line"``: a cell label (``In[3]:5``) or the file path."""
        return f"{self.label(filename)}:{line}"

    def describe_frame(self, filename: str, line: int, qualname: str) -> str:
        """``"qualname (In[3]:4)"``: the stack-entry format used in every table."""
        return f"{qualname} ({self.label(filename)}:{line})"

    def snippet(self, filename: str, line: int) -> str:
        """The stripped source line (cells included, through linecache), or ""."""
        return linecache.getline(filename, line).strip() if line > 0 else ""

    def call(self, inst: Instrument, hook: str, *args: Any) -> Any:
        """Call ``inst.<hook>(self, *args)``; an exception switches the instrument off
        and is noted in ``report.errors`` (never raised)."""
        if not inst.enabled and hook not in ("uninstall",):
            return None
        try:
            return getattr(inst, hook)(self, *args)
        except Exception as exc:  # an instrument bug must never break the profiled code
            inst.enabled = False
            self.report.errors.append(
                f"instrument {inst.name!r} failed in {hook}: {type(exc).__name__}: {exc}; switched off"
            )
            return None

    def add_finding(
        self,
        kind: str,
        message: str,
        *,
        filename: str = "",
        line: int = 0,
        severity: Severity | str = Severity.WARNING,
        section: Section = Section.ASYNC_PATTERNS,
        explanation: str = "",
        fix: str = "",
        fix_example: str = "",
        references: Iterable[str] = (),
        symbol: str = "",
        call_chain: Iterable[str] = (),
        confidence: Confidence = Confidence.HIGH,
        extra: dict[str, Any] | None = None,
        code: str | None = None,
    ) -> Finding:
        """Record a runtime finding (``source="runtime"``) located at ``filename:line``."""
        finding = Finding(
            code=code or RUNTIME_CODES.get(kind, "AEX999"),
            kind=kind,
            severity=severity,
            message=message,
            path=self.label(filename) if filename else "",
            line=line,
            symbol=symbol,
            section=section,
            explanation=explanation,
            fix=fix,
            fix_example=fix_example,
            references=tuple(references),
            confidence=confidence,
            call_chain=tuple(call_chain),
            source="runtime",
            snippet=self.snippet(filename, line) if filename else "",
            extra=dict(extra or {}),
        )
        self._findings.append(finding)
        return finding

    # -- task factory ------------------------------------------------------
    def _make_factory(self, previous: Callable[..., Any] | None) -> Callable[..., Any]:
        session = self

        def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future:
            if previous is not None:
                task = previous(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            if session.active:
                try:
                    session._track(task, coro)
                except Exception as exc:  # pragma: no cover - defensive
                    session.report.errors.append(f"task tracking failed: {type(exc).__name__}: {exc}")
            return task

        task_factory._aex_session = self  # type: ignore[attr-defined]
        return task_factory

    def _track(self, task: asyncio.Future, coro: Any) -> None:
        # Hot path (once per task): keep it small; the row is completed at stop().
        frame = sys._getframe(2)
        under_timeout = False
        lib = _lib_cache
        while frame is not None:
            code = frame.f_code
            hit = lib.get(code.co_filename)
            if hit is None:
                hit = is_library_file(code.co_filename)
            if not hit:
                break
            if code.co_name == "wait_for":
                under_timeout = True
            frame = frame.f_back
        self._task_seq += 1
        row: dict[str, Any] = {
            "task_id": self._task_seq,
            "name": task.get_name() if self._named else repr(task),
            "coro": getattr(coro, "__qualname__", None) or type(coro).__name__,
            "created_line": frame.f_lineno if frame is not None else 0,
            "start_s": time.perf_counter() - self.t0,
            "state": "pending",
            "_file": frame.f_code.co_filename if frame is not None else "",
            "_under_timeout": under_timeout,
        }
        key = id(task)
        tasks = self.tasks
        tasks.rows.append(row)
        tasks.by_id[key] = row
        tasks.refs[key] = weakref.ref(task)
        task.add_done_callback(self._done_cb)
        if self._hooked["task_created"]:
            for inst in self._hooked["task_created"]:
                if inst.enabled:
                    self.call(inst, "task_created", task, row)

    def _task_done(self, task: asyncio.Future) -> None:
        row = self.tasks.lookup(task)
        if row is None:
            return
        row["end_s"] = time.perf_counter() - self.t0
        row["duration_ms"] = (row["end_s"] - row["start_s"]) * 1000.0
        if task.cancelled():
            row["state"] = "cancelled"
        else:
            exc = getattr(task, "_exception", None)  # reading .exception() would mark it retrieved
            if exc is not None:
                row["state"] = "failed"
                row["exception"] = f"{type(exc).__name__}: {exc}"
                row["_raised_at"] = _raise_site(self, exc)
            else:
                row["state"] = "done"
        if self.active:
            for inst in self._hooked["task_done"]:
                if inst.enabled:
                    self.call(inst, "task_done", task, row)

    # -- exception handler observation --------------------------------------
    def _exception_seen(self, context: dict[str, Any]) -> None:
        for inst in self._hooked["exception_handler"]:
            if inst.enabled:
                self.call(inst, "exception_handler", context)

    # -- lifecycle ---------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> ProfileSession:
        """Install the instruments on ``loop`` (default: the running loop).

        Raises:
            RuntimeError: when no loop is given and none is running, or the session
                was already started.
        """
        if self.active or self.stopped:
            raise RuntimeError("a ProfileSession can be started once")
        self.loop = loop or asyncio.get_running_loop()
        self.loop_thread_id = threading.get_ident()
        self.host_task = asyncio.current_task(self.loop) if self._loop_running_here() else None
        self.t0 = time.perf_counter()
        self._wall0 = self.t0
        lp = self.loop
        self._saved = {
            "task_factory": lp.get_task_factory(),
            "debug": lp.get_debug(),
            "slow_callback_duration": getattr(lp, "slow_callback_duration", None),
            "exception_handler": lp.get_exception_handler(),
            "call_exception_handler": asyncio.base_events.BaseEventLoop.__dict__.get("call_exception_handler"),
            "origin_depth": sys.get_coroutine_origin_tracking_depth(),
            "unraisablehook": sys.unraisablehook,
            "showwarning": warnings.showwarning,
            "filters": list(warnings.filters),
        }
        self.active = True
        lp.set_task_factory(self._make_factory(self._saved["task_factory"]))
        session = self
        original = self._saved["call_exception_handler"]

        def call_exception_handler(loop_self: Any, context: dict[str, Any]) -> None:
            if session.active:
                try:
                    session._exception_seen(context)
                except Exception:  # pragma: no cover - defensive
                    pass
            return original(loop_self, context)

        call_exception_handler._aex_session = self  # type: ignore[attr-defined]
        asyncio.base_events.BaseEventLoop.call_exception_handler = call_exception_handler  # type: ignore[method-assign]
        if not isinstance(lp, asyncio.base_events.BaseEventLoop):  # e.g. uvloop: observe via the handler

            def handler(loop_: Any, context: dict[str, Any]) -> None:
                session._exception_seen(context)
                prev = session._saved["exception_handler"]
                if prev is not None:
                    prev(loop_, context)
                else:
                    loop_.default_exception_handler(context)

            lp.set_exception_handler(handler)
        for inst in self.instruments:
            self.call(inst, "install")
        for inst in self.instruments:
            self.call(inst, "started")
        if self.timeout_s:
            self.arm_timeout(self.timeout_s)
        return self

    def _loop_running_here(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def arm_timeout(self, seconds: float, task: asyncio.Task | None = None) -> None:
        """After ``seconds``, record the await stacks of pending tasks, then cancel
        ``task`` (default: the task that started the session, i.e. the cell or the
        awaited coroutine) and every task created since :meth:`start` still pending."""
        target = task or self.host_task

        def fire() -> None:
            if not self.active:
                return
            self.timed_out = True
            self.report.timed_out = True
            for inst in self.instruments:
                if inst.enabled and hasattr(inst, "on_timeout"):
                    self.call(inst, "on_timeout")
            pending = [(t, r) for t, r in self.tasks.alive() if not t.done()]
            for t, _row in pending:
                t.cancel(msg=f"async-expert --timeout {seconds:g} s")
            if target is not None and not target.done():
                target.cancel(msg=f"async-expert --timeout {seconds:g} s")
            self.report.notes.append(
                f"timed out after {seconds:g} s: cancelled the profiled work and {len(pending)} pending task(s)"
            )

        assert self.loop is not None
        self._timeout_handle = self.loop.call_later(seconds, fire)

    def stop(self, exc: BaseException | None = None) -> LoopReport:
        """Remove every instrument, restore the loop and interpreter state, and
        return the filled :class:`LoopReport`. Idempotent; never raises for
        instrument failures (they are noted in ``report.errors``)."""
        if self.stopped:
            return self.report
        self.stopped = True
        self.exc_value = exc  # the profiled code's exception, for instruments' before_uninstall/finish
        report = self.report
        report.seconds = time.perf_counter() - self.t0
        if exc is not None:
            report.exception = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        # instruments see the end state while still active (pending tasks, await stacks)
        for inst in reversed(self.instruments):  # the stall timer stops before the others' gc.collect()
            if inst.enabled and hasattr(inst, "before_uninstall"):
                self.call(inst, "before_uninstall")
        self.active = False
        for inst in reversed(self.instruments):
            self.call(inst, "uninstall")
        self._restore()
        for inst in self.instruments:
            if inst.enabled:
                self.call(inst, "finish", report)
        for r in self.tasks.rows:
            for k, v in _ROW_DEFAULTS.items():
                r.setdefault(k, v)
            if r.get("_file"):
                r["created_path"] = self.label(r["_file"])
                r["created_at"] = f"{r['created_path']}:{r['created_line']}"
        report.task_records = [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.tasks.rows]
        findings = list(self._findings)
        if self.static:
            try:
                from .join import join_static

                findings = join_static(self, findings)
            except Exception as exc2:  # the static join is a bonus, never a failure
                report.errors.append(f"static join failed: {type(exc2).__name__}: {exc2}")
        report.finding_list = sorted(findings, key=Finding.sort_key)
        return report

    def _restore(self) -> None:
        s = self._saved
        lp = self.loop
        if lp is not None:
            current = lp.get_task_factory()
            if getattr(current, "_aex_session", None) is self:
                lp.set_task_factory(s["task_factory"])
            if not isinstance(lp, asyncio.base_events.BaseEventLoop):
                lp.set_exception_handler(s["exception_handler"])
            if lp.get_debug() != s["debug"]:
                lp.set_debug(s["debug"])
            if s["slow_callback_duration"] is not None:
                lp.slow_callback_duration = s["slow_callback_duration"]
        if getattr(asyncio.base_events.BaseEventLoop.call_exception_handler, "_aex_session", None) is self:
            asyncio.base_events.BaseEventLoop.call_exception_handler = s["call_exception_handler"]  # type: ignore[method-assign]
        # The rest belongs to instruments; this is the safety net should one fail to restore.
        if sys.get_coroutine_origin_tracking_depth() != s["origin_depth"]:
            sys.set_coroutine_origin_tracking_depth(s["origin_depth"])
        if sys.unraisablehook is not s["unraisablehook"] and getattr(sys.unraisablehook, "_aex_session", None) is self:
            sys.unraisablehook = s["unraisablehook"]
        if warnings.showwarning is not s["showwarning"] and getattr(warnings.showwarning, "_aex_session", None) is self:
            warnings.showwarning = s["showwarning"]
        if list(warnings.filters) != s["filters"]:
            warnings.filters[:] = s["filters"]
            warnings._filters_mutated()  # type: ignore[attr-defined]

    def saved_state(self) -> dict[str, Any]:
        """What :meth:`start` saved (for tests of restoration)."""
        return dict(self._saved)


def _raise_site(session: ProfileSession, exc: BaseException) -> str:
    """The innermost user frame of ``exc``'s traceback, ``"path:line"``, or ""."""
    tb = exc.__traceback__
    best = ""
    while tb is not None:
        fn = tb.tb_frame.f_code.co_filename
        if not is_library_file(fn):
            best = session.where(fn, tb.tb_lineno)
        tb = tb.tb_next
    return best


class Profile:
    """``async with profile(...) as report`` and ``await profile(coro)``.

    The report object is created at entry and filled in place on exit, so it can
    be inspected after the block. Exceptions raised in the block propagate after
    the report is complete (``report.exception`` names them).
    """

    def __init__(self, awaitable: Awaitable[Any] | None = None, **options: Any) -> None:
        self._awaitable = awaitable
        self.session = ProfileSession(**options)
        self.result: Any = None

    @property
    def report(self) -> LoopReport:
        """The session's LoopReport (filled once the profiled code has finished)."""
        return self.session.report

    async def __aenter__(self) -> LoopReport:
        self.session.start()
        return self.session.report

    async def __aexit__(self, et: Any, exc: BaseException | None, tb: Any) -> bool:
        timed_out = self.session.timed_out
        self.session.stop(exc)
        if timed_out and isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            return True  # the timeout was ours: the report says what was pending
        return False

    def __await__(self):
        return self._run().__await__()

    async def _run(self) -> LoopReport:
        if self._awaitable is None:
            raise TypeError("profile() needs a coroutine to await; use `async with profile():` otherwise")
        async with self as report:
            self.session.awaited = self._awaitable  # for await stacks at --timeout
            self.result = await self._awaitable
        return report


def profile(awaitable: Awaitable[Any] | None = None, **options: Any) -> Profile:
    """Profile code on the running event loop.

    Use as ``async with profile(threshold_ms=50) as report: ...`` (the report is
    filled when the block exits) or ``report = await profile(main())``.

    Args:
        awaitable: the coroutine to run under the instruments (the ``await`` form).
        **options: :class:`ProfileSession` arguments (``threshold_ms``,
            ``interval_ms``, ``profile``, ``timeout_s``, ``cancel_leaked``, ``nest``,
            ``target``, ``static_source`` ...).

    Returns:
        A :class:`Profile`; awaiting it gives the :class:`~async_expert_ext.model.LoopReport`.

    Raises:
        ValueError: for a non-positive threshold, interval or timeout.
    """
    return Profile(awaitable, **options)
