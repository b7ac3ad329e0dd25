"""Contention on asyncio primitives, and deadlocks found at runtime.

:class:`ContentionMonitor` patches, for the session only and at class level,
``asyncio.Lock.acquire/release``, ``asyncio.Semaphore.acquire/release`` (and so
``BoundedSemaphore``), ``asyncio.Event.wait``, ``asyncio.Condition.wait`` and
``asyncio.Queue.get/put`` (and so ``PriorityQueue``/``LifoQueue``), plus their
``__init__`` to remember where each primitive was created. An acquisition that does
not wait costs one extra coroutine frame and a dict look-up; only a call that has to
wait writes a row of :data:`~async_expert_ext.model.LOCK_COLUMNS`.

Findings (``source="runtime"``):

- ``lock-held-across-await`` (AEX930): an ``asyncio.Lock`` held for at least the
  session threshold while other tasks waited for it and its holder was suspended on a
  future (``Task._fut_waiter``: I/O, a timer, another task; not a bare ``sleep(0)``
  yield). A waiter can only ever find the lock taken when the holder suspended with
  the lock held, so every wait is evidence of an ``await`` inside the critical
  section; the holder's await stack is sampled when a waiter arrives, to name what it
  was awaiting.
- ``deadlock`` (AEX931), three shapes:

  1. a task waits on a ``Lock`` it holds itself (asyncio locks are not re-entrant),
     or on a ``Semaphore`` whose every holder is the waiting task (corpus 19: a
     self-call through a client that holds its lock; corpus 29: an async generator
     of the same task still holds the only token). Reported at once; located at the
     call that re-entered the function holding the lock, else the waiting line;
  2. a wait-for cycle, or a waiter stuck for ``deadlock_s`` on a lock whose holder is
     itself stuck waiting (on another primitive, on an ``Event`` never set ...) or
     finished without releasing it (checked every ``deadlock_s / 4`` while waits are
     in flight);
  3. the loop thread blocked in a *threading* lock acquire while the lock's owner is
     a task of the same loop suspended inside ``with <threading lock>:`` (corpus 21).
     When the periodic check runs late (a stall just ended), suspended tasks are
     inspected for a ``with`` block on a locked ``threading.Lock``/``RLock``, and the
     stall is matched with the :class:`~.detectors.BlockingDetector` rows.

Sources: https://docs.python.org/3/library/asyncio-sync.html (asyncio locks are not
thread-safe and not re-entrant), https://github.com/Oaklight/zerodep/issues/76 (the
lock held across a network round trip), https://github.com/skypilot-org/skypilot/pull/7688
(a threading lock held across an await).
"""
from __future__ import annotations

import ast
import functools
import asyncio
import inspect
import linecache
import math
import os
import re
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..model import Confidence, Section, Severity
from .instrument import Instrument
from .session import ProfileSession, is_library_file

__all__ = ["CONTENTION_CODES", "ContentionMonitor"]

#: Codes of the runtime findings of this module.
CONTENTION_CODES = {"lock-held-across-await": "AEX930", "deadlock": "AEX931"}

_SYNC_DOC = "https://docs.python.org/3/library/asyncio-sync.html"
_LOCK_DOC = "https://docs.python.org/3/library/asyncio-sync.html#asyncio.Lock"
_THREAD_DOC = "https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading"
_MAX_ROWS = 50_000
_MAX_CHAIN = 24
_AENTER = asyncio.locks._ContextManagerMixin.__aenter__.__code__  # type: ignore[attr-defined]
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_TASK_BOTTOM = frozenset(
    c
    for c in (
        getattr(asyncio.tasks.Task, "_Task__step", None),
        getattr(asyncio.tasks.Task, "_Task__wakeup", None),
        getattr(asyncio.events.Handle, "_run", None),
    )
    if c is not None
    for c in [c.__code__]
)
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))

# (class, attribute) pairs patched for the session
_TARGETS: tuple[tuple[type, str], ...] = (
    (asyncio.Lock, "__init__"),
    (asyncio.Lock, "acquire"),
    (asyncio.Lock, "release"),
    (asyncio.Semaphore, "__init__"),
    (asyncio.Semaphore, "acquire"),
    (asyncio.Semaphore, "release"),
    (asyncio.Event, "__init__"),
    (asyncio.Event, "wait"),
    (asyncio.Condition, "__init__"),
    (asyncio.Condition, "wait"),
    (asyncio.Queue, "__init__"),
    (asyncio.Queue, "get"),
    (asyncio.Queue, "put"),
)



def _ident(kind: str, name: str) -> str:
    """``"Lock created at In[3]:5"`` / ``"Lock (created before the profile)"`` for messages."""
    if name and not name.startswith("("):
        return f"{kind} created at {name}"
    return f"{kind} {name}".strip()

class _State:
    """Bookkeeping for one primitive (only for primitives used during the session)."""

    __slots__ = (
        "acquisitions",
        "contended",
        "contended_hold_max",
        "contended_hold_total",
        "contended_holds",
        "file",
        "held_across",
        "hold_sites",
        "holders",
        "kind",
        "line",
        "name",
        "peak_waiting",
        "pending_rows",
        "ref",
        "wait_max",
        "wait_total",
        "waiting",
        "waits",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = ""
        self.file = ""
        self.line = 0
        self.ref: Any = None
        self.acquisitions = 0
        self.waits = 0
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.waiting = 0
        self.peak_waiting = 0
        #: current holders: [task_ref, since, code, file, line, contended, row]
        self.holders: list[list[Any]] = []
        self.contended = False
        self.hold_sites: Counter[tuple[str, int, str]] = Counter()  # contended hold ms by acquire site
        self.held_across: Counter[str] = Counter()  # what holders were awaiting when a waiter came
        self.contended_hold_max = 0.0
        self.contended_hold_total = 0.0
        self.contended_holds = 0
        self.pending_rows: list[dict[str, Any]] = []


def _task_name(task: Any) -> str:
    if task is None:
        return ""
    try:
        coro = task.get_coro()
        return f"{task.get_name()} ({getattr(coro, '__qualname__', type(coro).__name__)})"
    except Exception:
        return repr(task)[:120]


def _current_task() -> Any:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class ContentionMonitor(Instrument):
    """Wait times on asyncio Lock/Semaphore/Event/Condition/Queue, lock holders, deadlocks.

    Args:
        deadlock_s: a waiter stuck this long (seconds) whose lock holder is stuck too
            is a deadlock. Default 1 s (the order of the missing-timeout check).

    Rows go to ``LoopReport.lock_records`` (:data:`~async_expert_ext.model.LOCK_COLUMNS`;
    ``wait_ms`` NaN when still waiting at the end) and a per-primitive summary to
    ``LoopReport.tables["contention"]`` with columns ``primitive``, ``name``,
    ``acquisitions``, ``waits``, ``wait_ms_total``, ``wait_ms_max``, ``peak_waiters``,
    ``contended_hold_ms_max`` (ms).
    """

    name = "contention"

    def __init__(self, deadlock_s: float = 1.0) -> None:
        super().__init__()
        self.deadlock_s = deadlock_s
        self.saved: dict[tuple[type, str], Any] = {}

    # -- install / uninstall ----------------------------------------------
    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.active = True
        self.states: dict[int, _State] = {}
        self.all_states: list[_State] = []  # outlive their primitives, for the report
        self.rows: list[dict[str, Any]] = []
        self.inflight: dict[int, dict[str, Any]] = {}  # id(row) -> wait record
        self.deadlocks: dict[tuple[str, int], dict[str, Any]] = {}
        self.thread_holders: list[dict[str, Any]] = []
        self.threshold = session.threshold_ms / 1000.0
        for cls, attr in _TARGETS:
            self.saved[(cls, attr)] = cls.__dict__[attr]
        wrappers = self._wrappers()
        for (cls, attr), fn in wrappers.items():
            fn._aex_session = session  # type: ignore[attr-defined]
            fn.__wrapped__ = self.saved[(cls, attr)]  # type: ignore[attr-defined]
            setattr(cls, attr, fn)
        assert session.loop is not None
        self.check_every = max(0.05, min(self.deadlock_s / 4.0, 0.25))
        self.expected = session.loop.time() + self.check_every
        self.check_handle = session.loop.call_later(self.check_every, self._check)

    def uninstall(self, session: ProfileSession) -> None:
        self.active = False
        for (cls, attr), orig in self.saved.items():
            current = cls.__dict__.get(attr)
            if getattr(current, "_aex_session", None) is session:
                setattr(cls, attr, orig)
        h = getattr(self, "check_handle", None)
        if h is not None:
            h.cancel()

    # -- helpers -------------------------------------------------------------
    def _state(self, obj: Any, kind: str) -> _State:
        st = self.states.get(id(obj))
        if st is None or st.ref() is not obj:
            st = _State(kind)
            key = id(obj)
            states = self.states
            st.ref = weakref.ref(obj, functools.partial(_forget, states, key))
            st.name = "(created before the profile)"
            states[key] = st
            if len(self.all_states) < _MAX_ROWS:
                self.all_states.append(st)
        return st

    def _user_site(self, frame: Any) -> tuple[str, int, str, tuple[tuple[str, int, str], ...]]:
        """(file, line, qualname, chain) of the innermost frame outside asyncio when that is
        user code (chain: the user frames, innermost first); a library caller (a framework's
        own Event or Queue) is named as such, with no chain."""
        f: Any = frame
        while f is not None and f.f_code.co_filename.startswith(_ASYNCIO_DIR):
            f = f.f_back
        if f is not None and is_library_file(f.f_code.co_filename):
            return f.f_code.co_filename, f.f_lineno, getattr(f.f_code, "co_qualname", f.f_code.co_name), ()
        user = self.session.user_frame(frame)
        if user is None:
            return "", 0, "", ()
        chain: list[tuple[str, int, str]] = []
        f = user
        while f is not None and len(chain) < _MAX_CHAIN:
            code = f.f_code
            if code in _TASK_BOTTOM:
                break  # the bottom of this task's stack: what is below runs the loop
            if not is_library_file(code.co_filename):
                chain.append((code.co_filename, f.f_lineno, getattr(code, "co_qualname", code.co_name)))
            f = f.f_back
        return chain[0][0], chain[0][1], chain[0][2], tuple(chain)

    def _wrappers(self) -> dict[tuple[type, str], Callable[..., Any]]:
        this = self
        saved = self.saved
        perf = time.perf_counter

        def make_init(cls: type, kind: str) -> Callable[..., Any]:
            orig = saved[(cls, "__init__")]

            def __init__(obj: Any, *args: Any, **kwargs: Any) -> None:
                orig(obj, *args, **kwargs)
                if this.active:
                    st = this._state(obj, type(obj).__name__ if kind != "Queue" else "Queue")
                    f: Any = sys._getframe(1)
                    while f is not None and f.f_code.co_filename.startswith(_ASYNCIO_DIR):
                        f = f.f_back
                    if f is not None:
                        st.file, st.line = f.f_code.co_filename, f.f_lineno
                        st.name = this.session.where(st.file, st.line)

            return __init__

        lock_acquire = saved[(asyncio.Lock, "acquire")]
        lock_release = saved[(asyncio.Lock, "release")]
        sem_acquire = saved[(asyncio.Semaphore, "acquire")]
        sem_release = saved[(asyncio.Semaphore, "release")]

        def make_acquire(orig: Callable[..., Any], kind: Callable[[Any], str], free: Callable[[Any], bool]) -> Callable[..., Any]:
            """``acquire`` of a Lock or Semaphore: a free one is only recorded as taken;
            a wait is timed (a row), then recorded as taken by the waiter."""

            async def acquire(prim: Any) -> bool:
                if not this.active:
                    return await orig(prim)
                st = this._state(prim, kind(prim))
                if free(prim):
                    result = await orig(prim)
                    this._acquired(st, sys._getframe(1), perf(), None)
                    return result
                row = this._wait_start(st, prim, sys._getframe(1))
                try:
                    result = await orig(prim)
                except BaseException:
                    this._wait_end(st, row, acquired=False)
                    raise
                this._wait_end(st, row, acquired=True)
                this._acquired(st, sys._getframe(1), perf(), row)
                return result

            return acquire

        def make_release(orig: Callable[..., Any]) -> Callable[..., Any]:
            def release(prim: Any) -> None:
                orig(prim)
                if this.active:
                    st = this.states.get(id(prim))
                    if st is not None:
                        this._released(st, perf())

            return release

        acquire_lock = make_acquire(lock_acquire, lambda _lock: "Lock", lambda lock: not lock._locked)
        release_lock = make_release(lock_release)
        acquire_sem = make_acquire(sem_acquire, lambda sem: type(sem).__name__, lambda sem: not sem.locked())
        release_sem = make_release(sem_release)

        def make_wait(cls: type, attr: str, kind: str, ready: Callable[[Any], bool]) -> Callable[..., Any]:
            orig = saved[(cls, attr)]

            async def wait(obj: Any, *args: Any, **kwargs: Any) -> Any:
                if not this.active or ready(obj):
                    return await orig(obj, *args, **kwargs)
                st = this._state(obj, kind)
                row = this._wait_start(st, obj, sys._getframe(1))
                try:
                    result = await orig(obj, *args, **kwargs)
                except BaseException:
                    this._wait_end(st, row, acquired=False)
                    raise
                this._wait_end(st, row, acquired=False)
                return result

            wait.__name__ = attr
            wait.__qualname__ = f"{cls.__name__}.{attr}"
            return wait

        return {
            (asyncio.Lock, "__init__"): make_init(asyncio.Lock, "Lock"),
            (asyncio.Lock, "acquire"): acquire_lock,
            (asyncio.Lock, "release"): release_lock,
            (asyncio.Semaphore, "__init__"): make_init(asyncio.Semaphore, "Semaphore"),
            (asyncio.Semaphore, "acquire"): acquire_sem,
            (asyncio.Semaphore, "release"): release_sem,
            (asyncio.Event, "__init__"): make_init(asyncio.Event, "Event"),
            (asyncio.Event, "wait"): make_wait(asyncio.Event, "wait", "Event", lambda e: e._value),
            (asyncio.Condition, "__init__"): make_init(asyncio.Condition, "Condition"),
            (asyncio.Condition, "wait"): make_wait(asyncio.Condition, "wait", "Condition", lambda c: False),
            (asyncio.Queue, "__init__"): make_init(asyncio.Queue, "Queue"),
            (asyncio.Queue, "get"): make_wait(asyncio.Queue, "get", "Queue", lambda q: bool(q._queue)),
            (asyncio.Queue, "put"): make_wait(asyncio.Queue, "put", "Queue", lambda q: not q.full()),
        }

    # -- bookkeeping (loop thread) ----------------------------------------------
    def _acquired(self, st: _State, frame: Any, now: float, row: dict[str, Any] | None) -> None:
        st.acquisitions += 1
        if frame is not None and frame.f_code is _AENTER:
            frame = frame.f_back
        code = frame.f_code if frame is not None else None
        line = frame.f_lineno if frame is not None else 0
        task = _current_task()
        st.holders.append([weakref.ref(task) if task is not None else None, now, code, line, False, row])
        if not st.waiting:
            st.contended = False

    def _released(self, st: _State, now: float) -> None:
        holders = st.holders
        if not holders:
            return
        idx = 0
        if len(holders) > 1:
            task = _current_task()
            for i, h in enumerate(holders):
                if h[0] is not None and h[0]() is task:
                    idx = i
                    break
        ref, since, code, line, contended, row = holders.pop(idx)
        hold = now - since
        if row is not None:
            row["hold_ms"] = hold * 1000.0
        if contended:
            st.contended_holds += 1
            st.contended_hold_total += hold
            st.contended_hold_max = max(st.contended_hold_max, hold)
            if code is not None:
                st.hold_sites[(code.co_filename, line, getattr(code, "co_qualname", code.co_name))] += hold

    def _wait_start(self, st: _State, obj: Any, frame: Any) -> dict[str, Any]:
        s = self.session
        task = _current_task()
        fn, line, func, chain = self._user_site(frame)
        holder_tasks = [h[0]() if h[0] is not None else None for h in st.holders]
        for h, t in zip(st.holders, holder_tasks):
            # this hold now has a waiter while its holder is suspended on a future (I/O, a
            # timer, another task): a holder that is merely ready to run again (sleep(0))
            # only waits for its turn on a busy loop, which is not what the finding is about
            if t is None or (t is not task and getattr(t, "_fut_waiter", None) is not None):
                h[4] = True
        if st.holders and len(self.rows) < _MAX_ROWS:
            # what is the holder awaiting while it keeps the lock?
            from .detectors import await_stack

            for t in holder_tasks[:3]:
                if t is not None and t is not task and not t.done():
                    st.held_across[_held_across(s, await_stack(t))] += 1
        st.waits += 1
        st.waiting += 1
        st.peak_waiting = max(st.peak_waiting, st.waiting)
        row = {
            "primitive": st.kind,
            "name": st.name,
            "task": _task_name(task),
            "location": s.where(fn, line) if fn else "",
            "start_s": s.now_s(),
            "wait_ms": math.nan,
            "hold_ms": math.nan,
            "holder": ", ".join(_task_name(t) for t in holder_tasks[:3] if t is not None),
        }
        if len(self.rows) < _MAX_ROWS:
            self.rows.append(row)
        rec = {
            "row": row,
            "state": st,
            "task": weakref.ref(task) if task is not None else None,
            "t0": time.perf_counter(),
            "file": fn,
            "line": line,
            "func": func,
            "chain": chain,
            "obj": weakref.ref(obj),
        }
        self.inflight[id(row)] = rec
        # a task waiting on a lock (or on every token of a semaphore) it holds itself
        if task is not None and holder_tasks and all(t is task for t in holder_tasks) and st.kind != "Condition":
            self._self_deadlock(st, rec)
        return row

    def _wait_end(self, st: _State, row: dict[str, Any], acquired: bool) -> None:
        rec = self.inflight.pop(id(row), None)
        st.waiting = max(0, st.waiting - 1)
        t0 = rec["t0"] if rec else time.perf_counter()
        wait = time.perf_counter() - t0
        row["wait_ms"] = wait * 1000.0
        st.wait_total += wait
        st.wait_max = max(st.wait_max, wait)
        if rec is not None and rec.get("deadlock") is not None:
            rec["deadlock"]["waited_ms"] = max(rec["deadlock"].get("waited_ms", 0.0), wait * 1000.0)
            rec["deadlock"]["ended"] = "acquired" if acquired else "cancelled or failed"

    # -- deadlocks ----------------------------------------------------------------
    def _self_deadlock(self, st: _State, rec: dict[str, Any]) -> None:
        holder = st.holders[0]
        holder_code = holder[2]
        chain = rec["chain"]
        fn, line, func = rec["file"], rec["line"], rec["func"]
        # the lock is taken again by the function that holds it, reached through a
        # call chain: locate the call that re-entered it
        def same(entry: tuple[str, int, str]) -> bool:
            return holder_code is not None and entry[0] == holder_code.co_filename and entry[2] == getattr(holder_code, "co_qualname", holder_code.co_name)

        if chain and same(chain[0]) and any(same(e) for e in chain[1:]):
            fn, line, func = chain[1]
        key = (fn, line)
        if not fn or key in self.deadlocks:
            return
        self.deadlocks[key] = rec["deadlock"] = {
            "shape": "self",
            "file": fn,
            "line": line,
            "func": func,
            "primitive": st.kind,
            "name": st.name,
            "task": rec["row"]["task"],
            "wait_at": self.session.where(rec["file"], rec["line"]) if rec["file"] else "",
            "held_at": self.session.where(holder_code.co_filename, holder[3]) if holder_code is not None else "",
            "chain": chain,
            "waited_ms": 0.0,
            "ended": "still waiting at the end",
        }

    def _check(self) -> None:
        s = self.session
        if not s.active or not self.active:
            return
        loop = s.loop
        assert loop is not None
        now_loop = loop.time()
        late = now_loop - self.expected
        if late >= self.threshold:
            try:
                self._scan_thread_locks(late)
            except Exception as exc:  # pragma: no cover - defensive
                s.report.errors.append(f"contention: threading-lock scan failed: {type(exc).__name__}: {exc}")
        if self.inflight:
            self._check_graph()
        self.expected = now_loop + self.check_every
        self.check_handle = loop.call_later(self.check_every, self._check)

    def _waiting_on(self) -> dict[Any, dict[str, Any]]:
        """task -> its in-flight wait record (oldest)."""
        out: dict[Any, dict[str, Any]] = {}
        for rec in self.inflight.values():
            t = rec["task"]() if rec["task"] is not None else None
            if t is not None and t not in out:
                out[t] = rec
        return out

    def _check_graph(self) -> None:
        now = time.perf_counter()
        waits = self._waiting_on()
        for task, rec in list(waits.items()):
            if now - rec["t0"] < self.deadlock_s or rec.get("deadlock") is not None:
                continue
            st: _State = rec["state"]
            if st.kind not in ("Lock", "Semaphore", "BoundedSemaphore") or not st.holders:
                continue
            path = [rec]
            verdict = ""
            seen = {task}
            cur = st
            for _ in range(16):
                holders = [h[0]() if h[0] is not None else None for h in cur.holders]
                if not holders:
                    break
                h = holders[0]
                if h is None or h.done():
                    verdict = "holder-finished"
                    break
                if h in seen:
                    verdict = "cycle"
                    break
                nxt = waits.get(h)
                if nxt is None or now - nxt["t0"] < self.deadlock_s:
                    break
                path.append(nxt)
                seen.add(h)
                nst: _State = nxt["state"]
                if nst.kind in ("Event", "Condition", "Queue"):
                    verdict = "holder-stuck"
                    break
                cur = nst
            if not verdict:
                continue
            key = (rec["file"], rec["line"])
            if not rec["file"] or key in self.deadlocks:
                continue
            self.deadlocks[key] = rec["deadlock"] = {
                "shape": verdict,
                "file": rec["file"],
                "line": rec["line"],
                "func": rec["func"],
                "primitive": st.kind,
                "name": st.name,
                "task": rec["row"]["task"],
                "wait_at": self.session.where(rec["file"], rec["line"]),
                "held_at": "",
                "chain": rec["chain"],
                "path": [f"{p['row']['task']} waits on {_ident(p['state'].kind, p['state'].name)} at {p['row']['location']}" for p in path],
                "waited_ms": (now - rec["t0"]) * 1000.0,
                "ended": "still waiting at the end",
            }

    # -- threading lock held by a suspended task (corpus 21) ---------------------------
    def _scan_thread_locks(self, late: float) -> None:
        from .detectors import await_stack

        s = self.session
        for task, row in s.tasks.alive()[:2000]:
            if task.done():
                continue
            try:
                coro = task.get_coro()
            except Exception:
                continue
            obj: Any = coro
            depth = 0
            while obj is not None and depth < _MAX_CHAIN:
                depth += 1
                frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)
                if frame is None:
                    break
                if not is_library_file(frame.f_code.co_filename):
                    for lock_line, expr, lock in _held_thread_locks(frame):
                        self.thread_holders.append(
                            {
                                "t_s": s.now_s(),
                                "late_ms": late * 1000.0,
                                "task": _task_name(task),
                                "file": frame.f_code.co_filename,
                                "with_line": lock_line,
                                "await_line": frame.f_lineno,
                                "lock": expr,
                                "stack": await_stack(task),
                            }
                        )
                nxt = getattr(obj, "cr_await", None)
                if nxt is None:
                    nxt = getattr(obj, "gi_yieldfrom", None)
                if nxt is None:
                    nxt = getattr(obj, "ag_await", None)
                obj = nxt

    def before_uninstall(self, session: ProfileSession) -> None:
        # last look at the graph (waits still in flight at the end)
        if self.inflight:
            try:
                self._check_graph()
            except Exception as exc:  # pragma: no cover - defensive
                session.report.errors.append(f"contention: {type(exc).__name__}: {exc}")

    # -- report ---------------------------------------------------------------------
    def finish(self, session: ProfileSession, report: Any) -> None:
        now = time.perf_counter()
        for rec in self.inflight.values():
            if rec.get("deadlock") is not None:
                rec["deadlock"]["waited_ms"] = (now - rec["t0"]) * 1000.0
        report.lock_records.extend(self.rows)
        summary = []
        for st in self.all_states:
            if not st.waits and not st.acquisitions:
                continue
            summary.append(
                {
                    "primitive": st.kind,
                    "name": st.name,
                    "acquisitions": st.acquisitions,
                    "waits": st.waits,
                    "wait_ms_total": st.wait_total * 1000.0,
                    "wait_ms_max": st.wait_max * 1000.0,
                    "peak_waiters": st.peak_waiting,
                    "contended_hold_ms_max": st.contended_hold_max * 1000.0,
                }
            )
            self._lock_finding(session, st)
        if summary:
            report.tables["contention"] = summary
        for d in self.deadlocks.values():
            if is_library_file(d["file"]):
                session.report.notes.append(
                    f"library code at {session.where(d['file'], d['line'])} waited on {d['primitive']} {d['name']} "
                    f"that could not be granted ({d['shape']}, {d['waited_ms']:.0f} ms)"
                )
                continue
            self._deadlock_finding(session, d)
        self._thread_lock_findings(session)

    def _lock_finding(self, session: ProfileSession, st: _State) -> None:
        if st.kind != "Lock" or not st.hold_sites:
            return
        if st.contended_hold_max < self.threshold or st.wait_max < self.threshold:
            return
        user_sites = [(site, held) for site, held in st.hold_sites.most_common() if not is_library_file(site[0])]
        if not user_sites:
            return  # a framework's own lock (the kernel's, a client library's): rows only
        (fn, line, func), held = user_sites[0]
        across = [a for a, _n in st.held_across.most_common(3) if a]
        where = session.where(fn, line)
        session.add_finding(
            "lock-held-across-await",
            f"{_ident('asyncio.Lock', st.name)} acquired at {where} was held for up to {st.contended_hold_max * 1000:.0f} ms "
            f"while {st.waits} wait(s) queued behind it ({st.wait_total:.2f} s waited in total, "
            f"up to {st.peak_waiting} waiter(s) at once)"
            + (f"; the holder was awaiting {across[0]}" if across else ""),
            filename=fn,
            line=line,
            symbol=func,
            severity=Severity.WARNING,
            section=Section.CONCURRENCY,
            explanation=(
                "The lock stays taken while its holder is suspended in an await (network I/O, a sleep, another "
                "task), so every other task that needs it queues up and the work runs one at a time."
            ),
            fix=(
                "Hold the lock only around the shared state it protects: read or update the state under the lock, "
                "do the slow await outside it (or use a per-key lock, or a Semaphore sized to the real limit)."
            ),
            fix_example=(
                "# before\nasync with self._lock:\n    return await self._round_trip(url)\n"
                "# after\nasync with self._lock:\n    token = self._next_token()\nreturn await self._round_trip(url, token)"
            ),
            references=(_LOCK_DOC, "https://github.com/Oaklight/zerodep/issues/76"),
            confidence=Confidence.HIGH,
            code=CONTENTION_CODES["lock-held-across-await"],
            extra={
                "primitive": st.name,
                "acquisitions": st.acquisitions,
                "waits": st.waits,
                "wait_ms_total": round(st.wait_total * 1000.0, 3),
                "wait_ms_max": round(st.wait_max * 1000.0, 3),
                "hold_ms_max": round(st.contended_hold_max * 1000.0, 3),
                "contended_holds": st.contended_holds,
                "peak_waiters": st.peak_waiting,
                "held_while_awaiting": across,
            },
        )

    def _deadlock_finding(self, session: ProfileSession, d: dict[str, Any]) -> None:
        shape = d["shape"]
        where = session.where(d["file"], d["line"])
        if shape == "self":
            what = (
                f"{d['task']} waits at {d['wait_at']} for {d['primitive']} {d['name']} that it already holds "
                f"(taken at {d['held_at']})"
                + (f"; the call at {where} re-entered the code that holds it" if d["wait_at"] != where else "")
            )
            explanation = (
                "asyncio.Lock is not re-entrant: a task that awaits a lock it holds waits for itself and never wakes "
                "up, and every other user of the lock queues behind it. A Semaphore whose every token is held by the "
                "waiting task (for example through an async generator it left suspended) is the same trap."
            )
            fix = (
                "Do not call back into code that takes the same lock while holding it: release it before the nested "
                "call, split the locked section, or give re-entrant paths their own lock."
            )
            example = (
                "# before\nasync with self._lock:\n    return await self._round_trip(url)  # may call self.request again\n"
                "# after\nasync with self._lock:\n    conn = self._conn\nreturn await self._round_trip(conn, url)"
            )
            confidence = Confidence.HIGH
        else:
            how = {
                "cycle": "the tasks wait on each other in a cycle",
                "holder-finished": "its holder task finished without releasing it",
                "holder-stuck": "its holder is itself stuck waiting on something that is never signalled",
            }[shape]
            what = (
                f"{d['task']} waited {d['waited_ms'] / 1000:.1f} s at {where} for {_ident(d['primitive'], d['name'])}: {how}"
            )
            explanation = "No task in the wait chain can make progress: " + "; ".join(d.get("path", ()))
            fix = "Take locks in one global order, release them on every path (`async with`), and put a timeout on waits that may never end."
            example = (
                "# before\nawait lock_a.acquire()\nawait lock_b.acquire()  # another task takes b then a\n"
                "# after\nasync with lock_a, lock_b:  # the same order everywhere\n    ..."
            )
            confidence = Confidence.MEDIUM if shape == "holder-stuck" else Confidence.HIGH
        session.add_finding(
            "deadlock",
            what + f" (waited {d['waited_ms']:.0f} ms, {d['ended']})",
            filename=d["file"],
            line=d["line"],
            symbol=d["func"],
            severity=Severity.CRITICAL,
            section=Section.CRITICAL_ISSUES,
            explanation=explanation,
            fix=fix,
            fix_example=example,
            references=(_LOCK_DOC, _SYNC_DOC),
            confidence=confidence,
            call_chain=tuple(session.describe_frame(f, ln, q) for f, ln, q in reversed(d["chain"])),
            code=CONTENTION_CODES["deadlock"],
            extra={
                "shape": shape,
                "primitive": d["name"],
                "waiting_task": d["task"],
                "wait_at": d["wait_at"],
                "held_at": d["held_at"],
                "waited_ms": round(d["waited_ms"], 3),
                "outcome": d["ended"],
            },
        )

    def _thread_lock_findings(self, session: ProfileSession) -> None:
        if not self.thread_holders:
            return
        blocking = next((i for i in session.instruments if getattr(i, "name", "") == "blocking"), None)
        rows = list(getattr(blocking, "rows", ()) or ())
        done: set[tuple[str, int]] = set()
        for row in rows:
            fn = row.get("_file", "")
            if not fn:
                continue
            end = row["start_s"] + row["duration_ms"] / 1000.0
            match = [h for h in self.thread_holders if end - 0.05 <= h["t_s"] <= end + 1.0]
            if not match:
                continue
            # the loop stalled in a lock acquire: some user line on the sampled stacks takes a lock
            acquire_line = _acquire_line(row)
            if acquire_line is None:
                continue
            key = (fn, row["line"])
            if key in done:
                continue
            done.add(key)
            h = match[0]
            where = session.where(fn, row["line"])
            session.add_finding(
                "deadlock",
                f"the event loop was blocked {row['duration_ms']:.0f} ms at {where} acquiring a threading lock "
                f"({acquire_line}) held by {h['task']}, a task of the same loop suspended at "
                f"{session.where(h['file'], h['await_line'])} inside `with {h['lock']}:` "
                f"({session.where(h['file'], h['with_line'])}); the holder cannot resume until the loop is free",
                filename=fn,
                line=row["line"],
                symbol=row.get("function", ""),
                severity=Severity.CRITICAL,
                section=Section.CRITICAL_ISSUES,
                explanation=(
                    "A threading lock acquired on the event loop thread blocks the whole loop; when its owner is a "
                    "coroutine suspended on that same loop, the owner can never run to release it: the acquire only "
                    "returns by its timeout, or never."
                ),
                fix=(
                    "Never hold a threading lock across an await, and never take one on the loop thread: use an "
                    "asyncio.Lock between coroutines, or run the synchronous helper with `await asyncio.to_thread(...)`."
                ),
                fix_example=(
                    "# before\nasync def cancel_request(table, rid):\n    set_status_sync(table, rid, 'CANCELLED')\n"
                    "# after\nasync def cancel_request(table, rid):\n    await asyncio.to_thread(set_status_sync, table, rid, 'CANCELLED')"
                ),
                references=(_THREAD_DOC, "https://docs.python.org/3/library/threading.html#lock-objects",
                            "https://github.com/skypilot-org/skypilot/pull/7688"),
                confidence=Confidence.MEDIUM,
                call_chain=tuple(row.get("stack", ())),
                code=CONTENTION_CODES["deadlock"],
                extra={
                    "shape": "thread-lock-held-by-suspended-task",
                    "blocked_ms": round(row["duration_ms"], 3),
                    "holder_task": h["task"],
                    "holder_with_at": session.where(h["file"], h["with_line"]),
                    "holder_suspended_at": session.where(h["file"], h["await_line"]),
                    "acquire": acquire_line,
                },
            )


def _forget(states: dict[int, _State], key: int, _ref: Any) -> None:
    states.pop(key, None)


def _held_across(session: ProfileSession, stack: list[tuple[str, int, str]]) -> str:
    """``"asyncio.sleep (at In[3]:25)"``: the innermost user line of an await stack and what it awaits."""
    user = None
    below = ""
    for fn, ln, q in stack:
        if is_library_file(fn):
            if user is not None and not below:
                below = q
        else:
            user, below = (fn, ln, q), ""
    if user is None:
        return ""
    return f"{below or user[2]} (at {session.where(user[0], user[1])})"


_ACQUIRE_RE = re.compile(r"\.acquire\(|^\s*(async\s+)?with\b")
_with_cache: dict[Any, list[tuple[int, int, str]]] = {}


def _acquire_line(row: dict[str, Any]) -> str | None:
    """The sampled user line of a blocking row that takes a lock (``x.acquire(`` or ``with x:``)."""
    snippet = row.get("snippet", "") or ""
    if _ACQUIRE_RE.search(snippet):
        return f"{row.get('location', '')}: {snippet}"
    for entry in reversed(row.get("stack", ()) or ()):
        m = re.search(r"\((.+):(\d+)\)$", entry)
        if not m:
            continue
        fn = row.get("_file", "")
        text = linecache.getline(fn, int(m.group(2))).strip() if fn and row.get("path") == m.group(1) else ""
        if text and _ACQUIRE_RE.search(text):
            return f"{m.group(1)}:{m.group(2)}: {text}"
    return None


def _with_blocks(code: Any) -> list[tuple[int, int, str]]:
    """(first line, last line, context expression) of the ``with`` statements of ``code``."""
    hit = _with_cache.get(code)
    if hit is not None:
        return hit
    out: list[tuple[int, int, str]] = []
    lines = linecache.getlines(code.co_filename)
    if lines:
        try:
            tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError):
            tree = None
        if tree is not None:
            for node in ast.walk(tree):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != code.co_name:
                    continue
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if first != code.co_firstlineno:
                    continue
                for sub in ast.walk(node):
                    if isinstance(sub, ast.With):
                        for item in sub.items:
                            expr = item.context_expr
                            if isinstance(expr, (ast.Name, ast.Attribute)):
                                out.append((sub.lineno, sub.end_lineno or sub.lineno, ast.unparse(expr)))
                break
    _with_cache[code] = out
    return out


def _resolve(expr: str, frame: Any) -> Any:
    """Evaluate a dotted name in a frame without calling anything."""
    parts = expr.split(".")
    scope = frame.f_locals
    if parts[0] in scope:
        obj = scope[parts[0]]
    elif parts[0] in frame.f_globals:
        obj = frame.f_globals[parts[0]]
    else:
        return None
    for p in parts[1:]:
        try:
            obj = inspect.getattr_static(obj, p)
        except Exception:
            return None
    return obj


def _held_thread_locks(frame: Any) -> list[tuple[int, str, Any]]:
    """The ``with <threading lock>:`` blocks a suspended frame is inside whose lock is locked."""
    out = []
    line = frame.f_lineno
    for first, last, expr in _with_blocks(frame.f_code):
        if first < line <= last:
            lock = _resolve(expr, frame)
            if isinstance(lock, _LOCK_TYPES):
                try:
                    locked = lock.locked() if hasattr(lock, "locked") else True
                except Exception:
                    locked = True
                if locked:
                    out.append((first, expr, lock))
    return out
