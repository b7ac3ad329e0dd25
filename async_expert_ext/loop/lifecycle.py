"""Life-cycle mistakes seen at runtime: gather siblings left running, async generators
abandoned without ``aclose()``, and objects used on the wrong event loop.

- :class:`GatherMonitor` (``gather-partial-failure``, AEX960): ``asyncio.gather``
  without ``return_exceptions`` propagates the first error and leaves the other
  children running ("If return_exceptions is False, cancelling gather() after it has
  been marked done won't cancel any submitted awaitables",
  https://docs.python.org/3/library/asyncio-task.html#asyncio.gather). The gathering
  future's ``__init__`` (``asyncio.tasks._GatheringFuture``) is wrapped for the
  session to note the call site and the children (weakly); when the future fails, the
  children still running after a grace period (``max(100 ms, 2 x threshold)``) are
  reported at the gather call, which is also the creator line of those child tasks in
  the task table (corpus 22, https://github.com/python/asyncio/issues/238).
- :class:`AsyncGenMonitor` (``async-generator-not-closed``, AEX916): ``sys.set_asyncgen_hooks``
  for the session, chained to the loop's own hooks. ``firstiter`` notes the consumer
  line (the ``async for``); the ``finalizer`` runs when a generator that was neither
  exhausted nor closed is garbage-collected, i.e. its consumer moved on and its
  cleanup (``finally``/``async with``) was deferred to a task asyncio schedules later.
  A generator still suspended at the end inside a try/with block, whose consuming task
  has finished, is reported too. Source: PEP 525 ("Finalization"),
  https://docs.python.org/3/library/sys.html#sys.set_asyncgen_hooks, corpus 29
  (https://github.com/python/cpython/issues/88684).
- :class:`CrossLoopMonitor` (``cross-loop-resource``, AEX961): RuntimeErrors such as
  "... attached to a different loop", "... is bound to a different event loop" and
  "Event loop is closed" raised in tracked tasks, passed to the loop's exception
  handler, or raised by the profiled code itself; located at the innermost user line
  of the traceback. https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading
"""
from __future__ import annotations

import asyncio
import dis
import re
import sys
import weakref
from typing import Any

from ..model import Confidence, Section, Severity
from .instrument import Instrument
from .session import ProfileSession, is_library_file

__all__ = ["LIFECYCLE_CODES", "AsyncGenMonitor", "CrossLoopMonitor", "GatherMonitor"]

#: Codes of the runtime findings of this module.
LIFECYCLE_CODES = {
    "gather-partial-failure": "AEX960",
    "async-generator-not-closed": "AEX916",  # assigned in session.RUNTIME_CODES
    "cross-loop-resource": "AEX961",
}

_GATHER_DOC = "https://docs.python.org/3/library/asyncio-task.html#asyncio.gather"
_TG_DOC = "https://docs.python.org/3/library/asyncio-task.html#task-groups"
_AGEN_DOC = "https://docs.python.org/3/library/sys.html#sys.set_asyncgen_hooks"
_ACLOSING_DOC = "https://docs.python.org/3/library/contextlib.html#contextlib.aclosing"
_PEP525 = "https://peps.python.org/pep-0525/#finalization"
_MAX = 10_000


def _qualname(obj: Any) -> str:
    try:
        coro = obj.get_coro()
    except Exception:
        coro = obj
    return getattr(coro, "__qualname__", type(coro).__name__)


# ---------------------------------------------------------------------------
# gather
# ---------------------------------------------------------------------------

def _short_reprs(text: str) -> str:
    """Shorten ``<Task pending name='Task-3' coro=<...> cb=[...]>`` style reprs in an
    error message to ``<Task 'Task-3'>`` / ``<Future>`` (they nest, so count brackets)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith(("<Task ", "<Future ", "<_GatheringFuture "), i):
            depth, j = 0, i
            while j < len(text):
                depth += text[j] == "<"
                depth -= text[j] == ">"
                j += 1
                if depth == 0:
                    break
            inner = text[i:j]
            kind = inner[1:].split(" ", 1)[0]
            name = re.search(r"name='([^']*)'", inner)
            out.append(f"<{kind} {name.group(1)!r}>" if name else f"<{kind}>")
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)

class GatherMonitor(Instrument):
    """Children of a failed ``asyncio.gather`` that keep running (see the module docstring)."""

    name = "gather"

    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.active = True
        self.grace = max(0.1, 2.0 * session.threshold_ms / 1000.0)
        self.failures: list[dict[str, Any]] = []
        self.handles: list[Any] = []
        self.cls = getattr(asyncio.tasks, "_GatheringFuture", None)
        self.orig = self.cls.__dict__.get("__init__") if self.cls is not None else None
        if self.orig is None:
            return
        orig = self.orig
        this = self

        def __init__(outer: Any, children: Any, *args: Any, **kwargs: Any) -> None:
            orig(outer, children, *args, **kwargs)
            if this.active:
                try:
                    this._note(outer, children)
                except Exception:  # pragma: no cover - defensive
                    pass

        __init__._aex_session = session  # type: ignore[attr-defined]
        __init__.__wrapped__ = orig  # type: ignore[attr-defined]
        setattr(self.cls, "__init__", __init__)  # noqa: B010 - a class attribute patch

    def _note(self, outer: Any, children: Any) -> None:
        user = self.session.user_frame(sys._getframe(2))
        if user is None or len(self.failures) >= _MAX:
            return
        site = (user.f_code.co_filename, user.f_lineno, getattr(user.f_code, "co_qualname", user.f_code.co_name))
        refs = [weakref.ref(c) for c in children]
        this = self

        def done(fut: Any) -> None:
            if not this.active or fut.cancelled():
                return
            exc = getattr(fut, "_exception", None)
            if exc is None:
                return
            pending = [r for r in refs if (c := r()) is not None and not c.done()]
            if not pending:
                return
            rec = {
                "site": site,
                "exception": f"{type(exc).__name__}: {exc}",
                "t_fail": this.session.now_s(),
                "pending": pending,
                "children": len(refs),
                "still": [],
            }
            this.failures.append(rec)
            loop = this.session.loop
            if loop is not None:
                this.handles.append(loop.call_later(this.grace, this._recheck, rec))

        outer.add_done_callback(done)

    def _recheck(self, rec: dict[str, Any]) -> None:
        if rec.get("checked"):
            return
        rec["checked"] = True
        now = self.session.now_s()
        for r in rec["pending"]:
            t = r()
            if t is not None and not t.done():
                rec["still"].append({"ref": r, "coro": _qualname(t), "name": t.get_name(), "at_s": now})

    def before_uninstall(self, session: ProfileSession) -> None:
        for rec in self.failures:
            if not rec.get("checked") and session.now_s() - rec["t_fail"] >= min(self.grace, 0.02):
                self._recheck(rec)

    def uninstall(self, session: ProfileSession) -> None:
        self.active = False
        for h in getattr(self, "handles", ()):
            h.cancel()
        cls = getattr(self, "cls", None)
        if cls is not None and getattr(cls.__dict__.get("__init__"), "_aex_session", None) is session:
            setattr(cls, "__init__", self.orig)  # noqa: B010

    def finish(self, session: ProfileSession, report: Any) -> None:
        groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for rec in self.failures:
            if rec["still"]:
                groups.setdefault(rec["site"], []).append(rec)
        for (fn, line, func), recs in groups.items():
            kept = []
            for rec in recs:
                for child in rec["still"]:
                    t = child["ref"]()
                    row = session.tasks.lookup(t) if t is not None else None
                    end_s = row.get("end_s") if row else None
                    ran_ms = ((end_s if end_s is not None else session.now_s()) - rec["t_fail"]) * 1000.0
                    kept.append({"coro": child["coro"], "name": child["name"], "ran_ms": ran_ms,
                                 "state": (row or {}).get("state", "pending" if t is not None and not t.done() else "")})
            if not kept:
                continue
            names = ", ".join(sorted({k["coro"] for k in kept}))
            longest = max(k["ran_ms"] for k in kept)
            where = session.where(fn, line)
            session.add_finding(
                "gather-partial-failure",
                f"asyncio.gather at {where} raised {recs[0]['exception']}, but {len(kept)} of its children ({names}) "
                f"kept running for up to {longest:.0f} ms afterwards (leaked tasks created at {where})",
                filename=fn,
                line=line,
                symbol=func,
                severity=Severity.WARNING,
                section=Section.ERROR_HANDLING,
                explanation=(
                    "gather() without return_exceptions propagates the first exception and does not cancel the other "
                    "children; they keep running on state that is already dead, and gather's finished future can no "
                    "longer cancel them."
                ),
                fix="Use asyncio.TaskGroup (it cancels the siblings when one child fails), or cancel the pending children yourself.",
                fix_example=(
                    "# before\nawait asyncio.gather(keepalive(conn), handle_messages(conn))\n"
                    "# after\nasync with asyncio.TaskGroup() as tg:\n    tg.create_task(keepalive(conn))\n"
                    "    tg.create_task(handle_messages(conn))"
                ),
                references=(_GATHER_DOC, _TG_DOC, "https://github.com/python/asyncio/issues/238"),
                confidence=Confidence.HIGH,
                code=LIFECYCLE_CODES["gather-partial-failure"],
                extra={
                    "failures": len(recs),
                    "exception": recs[0]["exception"],
                    "children": recs[0]["children"],
                    "kept_running": [f"{k['name']} ({k['coro']}): {k['ran_ms']:.0f} ms, {k['state']}" for k in kept[:10]],
                    "ran_after_failure_ms": round(longest, 3),
                },
            )


# ---------------------------------------------------------------------------
# async generators
# ---------------------------------------------------------------------------
def _pending_cleanup(frame: Any) -> bool:
    """True when a suspended frame is inside a try/finally, try/except or with block
    (its exception table covers the current instruction)."""
    if frame is None:
        return False
    try:
        lasti = frame.f_lasti
        parse = getattr(dis, "_parse_exception_table", None)
        if parse is None:
            return True  # cannot tell: assume cleanup is pending
        return any(e.start <= lasti < e.end for e in parse(frame.f_code))
    except Exception:
        return True


class AsyncGenMonitor(Instrument):
    """Async generators abandoned without ``aclose()`` (see the module docstring)."""

    name = "asyncgen"

    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.active = True
        self.gens: dict[int, dict[str, Any]] = {}
        self.finalized: list[dict[str, Any]] = []
        self.prev = sys.get_asyncgen_hooks()
        prev_first, prev_final = self.prev.firstiter, self.prev.finalizer
        this = self

        def firstiter(agen: Any) -> None:
            if this.active:
                try:
                    this._first(agen)
                except Exception:  # pragma: no cover - defensive
                    pass
            if prev_first is not None:
                prev_first(agen)

        def finalizer(agen: Any) -> None:
            # stays the finalizer of generators first iterated during the session: always chain
            if this.active:
                try:
                    this._final(agen)
                except Exception:  # pragma: no cover - defensive
                    pass
            prev_final(agen)  # type: ignore[misc]

        firstiter._aex_session = session  # type: ignore[attr-defined]
        self.firstiter = firstiter
        # without a previous finalizer (no asyncio loop set the hooks) CPython closes the
        # generator itself; replacing that by a Python finalizer would change behaviour
        self.finalizer = finalizer if prev_final is not None else None
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=self.finalizer)

    def _first(self, agen: Any) -> None:
        s = self.session
        caller = s.user_frame(sys._getframe(2))
        task = None
        try:
            task = asyncio.current_task()
        except RuntimeError:
            pass
        if len(self.gens) >= _MAX:
            # weak references die before the finalizer runs (gen_dealloc clears them first), so
            # records are not dropped by a callback; dead ones are pruned here instead
            for k in [k for k, r in self.gens.items() if r["ref"]() is None]:
                del self.gens[k]
        self.gens[id(agen)] = {
            "ref": weakref.ref(agen),
            "qualname": getattr(agen, "__qualname__", type(agen).__name__),
            "file": caller.f_code.co_filename if caller is not None else "",
            "line": caller.f_lineno if caller is not None else 0,
            "func": getattr(caller.f_code, "co_qualname", caller.f_code.co_name) if caller is not None else "",
            "task": weakref.ref(task) if task is not None else None,
            "host": task is not None and task is s.host_task,
            "t_s": s.now_s(),
        }

    def _final(self, agen: Any) -> None:
        rec = self.gens.pop(id(agen), None)
        if rec is None or rec["qualname"] != getattr(agen, "__qualname__", ""):
            return
        if rec["ref"]() is not None and rec["ref"]() is not agen:
            return
        frame = getattr(agen, "ag_frame", None)
        rec = dict(rec)
        rec["why"] = "finalized"
        rec["cleanup"] = _pending_cleanup(frame)
        rec["suspended_at"] = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("", 0)
        rec["t_end"] = self.session.now_s()
        self.finalized.append(rec)

    def before_uninstall(self, session: ProfileSession) -> None:
        for rec in list(self.gens.values()):
            agen = rec["ref"]()
            if agen is None or getattr(agen, "ag_running", False):
                continue
            frame = getattr(agen, "ag_frame", None)
            if frame is None or frame.f_lasti < 0:
                continue  # finished, closed, or never started
            task = rec["task"]() if rec["task"] is not None else None
            if rec["host"] or task is None or not task.done():
                continue  # its consumer may still use it (a later cell, a running task)
            if not _pending_cleanup(frame):
                continue
            rec = dict(rec)
            rec["why"] = "suspended"
            rec["cleanup"] = True
            rec["suspended_at"] = (frame.f_code.co_filename, frame.f_lineno)
            rec["t_end"] = session.now_s()
            self.finalized.append(rec)

    def uninstall(self, session: ProfileSession) -> None:
        self.active = False
        prev = getattr(self, "prev", None)
        if prev is not None and getattr(sys.get_asyncgen_hooks().firstiter, "_aex_session", None) is session:
            sys.set_asyncgen_hooks(firstiter=prev.firstiter, finalizer=prev.finalizer)

    def finish(self, session: ProfileSession, report: Any) -> None:
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rec in self.finalized:
            if not rec["file"] or not rec["cleanup"]:
                continue  # nothing deferred: an abandoned generator with no cleanup is harmless
            groups.setdefault((rec["file"], rec["line"]), []).append(rec)
        for (fn, line), recs in groups.items():
            r0 = recs[0]
            where = session.where(fn, line)
            sfile, sline = r0["suspended_at"]
            susp = session.where(sfile, sline) if sfile else "a yield"
            alive_ms = max((r["t_end"] - r["t_s"]) * 1000.0 for r in recs)
            finalized = sum(1 for r in recs if r["why"] == "finalized")
            session.add_finding(
                "async-generator-not-closed",
                f"async generator {r0['qualname']} iterated at {where} was abandoned while suspended at {susp} inside "
                f"a try/finally or async with ({len(recs)} time(s)); its cleanup was "
                + ("deferred to the garbage collector's finalizer" if finalized else "still pending at the end")
                + f" after {alive_ms:.0f} ms",
                filename=fn,
                line=line,
                symbol=r0["func"],
                severity=Severity.WARNING,
                section=Section.ASYNC_PATTERNS,
                explanation=(
                    "Leaving `async for` early (break, return, an exception) does not close the generator: its "
                    "finally blocks and `async with` exits run only when it is garbage-collected (then asyncio "
                    "schedules aclose() as a new task) or at loop shutdown, so what it holds (a connection, a lock, a "
                    "semaphore token) stays taken meanwhile."
                ),
                fix="Close the generator deterministically: `async with contextlib.aclosing(gen()) as rows: async for ...`.",
                fix_example=(
                    "# before\nasync for row in fetch_rows(pool, 10):\n    if row >= 2:\n        break\n"
                    "# after\nasync with contextlib.aclosing(fetch_rows(pool, 10)) as rows:\n    async for row in rows:\n"
                    "        if row >= 2:\n            break"
                ),
                references=(_ACLOSING_DOC, _AGEN_DOC, _PEP525, "https://github.com/python/cpython/issues/88684"),
                confidence=Confidence.HIGH if finalized else Confidence.MEDIUM,
                code=LIFECYCLE_CODES["async-generator-not-closed"],
                extra={"generators": len(recs), "finalized_by_gc": finalized, "alive_ms": round(alive_ms, 3),
                       "suspended_at": susp},
            )


# ---------------------------------------------------------------------------
# cross-loop resources
# ---------------------------------------------------------------------------
_CROSS = re.compile(
    r"attached to a different loop|bound to a different event loop|different event loop|"
    r"Event loop is closed|is not the running loop|got Future .* attached to a different loop"
)


class CrossLoopMonitor(Instrument):
    """RuntimeErrors that say an asyncio object was used on the wrong (or a closed) loop."""

    name = "cross-loop"

    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.seen: list[dict[str, Any]] = []
        self.ids: set[int] = set()

    def _note(self, exc: BaseException | None, where: str) -> None:
        if not isinstance(exc, RuntimeError) or id(exc) in self.ids or len(self.seen) >= _MAX:
            return
        text = str(exc)
        if not _CROSS.search(text):
            return
        self.ids.add(id(exc))
        fn, line, func = "", 0, ""
        chain = []
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if not is_library_file(code.co_filename):
                fn, line, func = code.co_filename, tb.tb_lineno, getattr(code, "co_qualname", code.co_name)
                chain.append((fn, line, func))
            tb = tb.tb_next
        self.seen.append({"file": fn, "line": line, "func": func, "message": text, "where": where, "chain": chain,
                          "t_s": self.session.now_s()})

    def task_done(self, session: ProfileSession, task: asyncio.Task, record: dict[str, Any]) -> None:
        if record.get("state") == "failed":
            self._note(getattr(task, "_exception", None), f"task {record.get('name', '')}")

    def exception_handler(self, session: ProfileSession, context: dict[str, Any]) -> None:
        self._note(context.get("exception"), "the loop's exception handler")

    def before_uninstall(self, session: ProfileSession) -> None:
        exc = getattr(session, "exc_value", None) or sys.exc_info()[1]
        seen = 0
        while exc is not None and seen < 8:  # the error itself, or what it was raised from
            self._note(exc, "the profiled code")
            exc = exc.__cause__ or exc.__context__
            seen += 1

    def finish(self, session: ProfileSession, report: Any) -> None:
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rec in self.seen:
            if rec["file"]:
                groups.setdefault((rec["file"], rec["line"]), []).append(rec)
        for (fn, line), recs in groups.items():
            r0 = recs[0]
            closed = "closed" in r0["message"]
            session.add_finding(
                "cross-loop-resource",
                f"{session.where(fn, line)} raised RuntimeError: {_short_reprs(r0['message'])[:200]} (in {r0['where']}, {len(recs)} time(s))",
                filename=fn,
                line=line,
                symbol=r0["func"],
                severity=Severity.CRITICAL,
                section=Section.CRITICAL_ISSUES,
                explanation=(
                    "Futures, tasks, locks, queues and clients are bound to the event loop they were first used on. "
                    + ("This one belongs to a loop that has been closed (for example by an earlier asyncio.run())."
                       if closed else "Using them from another loop (a second asyncio.run(), a loop in a thread) fails.")
                ),
                fix=(
                    "Create loop-bound objects inside the coroutine that runs on the loop that uses them (not at import "
                    "time or in a previous asyncio.run()); hand work to another loop with asyncio.run_coroutine_threadsafe."
                ),
                fix_example=(
                    "# before\nlock = asyncio.Lock()          # module level, first used by one asyncio.run()\n"
                    "asyncio.run(job(lock)); asyncio.run(job(lock))\n"
                    "# after\nasync def main():\n    lock = asyncio.Lock()      # created on the loop that uses it\n"
                    "    await job(lock)"
                ),
                references=(
                    "https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading",
                    "https://docs.python.org/3/library/asyncio-task.html#asyncio.run_coroutine_threadsafe",
                ),
                confidence=Confidence.HIGH,
                call_chain=tuple(session.describe_frame(f, ln, q) for f, ln, q in r0["chain"]),
                code=LIFECYCLE_CODES["cross-loop-resource"],
                extra={"errors": len(recs), "message": r0["message"][:500], "first_t_ms": round(r0["t_s"] * 1000.0, 3)},
            )
