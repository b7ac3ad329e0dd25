"""``threadsafe-misuse``: event loop methods called from a thread that is not the loop's.

Only ``call_soon_threadsafe`` and ``asyncio.run_coroutine_threadsafe`` may be called
from another thread ("Almost all asyncio objects are not thread safe ... To schedule a
callback from another OS thread, the loop.call_soon_threadsafe() method should be
used", https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading).
Debug mode checks ``call_soon``/``call_at`` but not ``stop()`` (corpus 27,
https://github.com/python/asyncio/issues/244), and it costs about 5x.

:class:`ThreadsafeMonitor` patches, for the session only and at class level (so every
loop counts, also loops created during the session in worker threads, as corpus 27
does through ``asyncio.to_thread(run)``), ``BaseEventLoop.call_soon``, ``call_later``,
``call_at``, ``stop``, ``create_task`` and ``run_in_executor`` and
``BaseSelectorEventLoop.add_reader``, ``remove_reader``, ``add_writer`` and
``remove_writer``. Each wrapper compares ``threading.get_ident()`` with the loop's
``_thread_id`` (set while the loop runs, as debug mode's ``_check_thread`` does): one
attribute read and one comparison per call when nothing is wrong. A call from another
thread is attributed to the innermost frame outside asyncio; calls asyncio makes to
itself (``call_later`` -> ``call_at``) are not counted twice. uvloop loops are not
``BaseEventLoop`` subclasses and are not covered.
"""
from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.selector_events
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..model import Confidence, Section, Severity
from .instrument import Instrument
from .session import ProfileSession, is_library_file

__all__ = ["CHECKED_METHODS", "THREADSAFE_CODE", "ThreadsafeMonitor"]

#: Code of the runtime threadsafe-misuse finding.
THREADSAFE_CODE = "AEX950"

#: (class, method names) wrapped while a session runs.
CHECKED_METHODS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (asyncio.base_events.BaseEventLoop, ("call_soon", "call_later", "call_at", "stop", "create_task", "run_in_executor")),
    (asyncio.selector_events.BaseSelectorEventLoop, ("add_reader", "remove_reader", "add_writer", "remove_writer")),
)

_DOC = "https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading"
_THREADSAFE_DOC = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.call_soon_threadsafe"
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_MAX_CALLS = 10_000
_CALL_SOON_BODY = (
    "self._check_closed()|if self._debug:|self._check_thread()|self._check_callback(callback, 'call_soon')|"
    "handle = self._call_soon(callback, args, context)|if handle._source_traceback:|"
    "del handle._source_traceback[-1]|return handle"
)


def _body(fn: Any) -> str:
    """The statements of a function's source after its docstring, one per ``|``."""
    try:
        import inspect

        lines = [ln.strip() for ln in inspect.getsource(fn).splitlines()]
    except (OSError, TypeError):
        return ""
    out, in_doc, seen_def = [], False, False
    for ln in lines:
        if not seen_def:
            seen_def = ln.startswith("def ")
            continue
        if in_doc:
            in_doc = not ln.endswith('"""')
            continue
        if ln.startswith('"""'):
            in_doc = not (len(ln) > 3 and ln.endswith('"""'))
            continue
        if ln and not ln.startswith("#"):
            out.append(ln)
    return "|".join(out)


class ThreadsafeMonitor(Instrument):
    """Loop methods called from a foreign thread (see the module docstring).

    Rows go to ``LoopReport.tables["threadsafe"]``: ``t_s`` (s since start), ``method``,
    ``location`` ("path:line" of the calling user line), ``thread`` (the calling
    thread's name), ``loop`` (``"profiled"`` or ``"other"``).
    """

    name = "threadsafe"

    def __init__(self) -> None:
        super().__init__()
        self.saved: dict[tuple[type, str], Any] = {}

    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.active = True
        self.calls: list[dict[str, Any]] = []
        self.sites: Counter[tuple[str, int, str, str]] = Counter()
        for cls, names in CHECKED_METHODS:
            for name in names:
                orig = cls.__dict__[name]
                self.saved[(cls, name)] = orig
                wrapper = self._wrap(name, orig)
                wrapper._aex_session = session  # type: ignore[attr-defined]
                setattr(cls, name, wrapper)

    def _wrap(self, name: str, orig: Callable[..., Any]) -> Callable[..., Any]:
        this = self
        get_ident = threading.get_ident
        if name == "call_soon" and _body(orig) == _CALL_SOON_BODY:
            # call_soon runs for every task step and future callback: a wrapper frame
            # around it cost ~15% on a task-heavy loop, so the (known, checked above)
            # body is inlined next to the thread check instead of called

            def call_soon(loop: Any, callback: Any, *args: Any, context: Any = None) -> Any:
                tid = loop._thread_id
                if tid is not None and tid != get_ident() and this.active:
                    this._misuse(loop, "call_soon", depth=1)
                loop._check_closed()
                if loop._debug:
                    loop._check_thread()
                    loop._check_callback(callback, "call_soon")
                handle = loop._call_soon(callback, args, context)
                if handle._source_traceback:
                    del handle._source_traceback[-1]
                return handle

            call_soon.__qualname__ = orig.__qualname__
            call_soon.__doc__ = orig.__doc__
            call_soon.__wrapped__ = orig  # type: ignore[attr-defined]
            return call_soon

        def wrapper(loop: Any, *args: Any, **kwargs: Any) -> Any:
            tid = loop._thread_id
            if tid is not None and tid != get_ident() and this.active:
                this._misuse(loop, name)
            return orig(loop, *args, **kwargs)

        wrapper.__name__ = name
        wrapper.__qualname__ = getattr(orig, "__qualname__", name)
        wrapper.__doc__ = orig.__doc__
        wrapper.__wrapped__ = orig  # type: ignore[attr-defined]
        return wrapper

    def _misuse(self, loop: Any, method: str, depth: int = 2) -> None:
        try:
            caller = sys._getframe(depth)
        except ValueError:
            return
        if caller.f_code.co_filename.startswith(_ASYNCIO_DIR):
            # asyncio calling itself (call_later -> call_at), or its own thread-safe path
            return
        if len(self.calls) >= _MAX_CALLS:
            return
        s = self.session
        frame = caller
        user = s.user_frame(frame)
        fn, line, func = "", 0, ""
        if user is not None:
            fn, line, func = user.f_code.co_filename, user.f_lineno, getattr(user.f_code, "co_qualname", user.f_code.co_name)
        else:  # library code misusing the loop: keep the innermost frame for the table
            fn, line, func = caller.f_code.co_filename, caller.f_lineno, getattr(caller.f_code, "co_qualname", caller.f_code.co_name)
        chain: list[tuple[str, int, str]] = []
        f: Any = frame
        while f is not None and len(chain) < 16:
            c = f.f_code
            chain.append((c.co_filename, f.f_lineno, getattr(c, "co_qualname", c.co_name)))
            f = f.f_back
        thread = threading.current_thread().name
        self.calls.append(
            {
                "t_s": s.now_s(),
                "method": method,
                "file": fn,
                "line": line,
                "func": func,
                "thread": thread,
                "loop": "profiled" if loop is s.loop else "other",
                "user": user is not None,
                "chain": tuple(chain),
            }
        )
        self.sites[(fn, line, method, func)] += 1

    def uninstall(self, session: ProfileSession) -> None:
        self.active = False
        for (cls, name), orig in self.saved.items():
            if getattr(cls.__dict__.get(name), "_aex_session", None) is session:
                setattr(cls, name, orig)

    def finish(self, session: ProfileSession, report: Any) -> None:
        if not self.calls:
            return
        report.tables["threadsafe"] = [
            {
                "t_s": c["t_s"],
                "method": c["method"],
                "location": session.where(c["file"], c["line"]) if c["file"] else "",
                "thread": c["thread"],
                "loop": c["loop"],
            }
            for c in self.calls
        ]
        first: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        for c in self.calls:
            first.setdefault((c["file"], c["line"], c["method"], c["func"]), c)
        for key, n in self.sites.items():
            fn, line, method, func = key
            c = first[key]
            if not c["user"]:
                session.report.notes.append(
                    f"library code at {session.where(fn, line)} called loop.{method}() from thread {c['thread']!r} "
                    f"({n} time(s)); not thread-safe"
                )
                continue
            where = session.where(fn, line)
            loop_note = "the profiled event loop" if c["loop"] == "profiled" else "the event loop"
            if method == "stop":
                fix_line = "loop.call_soon_threadsafe(loop.stop)"
                before = "loop.stop()"
            elif method in ("call_soon", "call_later", "call_at"):
                fix_line = "loop.call_soon_threadsafe(callback, *args)"
                before = f"loop.{method}(callback, *args)"
            elif method == "create_task":
                fix_line = "asyncio.run_coroutine_threadsafe(coro, loop)"
                before = "loop.create_task(coro)"
            else:
                fix_line = f"loop.call_soon_threadsafe(loop.{method}, *args)"
                before = f"loop.{method}(*args)"
            session.add_finding(
                "threadsafe-misuse",
                f"loop.{method}() called at {where} from thread {c['thread']!r} while {loop_note} was running "
                f"in another thread ({n} time(s))",
                filename=fn,
                line=line,
                symbol=func,
                severity=Severity.CRITICAL,
                section=Section.CONCURRENCY,
                explanation=(
                    "Event loop methods are not thread-safe. Called from another thread they race with the loop, and "
                    "the loop, asleep in select(), does not wake up: the call takes effect only when some unrelated "
                    "event arrives (asyncio debug mode checks call_soon, not stop())."
                ),
                fix=f"Go through the loop's thread-safe entry points: `{fix_line}`.",
                fix_example=f"# before (in a worker thread)\n{before}\n# after\n{fix_line}",
                references=(_DOC, _THREADSAFE_DOC, "https://github.com/python/asyncio/issues/244"),
                confidence=Confidence.HIGH,
                call_chain=tuple(
                    session.describe_frame(f, ln, q) for f, ln, q in reversed(c["chain"]) if not is_library_file(f)
                ),
                code=THREADSAFE_CODE,
                extra={"method": method, "calls": n, "thread": c["thread"], "loop": c["loop"], "first_t_ms": round(c["t_s"] * 1000.0, 3)},
            )
