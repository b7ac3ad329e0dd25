"""The runtime instruments. Each is one :class:`~async_expert_ext.loop.instrument.Instrument`.

- :class:`BlockingDetector`: busy-stretch timing around the selector, a heartbeat
  (loop lag series) and a watchdog thread that samples the loop thread's stack
  with ``sys._current_frames()`` while the loop is stalled.
- :class:`TaskTracker`: every task from the task factory (weak references only),
  unretrieved exceptions, leaked tasks, tasks destroyed while pending, stuck awaits.
- :class:`CoroutineWarnings`: "coroutine ... was never awaited" RuntimeWarnings,
  attributed with ``sys.set_coroutine_origin_tracking_depth``.
- :class:`LogCapture`: asyncio logger records and exception-handler calls.
- :class:`LoopReentry`: ``asyncio.run()`` / ``run_until_complete()`` inside the
  running loop, and the ``--nest`` opt-in (nest-asyncio2).
- :class:`PyinstrumentProfiler`: ``pyinstrument.Profiler(async_mode="enabled")``.

Only the standard library is imported here (pyinstrument and nest-asyncio2 lazily).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections import Counter
from typing import Any

from ..model import Confidence, Section, Severity
from .instrument import Instrument
from .session import _PKG_DIR, ProfileSession, is_library_file

__all__ = [
    "BlockingDetector",
    "CoroutineWarnings",
    "LogCapture",
    "LoopReentry",
    "PyinstrumentProfiler",
    "TaskTracker",
    "await_stack",
    "default_instruments",
]

_MAX_STACK = 64
#: CPU share of a stall above which it is CPU-bound rather than waiting (see BlockingDetector)
_CPU_SHARE = 0.15
_MAX_LAG_ROWS = 200_000
_DEBUG_DOC = "https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code"


def default_instruments(session: ProfileSession) -> list[Instrument]:
    """The instruments a session uses unless told otherwise (profiler last, so that
    it measures as little of the others' installation as possible)."""
    out: list[Instrument] = [
        LogCapture(),
        CoroutineWarnings(),
        TaskTracker(),
        LoopReentry(),
        BlockingDetector(),
    ]
    from .contention import (
        ContentionMonitor,  # contention/executors/threads/lifecycle import this module
    )
    from .executors import ExecutorMonitor
    from .lifecycle import AsyncGenMonitor, CrossLoopMonitor, GatherMonitor
    from .threads import ThreadsafeMonitor

    out += [ContentionMonitor(), ExecutorMonitor(), ThreadsafeMonitor(), GatherMonitor(), AsyncGenMonitor(), CrossLoopMonitor()]
    if session.profile_enabled:
        out.append(PyinstrumentProfiler())
    return out


# ---------------------------------------------------------------------------
# stacks
# ---------------------------------------------------------------------------
def _first_user_line(stack: Any) -> tuple[str, int] | None:
    """The innermost frame of a sampled stack that is not library code."""
    for fn, ln, _q in stack or ():
        if not is_library_file(fn):
            return (fn, ln)
    return None


def _frame_stack(frame: Any) -> tuple[tuple[str, int, str], ...]:
    """(filename, line, qualname) from the innermost frame outwards."""
    out = []
    while frame is not None and len(out) < _MAX_STACK:
        code = frame.f_code
        out.append((code.co_filename, frame.f_lineno, getattr(code, "co_qualname", code.co_name)))
        frame = frame.f_back
    return tuple(out)


_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def await_stack(task: Any) -> list[tuple[str, int, str]]:
    """The await chain of a pending task, outermost first: the task's coroutine,
    then what it awaits (``cr_await`` / ``gi_yieldfrom`` / ``ag_await``), down to the
    innermost suspended coroutine or generator. Each entry is (filename, line, qualname)."""
    out: list[tuple[str, int, str]] = []
    try:
        obj = task.get_coro() if hasattr(task, "get_coro") else task  # a task, or a coroutine
    except Exception:
        return out
    seen = 0
    while obj is not None and seen < _MAX_STACK:
        seen += 1
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)
        if frame is None:
            break
        code = frame.f_code
        if not code.co_filename.startswith(_OWN_DIR):  # the instruments' own wrappers (contention)
            out.append((code.co_filename, frame.f_lineno, getattr(code, "co_qualname", code.co_name)))
        nxt = getattr(obj, "cr_await", None)
        if nxt is None:
            nxt = getattr(obj, "gi_yieldfrom", None)
        if nxt is None:
            nxt = getattr(obj, "ag_await", None)
        obj = nxt
    return out


def _fmt(session: ProfileSession, entries: Any) -> tuple[str, ...]:
    return tuple(session.describe_frame(f, ln, q) for f, ln, q in entries)


# ---------------------------------------------------------------------------
# blocking, slow callbacks, loop lag
# ---------------------------------------------------------------------------
class BlockingDetector(Instrument):
    """Callbacks that held the loop longer than the threshold, with the user line
    that caused them.

    Mechanism (no ``set_debug``, nothing per handle): the loop's selector ``select``
    is wrapped on the instance, so the time between two ``select`` calls is one busy
    stretch of the loop (all handles of one iteration). A watchdog thread wakes
    every few ms; while a stretch is older than a quarter of the threshold it samples
    the loop thread's stack (``sys._current_frames()``), the running task
    (``asyncio.tasks._current_tasks``) and the thread's CPU clock. When a stretch
    ends, consecutive samples of the same handle (same task, same callback frame
    under ``Handle._run``) form one run; a run longer than the threshold is one
    blocking callback: a row of ``LoopReport.blocking`` and ``LoopReport.callbacks``.
    Its location is the user line in most of its samples (the innermost frame that is
    not asyncio, this package, IPython, ipykernel, tornado, site-packages or the
    stdlib); its kind is ``cpu-bound-in-async`` when the thread was on CPU for at
    least 15% of the sampled time: a thread blocked in I/O or a sleep uses almost
    none, while a spinning one measured 27-30% on this 2-core machine at load
    average 7 (100% when idle), so the bar is low on purpose. A stretch made of many short handles (10,000 tasks
    stepping once) is loop lag, not blocking. Durations are exact for a stretch
    holding one slow handle and within one sampling period otherwise.

    A heartbeat ``call_later`` every ``interval_ms`` gives the loop lag series. On
    loops without a Python selector (uvloop, Proactor) late heartbeats delimit the
    stretches instead.

    Cost: two clock reads per loop iteration and a watchdog wake-up every
    ``max(2 ms, min(interval/2, threshold/10))`` (see ``bench/loop_overhead.py``).
    """

    name = "blocking"

    def install(self, session: ProfileSession) -> None:
        loop = session.loop
        assert loop is not None
        self.session = session
        self.loop = loop
        self.tid = session.loop_thread_id
        self.threshold = session.threshold_ms / 1000.0
        self.interval = session.interval_ms / 1000.0
        self.sample_after = self.threshold / 4.0
        self.sample_every = max(0.002, min(self.interval / 2.0, self.threshold / 10.0))
        self.rows: list[dict[str, Any]] = []
        self.lag: list[dict[str, Any]] = []
        self.samples: list[tuple[float, float, str, tuple[tuple[str, int, str], ...]]] = []
        self.lock = threading.Lock()
        self.stretch = 0
        self.busy_since = time.perf_counter()  # we are inside a callback right now
        try:
            self.cpu_clock: int | None = time.pthread_getcpuclockid(self.tid)
        except (AttributeError, OSError):
            self.cpu_clock = None
        self.selector = None
        self.mode = "heartbeat"
        selector = getattr(loop, "_selector", None)
        original = getattr(selector, "select", None)
        if selector is not None and original is not None and "select" not in vars(selector):
            this = self

            def select(timeout: Any = None) -> Any:
                this._end_stretch(time.perf_counter())
                try:
                    return original(timeout)
                finally:
                    this.busy_since = time.perf_counter()

            selector.select = select
            self.selector = selector
            self.mode = "selector"
        self.expected = loop.time() + self.interval
        self.beat_handle = loop.call_later(self.interval, self._beat)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._watchdog, name="async-expert-watchdog", daemon=True)
        self.thread.start()

    def started(self, session: ProfileSession) -> None:
        # the stretch that is running now began before the profile: installing the
        # other instruments (pyinstrument, class patches) is not the profiled code
        with self.lock:
            self.samples = []
        if self.busy_since:
            self.busy_since = time.perf_counter()

    # loop thread --------------------------------------------------------
    def _end_stretch(self, now: float) -> None:
        since = self.busy_since
        if not since:
            return
        self.busy_since = 0.0
        with self.lock:
            self.stretch += 1
            samples, self.samples = self.samples, []
        if now - since >= self.threshold:
            self._split(since, now, samples)

    def _beat(self) -> None:
        loop = self.loop
        now = loop.time()
        lag = max(0.0, now - self.expected)
        if len(self.lag) < _MAX_LAG_ROWS:
            self.lag.append({"t_s": self.session.now_s(), "lag_ms": lag * 1000.0})
        if self.mode == "heartbeat":  # stretches are delimited by late heartbeats
            t = time.perf_counter()
            if lag >= self.threshold:
                self.busy_since = t - lag
                self._end_stretch(t)
            self.busy_since = t
        self.expected = now + self.interval
        if self.session.active:
            self.beat_handle = loop.call_later(self.interval, self._beat)

    def _split(self, since: float, end: float, samples: list) -> None:
        """Cut one busy stretch into runs of samples of the same handle; record the
        runs longer than the threshold (or the whole stretch when nothing was sampled)."""
        if not samples:
            self._record(since, end - since, 0.0, [], "")
            return
        runs: list[list[tuple]] = []
        for sample in samples:
            if runs and runs[-1][-1][2] == sample[2]:
                runs[-1].append(sample)
            else:
                runs.append([sample])
        half = self.sample_every / 2.0
        for i, run in enumerate(runs):
            begin = since if i == 0 else (runs[i - 1][-1][0] + run[0][0]) / 2.0
            stop = end if i == len(runs) - 1 else (run[-1][0] + runs[i + 1][0][0]) / 2.0
            if i == 0 and len(runs) > 1 and run[0][0] - since > self.sample_after + 2 * self.sample_every:
                begin = run[0][0] - half  # the stretch began with other, short handles
            duration = stop - begin
            if duration < self.threshold or (not run[0][3] and _own_callback(run[0][4])):
                continue  # short, or one of the instruments' own callbacks (not a task step)
            parts = self._by_line(run)
            if len(parts) >= 2:
                # one handle that blocked at several lines in a row (sleep, then a sync
                # request, then a parse): one event per line, each with its own CPU share
                for j, part in enumerate(parts):
                    b = begin if j == 0 else part[0][0] - half
                    e = stop if j == len(parts) - 1 else part[-1][0] + half
                    self._record(b, e - b, self._cpu_ratio(part), part, part[0][2])
                continue
            self._record(begin, duration, self._cpu_ratio(run), run, run[0][2])

    def _cpu_ratio(self, run: list) -> float:
        """The loop thread's CPU share over ``run`` (0.0 when it cannot be measured)."""
        if len(run) >= 2 and run[-1][0] > run[0][0] and self.cpu_clock is not None:
            return (run[-1][1] - run[0][1]) / (run[-1][0] - run[0][0])
        return 0.0

    def _by_line(self, run: list) -> list[list]:
        """Split a run of samples into consecutive parts by the innermost user line;
        parts shorter than the threshold are merged into their neighbour. Returns the
        parts when at least two of them are each as long as the threshold, else ``[]``."""
        parts: list[tuple[Any, list]] = []
        for sample in run:
            key = _first_user_line(sample[4])
            if parts and parts[-1][0] == key:
                parts[-1][1].append(sample)
            else:
                parts.append((key, [sample]))
        if len(parts) < 2:
            return []
        span = self.sample_every
        is_long = [samples[-1][0] - samples[0][0] + span >= self.threshold for _key, samples in parts]
        if sum(is_long) < 2:
            return []
        merged: list[list] = []
        pending: list = []  # short parts before the first long one
        for (_key, samples), long in zip(parts, is_long):
            if long:
                merged.append(pending + samples)
                pending = []
            elif merged:
                merged[-1].extend(samples)
            else:
                pending.extend(samples)
        return merged

    def _record(self, since: float, busy: float, ratio: float, run: list, key: str) -> None:
        s = self.session
        user_lines: Counter[tuple[str, int]] = Counter()
        on_stack: Counter[tuple[str, int]] = Counter()
        funcs: dict[tuple[str, int], str] = {}
        best_sample: dict[tuple[str, int], tuple] = {}
        task_names: Counter[str] = Counter()
        for _t, _cpu, _key, task, stack in run:
            if task:
                task_names[task] += 1
            first = None
            seen = set()
            for fn, ln, q in stack:
                if is_library_file(fn):
                    continue
                k = (fn, ln)
                if first is None:
                    first = k
                    funcs[k] = q
                    best_sample[k] = stack
                if k not in seen:
                    seen.add(k)
                    on_stack[k] += 1
            if first is None and stack:  # nothing but library code: take the innermost frame
                fn, ln, q = stack[0]
                first = (fn, ln)
                funcs[first] = q
                best_sample[first] = stack
            if first is not None:
                user_lines[first] += 1
        if user_lines:
            (fn, ln), count = user_lines.most_common(1)[0]
            share = count / max(1, len(run))
            stack = tuple(reversed(_fmt(s, best_sample[(fn, ln)])))
        else:
            fn, ln, share, stack = "", 0, 0.0, ()
        task = task_names.most_common(1)[0][0] if task_names else ""
        kind = "cpu-bound-in-async" if ratio >= _CPU_SHARE else "blocking-call-in-async"
        self.rows.append(
            {
                "start_s": since - s.t0,
                "duration_ms": busy * 1000.0,
                "location": s.where(fn, ln) if fn else "",
                "path": s.label(fn) if fn else "",
                "line": ln,
                "function": funcs.get((fn, ln), ""),
                "snippet": s.snippet(fn, ln) if fn else "",
                "kind": kind,
                "cpu_ms": min(1.0, ratio) * busy * 1000.0,
                "samples": len(run),
                "share": share,
                "task": task,
                "stack": stack,
                "_file": fn,
                "_callback": f"Task step: {task}" if task else (key.split("|", 1)[-1] if key else ""),
                "_on_stack": [(s.label(f), line, c) for (f, line), c in on_stack.items()],
            }
        )

    # watchdog thread ------------------------------------------------------
    def _watchdog(self) -> None:
        current_tasks = getattr(asyncio.tasks, "_current_tasks", {})
        loop = self.loop
        while not self.stop_event.wait(self.sample_every):
            since = self.busy_since
            now = time.perf_counter()
            if self.mode == "heartbeat":
                late = loop.time() - self.expected
                since = now - late if late > 0 else 0.0
            if not since or now - since < self.sample_after:
                continue
            stretch = self.stretch
            frame = sys._current_frames().get(self.tid)
            if frame is None:
                continue
            stack = _frame_stack(frame)
            del frame
            cpu = time.clock_gettime(self.cpu_clock) if self.cpu_clock is not None else 0.0
            task = current_tasks.get(loop)
            name = ""
            if task is not None:
                try:
                    name = f"{task.get_name()} ({task.get_coro().__qualname__})"
                except Exception:
                    name = ""
            key = name + "|" + _callback_frame(stack)
            with self.lock:
                if self.stretch == stretch:
                    self.samples.append((time.perf_counter(), cpu, key, name, stack))

    def before_uninstall(self, session: ProfileSession) -> None:
        self._end_stretch(time.perf_counter())
        # a heartbeat that is due but could not run yet (the profiled code blocked to its
        # very end, e.g. a sync cell) is lag too: one last sample, so the series shows it
        loop = getattr(self, "loop", None)
        if loop is not None and hasattr(self, "expected") and len(self.lag) < _MAX_LAG_ROWS:
            late = loop.time() - self.expected
            if late > 0:
                self.lag.append({"t_s": session.now_s(), "lag_ms": late * 1000.0})

    def uninstall(self, session: ProfileSession) -> None:
        stop = getattr(self, "stop_event", None)
        if stop is not None:
            stop.set()
            self.thread.join(timeout=2.0)
        handle = getattr(self, "beat_handle", None)
        if handle is not None:
            handle.cancel()
        if getattr(self, "selector", None) is not None:
            try:
                del self.selector.select
            except AttributeError:
                pass
            self.selector = None

    def finish(self, session: ProfileSession, report: Any) -> None:
        report.lag_records = list(self.lag)
        report.blocking_records = [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.rows]
        for r in self.rows:
            report.callback_records.append(
                {
                    "start_s": r["start_s"],
                    "duration_ms": r["duration_ms"],
                    "callback": r["_callback"] or (f"Task step: {r['task']}" if r["task"] else "callback"),
                    "task": r["task"],
                    "location": r["location"],
                }
            )
        groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for r in self.rows:
            groups.setdefault((r["kind"], r["_file"], r["line"]), []).append(r)
        for (kind, fn, line), rows in groups.items():
            if not fn:
                continue  # no stack sample (C code holding the GIL): the row stays in .blocking
            total = sum(r["duration_ms"] for r in rows)
            worst = max(r["duration_ms"] for r in rows)
            where = session.where(fn, line)
            what = "ran CPU-bound code" if kind == "cpu-bound-in-async" else "blocked"
            session.add_finding(
                kind,
                f"{where} {what} on the event loop thread {len(rows)} time(s) for {total / 1000:.2f} s "
                f"in total (worst {worst:.0f} ms, threshold {session.threshold_ms:g} ms)",
                filename=fn,
                line=line,
                symbol=rows[0]["function"],
                severity=Severity.CRITICAL if worst >= 4 * session.threshold_ms else Severity.WARNING,
                section=Section.CRITICAL_ISSUES,
                explanation="While this line runs, no other task, callback or I/O on the loop makes progress.",
                fix=(
                    "Move the call off the loop: `await asyncio.to_thread(func, ...)` or an async "
                    "library; for CPU-bound work use `loop.run_in_executor(process_pool, ...)`."
                ),
                references=(_DEBUG_DOC,),
                call_chain=rows[0]["stack"],
                extra={
                    "blocked_ms": round(total, 3),
                    "events": len(rows),
                    "worst_ms": round(worst, 3),
                    "cpu_ms": round(sum(r["cpu_ms"] for r in rows), 3),
                    # user lines on the stack in most samples of an event (a call site on the
                    # way to the culprit); a line seen in a few samples belongs to another request
                    # that ran in the same task step, not to this event
                    "lines_on_stack": sorted({(p, ln) for r in rows for p, ln, c in r["_on_stack"] if c * 2 >= max(1, r["samples"])}),
                },
            )


def _callback_frame(stack: tuple[tuple[str, int, str], ...]) -> str:
    """The outermost frame of the running handle: the one just inside ``Handle._run``."""
    for i, (fn, _ln, q) in enumerate(stack):
        if q == "Handle._run" and fn.endswith("events.py"):
            if i > 0:
                f, _l, qn = stack[i - 1]
                return f"{qn} ({f})"
            return ""
    return stack[-1][2] if stack else ""


_swallow_cache: dict[Any, tuple[int, ...]] = {}


def _swallowing_handlers(code: Any) -> tuple[int, ...]:
    """Lines of the ``except`` clauses in ``code``'s function that catch
    CancelledError (by name, ``BaseException`` or bare) and contain no ``raise``."""
    hit = _swallow_cache.get(code)
    if hit is not None:
        return hit
    import ast
    import linecache
    import textwrap

    out: list[int] = []
    lines = linecache.getlines(code.co_filename)
    start = code.co_firstlineno
    try:
        block = textwrap.dedent("".join(_function_block(lines, start)))
        tree = ast.parse(block)
    except (SyntaxError, ValueError, IndexError):
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            for h in node.handlers:
                names = set()
                if h.type is None:
                    names.add("")
                else:
                    for t in h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]:
                        names.add(t.attr if isinstance(t, ast.Attribute) else getattr(t, "id", ""))
                if not names & {"", "CancelledError", "BaseException"}:
                    continue
                if any(isinstance(n, ast.Raise) for n in ast.walk(h)):
                    continue
                out.append(h.lineno + start - 1)
    _swallow_cache[code] = tuple(out)
    return _swallow_cache[code]


def _function_block(lines: list[str], start: int) -> list[str]:
    """The source lines of the function starting at line ``start`` (decorators skipped)."""
    first = lines[start - 1]
    indent = len(first) - len(first.lstrip())
    out = [first]
    for text in lines[start:]:
        if text.strip() and len(text) - len(text.lstrip()) <= indent and not text.lstrip().startswith(("#", ")")):
            break
        out.append(text)
    return out


def _own_callback(stack: tuple[tuple[str, int, str], ...]) -> bool:
    """True when the running handle is a callback of this package (an instrument's)."""
    for i, (fn, _ln, q) in enumerate(stack):
        if q == "Handle._run" and fn.endswith("events.py"):
            return i > 0 and stack[i - 1][0].startswith(_PKG_DIR)
    return False


def _handle_task(handle: Any) -> str:
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if isinstance(owner, asyncio.Task):
        try:
            return f"{owner.get_name()} ({owner.get_coro().__qualname__})"
        except Exception:
            return owner.get_name()
    return ""


def _handle_repr(handle: Any) -> str:
    if handle is None:
        return ""
    task = _handle_task(handle)
    if task:
        return f"Task step: {task}"
    cb = getattr(handle, "_callback", None)
    return getattr(cb, "__qualname__", None) or repr(cb)[:200]


# ---------------------------------------------------------------------------
# tasks
# ---------------------------------------------------------------------------
_RUNNING_AT = re.compile(r"(?:running|defined) at (.+):(\d+)>")


class TaskTracker(Instrument):
    """Task life cycles and the findings they lead to.

    - ``task-exception-never-retrieved``: a failed task whose exception was never
      read (``Task._log_traceback`` still True at the end, or asyncio's
      "Task exception was never retrieved" when it was collected).
    - ``leaked-task``: a task created by user code and still pending at the end
      (``--cancel-leaked`` cancels them), or destroyed pending when its loop was closed.
    - ``fire-and-forget-task``: "Task was destroyed but it is pending!" while the loop ran.
    - ``missing-timeout``: pending at ``--timeout``, or suspended at the same I/O await
      for longer than ``stuck_s`` (default 1 s) with no timeout armed.
    - ``cancelled-error-swallowed``: a task whose cancellation was requested
      (``Task.cancelling() > 0``, Python >= 3.11) that finished normally or failed
      with another exception, or was still running at the end; located at the
      ``except`` clause of its coroutine function that catches ``CancelledError``
      (or ``BaseException``, or bare) and does not re-raise.
      https://docs.python.org/3/library/asyncio-task.html#task-cancellation

    Source of the never-retrieved and destroyed-pending messages:
    https://docs.python.org/3/library/asyncio-dev.html#detect-never-retrieved-exceptions
    """

    name = "tasks"

    def __init__(self, stuck_s: float = 1.0, budget: int = 300) -> None:
        super().__init__()
        self.stuck_s = stuck_s
        self.budget = budget
        self._cursor = 0
        self.swallowed: list[dict[str, Any]] = []

    def task_done(self, session: ProfileSession, task: Any, record: dict[str, Any]) -> None:
        cancelling = getattr(task, "cancelling", None)
        if cancelling is not None and record["state"] != "cancelled" and cancelling() > 0:
            self._swallowed(task, record)

    def _swallowed(self, task: Any, record: dict[str, Any]) -> None:
        try:
            code = task.get_coro().cr_code
        except AttributeError:
            return
        for line in _swallowing_handlers(code):
            self.swallowed.append({"file": code.co_filename, "line": line, "func": getattr(code, "co_qualname", code.co_name), "task": record["name"], "state": record["state"]})

    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.destroyed: list[dict[str, Any]] = []
        self.unretrieved_ids: set[int] = set()
        self.stuck: dict[int, dict[str, Any]] = {}
        self._last_pos: dict[int, tuple[Any, int, float]] = {}
        self.timeout_pending: list[dict[str, Any]] = []
        assert session.loop is not None
        self.check_handle = session.loop.call_later(self.stuck_s / 2, self._check_stuck)

    # -- stuck awaits (missing-timeout) -----------------------------------
    def _timeouts_armed(self) -> set[int]:
        armed: set[int] = set()
        for h in list(getattr(self.session.loop, "_scheduled", ())):
            cb = getattr(h, "_callback", None)
            owner = getattr(cb, "__self__", None)
            t = getattr(owner, "_task", None)
            if t is not None:
                armed.add(id(t))
        return armed

    def _check_stuck(self) -> None:
        s = self.session
        if not s.active:
            return
        now = s.now_s()
        armed = None
        alive = s.tasks.alive()
        # a budget per check (round robin): the walk must never be a stall itself
        start = self._cursor % len(alive) if alive else 0
        batch = (alive[start:] + alive[:start])[: self.budget]
        self._cursor = start + len(batch)
        for task, row in batch:
            if task.done() or not row.get("_file"):
                continue
            stack = await_stack(task)
            inner = stack[-1] if stack else None
            if inner is None:
                continue
            pos = (inner[0], inner[1], inner[2])
            prev = self._last_pos.get(row["task_id"])
            if prev is None or prev[0] != pos:
                self._last_pos[row["task_id"]] = (pos, 0, now)
                continue
            if now - prev[2] < self.stuck_s or row["task_id"] in self.stuck:
                continue
            if armed is None:
                armed = self._timeouts_armed()
            if id(task) in armed or row.get("_under_timeout"):
                continue
            rec = self._io_await(stack)
            if rec is not None:
                rec["waited_s"] = now - prev[2]
                rec["task"] = row["name"]
                self.stuck[row["task_id"]] = rec
        s.loop.call_later(self.stuck_s / 2, self._check_stuck)  # type: ignore[union-attr]

    def _io_await(self, stack: list[tuple[str, int, str]]) -> dict[str, Any] | None:
        """The innermost user frame of an await stack and the library call it waits in;
        None when it waits on a sleep or a lock-like primitive (not I/O)."""
        user = None
        below: list[tuple[str, int, str]] = []
        for entry in stack:
            if is_library_file(entry[0]):
                below.append(entry)
            else:
                user, below = entry, []
        if user is None or not below:
            return None
        names = {q for _f, _l, q in below}
        if any(n.endswith(("sleep", "Event.wait", "Lock.acquire", "Semaphore.acquire", "Condition.wait")) for n in names):
            return None
        return {"file": user[0], "line": user[1], "func": user[2], "awaits": below[0][2], "stack": stack}

    def on_timeout(self, session: ProfileSession) -> None:
        for task, row in session.tasks.alive():
            if not task.done():
                stack = await_stack(task)
                row["await_stack"] = tuple(_fmt(session, stack))
                rec = self._io_await(stack) or {}
                self.timeout_pending.append({"row": row, "rec": rec, "stack": stack})
        host = session.host_task
        if host is not None and not host.done():
            # `await profile(coro)`: the host's chain stops at Profile.__await__'s wrapper,
            # so start from the awaited coroutine itself when there is one
            awaited = getattr(session, "awaited", None)
            stack = await_stack(awaited if hasattr(awaited, "cr_frame") else host)
            rec = self._io_await(stack)
            if rec is not None:
                self.timeout_pending.append({"row": {"name": host.get_name(), "task_id": 0}, "rec": rec, "stack": stack})
            # say what the profiled code itself was waiting for, I/O or not
            user = [e for e in stack if not is_library_file(e[0])]
            if user:
                below = [e for e in stack[stack.index(user[-1]) + 1 :]]
                what = f"`{below[0][2]}`" if below else "a future"
                session.report.notes.append(
                    f"when --timeout {session.timeout_s:g} s fired, the profiled code was awaiting {what} at "
                    f"{session.where(user[-1][0], user[-1][1])}"
                )

    # -- exception handler messages ---------------------------------------
    def exception_handler(self, session: ProfileSession, context: dict[str, Any]) -> None:
        msg = str(context.get("message", ""))
        if "never retrieved" in msg:
            fut = context.get("future")
            row = session.tasks.lookup(fut)
            if row is not None:
                row["exception_retrieved"] = False
                self.unretrieved_ids.add(row["task_id"])
        elif "destroyed but it is pending" in msg:
            task = context.get("task")
            row = session.tasks.lookup(task)
            rec: dict[str, Any] = {"row": row, "closed": False, "file": "", "line": 0, "coro": ""}
            try:
                rec["closed"] = bool(task.get_loop().is_closed())
                coro = task.get_coro()
                rec["coro"] = getattr(coro, "__qualname__", "")
                origin = getattr(coro, "cr_origin", None) or ()
                for fn, ln, _q in origin:  # most recent call first
                    if not is_library_file(fn):
                        rec["file"], rec["line"] = fn, ln
                        break
                if not rec["file"]:
                    m = _RUNNING_AT.search(repr(task))
                    if m:
                        rec["file"], rec["line"] = m.group(1), int(m.group(2))
            except Exception:
                pass
            if row is not None:
                row["state"] = "pending"
                row["_destroyed"] = True
            self.destroyed.append(rec)

    # -- end ---------------------------------------------------------------
    def before_uninstall(self, session: ProfileSession) -> None:
        gc.collect()  # report tasks that are garbage now, while the handler is observed
        for task, row in session.tasks.alive():
            if not task.done():
                row["state"] = "pending"
                row["await_stack"] = tuple(_fmt(session, await_stack(task)))
                row["_leaked"] = True
            elif row["state"] == "failed":
                retrieved = not getattr(task, "_log_traceback", False)
                row["exception_retrieved"] = retrieved and row["task_id"] not in self.unretrieved_ids
        for task, row in session.tasks.alive():
            if not task.done() and getattr(task, "cancelling", lambda: 0)() > 0 and not session.timed_out:
                self._swallowed(task, row)
        if session.cancel_leaked:
            n = 0
            for task, row in session.tasks.alive():
                if not task.done():
                    task.cancel(msg="async-expert --cancel-leaked")
                    n += 1
            if n:
                session.report.notes.append(f"--cancel-leaked: cancelled {n} task(s) still pending at the end")
        for row in session.tasks.rows:
            if row["state"] == "failed" and row.get("exception_retrieved") is None:
                row["exception_retrieved"] = row["task_id"] not in self.unretrieved_ids

    def uninstall(self, session: ProfileSession) -> None:
        h = getattr(self, "check_handle", None)
        if h is not None:
            h.cancel()

    def finish(self, session: ProfileSession, report: Any) -> None:
        rows = session.tasks.rows
        by_site: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for row in rows:
            if not row.get("_file"):
                continue  # created by library code only (the kernel, a framework)
            if row["state"] == "failed" and row.get("exception_retrieved") is False:
                by_site.setdefault(("task-exception-never-retrieved", row["_file"], row["created_line"]), []).append(row)
            if row.get("_leaked") and not session.timed_out:
                by_site.setdefault(("leaked-task", row["_file"], row["created_line"]), []).append(row)
        for rec in self.destroyed:
            row = rec["row"]
            fn = row["_file"] if row and row.get("_file") else rec["file"]
            line = row["created_line"] if row and row.get("_file") else rec["line"]
            if not fn:
                continue
            kind = "leaked-task" if rec["closed"] else "fire-and-forget-task"
            by_site.setdefault((kind, fn, line), []).append(row or {"name": rec["coro"], "coro": rec["coro"], "_destroyed": True})
        for (kind, fn, line), group in by_site.items():
            names = ", ".join(sorted({str(r.get("coro", "")) for r in group}))[:200]
            n = len(group)
            where = session.where(fn, line)
            if kind == "task-exception-never-retrieved":
                raised = sorted({r.get("_raised_at", "") for r in group} - {""})
                session.add_finding(
                    kind,
                    f"{n} task(s) created at {where} ({names}) failed with "
                    f"{group[0]['exception']} and nobody retrieved the exception"
                    + (f" (raised at {', '.join(raised)})" if raised else ""),
                    filename=fn,
                    line=line,
                    severity=Severity.CRITICAL,
                    section=Section.ERROR_HANDLING,
                    explanation="A background task died; asyncio only logs it when the task is garbage-collected, often much later or never.",
                    fix="Keep the task and await it, or add a done callback that calls task.exception() and logs it; prefer asyncio.TaskGroup.",
                    references=("https://docs.python.org/3/library/asyncio-dev.html#detect-never-retrieved-exceptions",),
                    extra={"tasks": n, "exception": group[0]["exception"], "raised_at": raised},
                )
            elif kind == "leaked-task":
                destroyed = sum(1 for r in group if r.get("_destroyed"))
                stacks = [r.get("await_stack", ()) for r in group if r.get("await_stack")]
                session.add_finding(
                    kind,
                    f"{n} task(s) created at {where} ({names}) were still pending when "
                    + ("their event loop was closed" if destroyed else "the profiled code finished"),
                    filename=fn,
                    line=line,
                    severity=Severity.WARNING,
                    section=Section.CONCURRENCY,
                    explanation="Nothing awaits or cancels these tasks; their work may be cut off and their errors are never seen.",
                    fix="Await the tasks (asyncio.gather or a TaskGroup) or cancel them explicitly before returning.",
                    references=("https://docs.python.org/3/library/asyncio-task.html#task-groups",),
                    call_chain=stacks[0] if stacks else (),
                    extra={"tasks": n, "destroyed_pending": destroyed, "await_stacks": [list(s) for s in stacks[:5]]},
                )
            else:
                session.add_finding(
                    kind,
                    f"{n} task(s) created at {where} ({names}) were garbage-collected while still pending "
                    "(\"Task was destroyed but it is pending!\")",
                    filename=fn,
                    line=line,
                    severity=Severity.CRITICAL,
                    section=Section.CRITICAL_ISSUES,
                    explanation="The event loop keeps only weak references to tasks; a task nobody references can vanish mid-flight.",
                    fix="Keep a strong reference: add the task to a set and discard it in a done callback, or use a TaskGroup.",
                    references=("https://docs.python.org/3/library/asyncio-task.html#asyncio.create_task",),
                    extra={"tasks": n},
                )
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rec in self.swallowed:
            groups.setdefault((rec["file"], rec["line"]), []).append(rec)
        for (fn, line), recs in groups.items():
            states = sorted({r["state"] for r in recs})
            session.add_finding(
                "cancelled-error-swallowed",
                f"{len(recs)} task(s) running {recs[0]['func']} were cancelled but did not stop "
                f"(ended {', '.join(states)}); the except clause at {session.where(fn, line)} swallows CancelledError",
                filename=fn,
                line=line,
                symbol=recs[0]["func"],
                severity=Severity.CRITICAL,
                section=Section.ERROR_HANDLING,
                explanation="task.cancel() only works if CancelledError propagates; swallowing it makes shutdown and timeouts hang.",
                fix="Re-raise CancelledError after cleanup (`except asyncio.CancelledError: ...; raise`), or catch Exception instead.",
                references=("https://docs.python.org/3/library/asyncio-task.html#task-cancellation",),
                extra={"tasks": len(recs), "states": states},
            )
        # missing-timeout: pending at --timeout, or stuck on I/O
        seen: set[tuple[str, int]] = set()
        for item in self.timeout_pending:
            rec = item["rec"]
            if not rec:
                continue
            key = (rec["file"], rec["line"])
            if key in seen:
                continue
            seen.add(key)
            _missing_timeout(
                session,
                rec,
                f"{item['row'].get('name', 'a task')} was still awaiting {rec['awaits']} at "
                f"{session.where(rec['file'], rec['line'])} when --timeout {session.timeout_s:g} s fired",
                item["stack"],
                Confidence.HIGH,
                {"timeout_s": session.timeout_s},
            )
        for rec in self.stuck.values():
            key = (rec["file"], rec["line"])
            if key in seen:
                continue
            seen.add(key)
            _missing_timeout(
                session,
                rec,
                f"{rec['task']} waited {rec['waited_s']:.1f} s on {rec['awaits']} at "
                f"{session.where(rec['file'], rec['line'])} with no timeout armed",
                rec["stack"],
                Confidence.MEDIUM,
                {"waited_s": round(rec["waited_s"], 3)},
            )


def _missing_timeout(session: ProfileSession, rec: dict[str, Any], message: str, stack: Any, confidence: Confidence, extra: dict[str, Any]) -> None:
    """A runtime ``missing-timeout`` finding at the user frame ``rec`` (its awaited
    call stuck at --timeout, or waiting on I/O for long with no deadline)."""
    session.add_finding(
        "missing-timeout",
        message,
        filename=rec["file"],
        line=rec["line"],
        symbol=rec["func"],
        severity=Severity.WARNING,
        section=Section.ASYNC_PATTERNS,
        confidence=confidence,
        explanation="An await on I/O with no deadline can wait forever when the peer goes silent.",
        fix="Wrap the await in `async with asyncio.timeout(seconds):` (or asyncio.wait_for).",
        references=("https://docs.python.org/3/library/asyncio-task.html#timeouts",),
        call_chain=_fmt(session, stack),
        extra=extra,
    )


# ---------------------------------------------------------------------------
# never-awaited coroutines
# ---------------------------------------------------------------------------
_NEVER = re.compile(r"coroutine '([^']+)' was never awaited")
_ORIGIN_LINE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


class CoroutineWarnings(Instrument):
    """``RuntimeWarning: coroutine '...' was never awaited``, attributed to the line
    that created the coroutine.

    While the session runs: ``sys.set_coroutine_origin_tracking_depth`` on the loop
    thread (``origin_tracking="on"``; the default ``"auto"`` turns it on at the first
    never-awaited coroutine, reported where it was dropped, because tracking costs
    about 1 us per coroutine created: 2.5x on bench/loop_overhead.py), and through
    ``threading.setprofile`` in threads started meanwhile; a
    ``warnings.showwarning`` hook and a ``sys.unraisablehook`` (the warning becomes an
    unraisable exception when RuntimeWarnings are errors), and an ``"always"``
    filter for this one message so repeats are counted. ``warnings.catch_warnings``
    is not used: it is not thread-safe. ``gc.collect()`` runs before the hooks go.
    Source: https://docs.python.org/3/library/sys.html#sys.set_coroutine_origin_tracking_depth
    """

    name = "never-awaited"

    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.seen: list[dict[str, Any]] = []
        self.prev_depth = sys.get_coroutine_origin_tracking_depth()
        self.depth = max(self.prev_depth, session.origin_depth)
        self.tracking = session.origin_tracking == "on"
        if self.tracking:
            sys.set_coroutine_origin_tracking_depth(self.depth)
        self.prev_show = warnings.showwarning
        self.prev_hook = sys.unraisablehook
        self.prev_filters = list(warnings.filters)
        warnings.filterwarnings("always", message=r"coroutine .* was never awaited", category=RuntimeWarning)
        this = self

        def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            if this._capture(str(message), category):
                return
            this.prev_show(message, category, filename, lineno, file, line)

        def unraisablehook(unraisable: Any) -> None:
            exc = unraisable.exc_value
            if exc is not None and this._capture(str(exc), type(exc)):
                return
            if session.active:
                session.report.log_records.append(
                    {
                        "t_s": session.now_s(),
                        "source": "unraisable",
                        "level": "ERROR",
                        "logger": "",
                        "message": f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}: {exc!r}",
                        "location": "",
                    }
                )
            this.prev_hook(unraisable)

        showwarning._aex_session = session  # type: ignore[attr-defined]
        unraisablehook._aex_session = session  # type: ignore[attr-defined]
        warnings.showwarning = showwarning
        sys.unraisablehook = unraisablehook
        self.prev_thread_profile = getattr(threading, "_profile_hook", None)
        self.thread_hook = None
        if self.prev_thread_profile is None and session.origin_tracking != "off":
            depth = self.depth

            def thread_start(frame: Any, event: str, arg: Any) -> None:
                sys.setprofile(None)
                sys.set_coroutine_origin_tracking_depth(depth)

            threading.setprofile(thread_start)
            self.thread_hook = thread_start

    def _capture(self, text: str, category: Any) -> bool:
        m = _NEVER.search(text)
        if not m or not (isinstance(category, type) and issubclass(category, RuntimeWarning)):
            return False
        entries = [(f, int(ln), q) for f, ln, q in _ORIGIN_LINE.findall(text)]  # most recent call last
        fn, line, func, how = "", 0, "", "created at"
        for f, ln, q in reversed(entries):
            if not is_library_file(f):
                fn, line, func = f, ln, q
                break
        if not fn and not self.session.stopped:
            # No origin recorded: the coroutine is reported where it was dropped, which is
            # where it was created for the common `coro()` expression statement. (Not for
            # the profiler's own closing gc.collect(): the caller's frame is not the culprit.)
            frame = self.session.user_frame(sys._getframe(1))
            if frame is not None:
                fn, line, func, how = frame.f_code.co_filename, frame.f_lineno, getattr(frame.f_code, "co_qualname", frame.f_code.co_name), "dropped at"
            self._enable_tracking()
        self.seen.append(
            {"coro": m.group(1), "file": fn, "line": line, "func": func, "origin": entries, "t_s": self.session.now_s(), "how": how}
        )
        return True

    def _enable_tracking(self) -> None:
        """``auto`` mode: the first never-awaited coroutine turns origin tracking on
        for the rest of the session (it costs ~1 us per coroutine created)."""
        s = self.session
        if self.tracking or s.origin_tracking != "auto" or not s.active:
            return
        self.tracking = True

        def enable() -> None:
            if s.active:
                sys.set_coroutine_origin_tracking_depth(self.depth)

        if threading.get_ident() == s.loop_thread_id:
            enable()
        else:
            try:
                s.loop.call_soon_threadsafe(enable)  # type: ignore[union-attr]
            except RuntimeError:
                pass

    def before_uninstall(self, session: ProfileSession) -> None:
        gc.collect()

    def uninstall(self, session: ProfileSession) -> None:
        if not hasattr(self, "prev_depth"):
            return
        sys.set_coroutine_origin_tracking_depth(self.prev_depth)
        if getattr(warnings.showwarning, "_aex_session", None) is session:
            warnings.showwarning = self.prev_show
        if getattr(sys.unraisablehook, "_aex_session", None) is session:
            sys.unraisablehook = self.prev_hook
        warnings.filters[:] = self.prev_filters
        warnings._filters_mutated()  # type: ignore[attr-defined]
        if self.thread_hook is not None and getattr(threading, "_profile_hook", None) is self.thread_hook:
            threading.setprofile(self.prev_thread_profile)  # type: ignore[arg-type]

    def finish(self, session: ProfileSession, report: Any) -> None:
        groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for rec in self.seen:
            groups.setdefault((rec["file"], rec["line"], rec["coro"]), []).append(rec)
            report.log_records.append(
                {
                    "t_s": rec["t_s"],
                    "source": "warning",
                    "level": "WARNING",
                    "logger": "py.warnings",
                    "message": f"RuntimeWarning: coroutine '{rec['coro']}' was never awaited",
                    "location": session.where(rec["file"], rec["line"]) if rec["file"] else "",
                }
            )
        for (fn, line, coro), recs in groups.items():
            if fn:
                how = recs[0].get("how", "created at")
                message = f"coroutine '{coro}' {how} {session.where(fn, line)} was never awaited ({len(recs)} time(s))"
            else:
                # no origin and no user frame: it was made before the profile started (an
                # earlier cell) or by C code, and only garbage-collected during the profile
                message = (
                    f"coroutine '{coro}' was never awaited ({len(recs)} time(s)); it was created outside the "
                    "profiled code (e.g. in an earlier cell) and only collected during this profile"
                )
            session.add_finding(
                "never-awaited",
                message,
                filename=fn,
                line=line,
                symbol=recs[0]["func"],
                severity=Severity.CRITICAL if fn else Severity.INFO,
                section=Section.CRITICAL_ISSUES,
                explanation="Calling an async function only creates a coroutine object; its body never runs unless it is awaited or wrapped in a task.",
                fix="`await` the call (or schedule it with asyncio.create_task and keep the task).",
                references=("https://docs.python.org/3/library/asyncio-dev.html#detect-never-awaited-coroutines",),
                confidence=Confidence.HIGH if fn else Confidence.LOW,
                call_chain=tuple(f"{q} ({session.label(f)}:{ln})" for f, ln, q in recs[0]["origin"]),
                extra={"count": len(recs), "coroutine": coro},
            )


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------
class _ListHandler(logging.Handler):
    def __init__(self, session: ProfileSession) -> None:
        super().__init__(level=logging.DEBUG)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        s = self.session
        if not s.active:
            return
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        s.report.log_records.append(
            {
                "t_s": s.now_s(),
                "source": "logging",
                "level": record.levelname,
                "logger": record.name,
                "message": message.splitlines()[0][:500] if message else "",
                "location": "",
            }
        )


class LogCapture(Instrument):
    """asyncio's log records and loop exception-handler calls, kept in
    ``LoopReport.logs``: in a kernel they are published with no parent message and
    show in no cell (see DESIGN.md). A logging handler is added to the ``asyncio``
    logger for the session; the calls of ``loop.call_exception_handler`` are seen
    through the session's observer. Records logged by asyncio's default exception
    handler are not duplicated."""

    name = "logs"

    def install(self, session: ProfileSession) -> None:
        self.handler = _ListHandler(session)
        self.handler.addFilter(lambda rec: not _in_exception_handler(rec))
        logging.getLogger("asyncio").addHandler(self.handler)

    def exception_handler(self, session: ProfileSession, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        obj = context.get("task") or context.get("future") or context.get("handle")
        msg = str(context.get("message", ""))
        if exc is not None:
            msg += f": {type(exc).__name__}: {exc}"
        if obj is not None:
            msg += f" [{obj!r}]"[:300]
        session.report.log_records.append(
            {
                "t_s": session.now_s(),
                "source": "exception-handler",
                "level": "ERROR",
                "logger": "asyncio",
                "message": msg,
                "location": "",
            }
        )

    def uninstall(self, session: ProfileSession) -> None:
        handler = getattr(self, "handler", None)
        if handler is not None:
            logging.getLogger("asyncio").removeHandler(handler)


def _in_exception_handler(record: logging.LogRecord) -> bool:
    return record.funcName == "default_exception_handler"


# ---------------------------------------------------------------------------
# asyncio.run inside a running loop; --nest
# ---------------------------------------------------------------------------
_NEST_NOTE = (
    "--nest applied nest-asyncio2: asyncio.run() and run_until_complete() now re-enter the running loop. "
    "The patch is process-wide and stays until the kernel restarts: it replaces asyncio.run, "
    "BaseEventLoop.run_until_complete/run_forever/_run_once and the tasks' step functions with "
    "re-entrant Python versions (slower, and nested runs can starve the outer cell)."
)


class LoopReentry(Instrument):
    """Calls of ``asyncio.run()`` or ``loop.run_until_complete()`` while the loop
    already runs in this thread ("asyncio.run() cannot be called from a running event
    loop", https://docs.python.org/3/library/asyncio-runner.html#asyncio.run). The
    module attribute ``asyncio.run`` and the loop instance's ``run_until_complete``
    are wrapped for the session; the wrappers record the calling user line and call
    the originals. With ``nest=True`` nest-asyncio2 is applied first (opt-in only)."""

    name = "loop-reentry"

    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.calls: list[dict[str, Any]] = []
        loop = session.loop
        if session.nest:
            import nest_asyncio2

            nest_asyncio2.apply(loop)
            session.report.notes.append(_NEST_NOTE)
        self.prev_run = asyncio.run
        this = self

        def run(main: Any, **kwargs: Any) -> Any:
            this._note("asyncio.run")
            return this.prev_run(main, **kwargs)

        run._aex_session = session  # type: ignore[attr-defined]
        asyncio.run = run  # type: ignore[assignment]
        self.prev_ruc = loop.run_until_complete  # type: ignore[union-attr]
        self.patched_ruc = "run_until_complete" not in vars(loop)

        def run_until_complete(future: Any) -> Any:
            this._note("loop.run_until_complete")
            return this.prev_ruc(future)

        if self.patched_ruc:
            loop.run_until_complete = run_until_complete  # type: ignore[union-attr,method-assign]

    def _note(self, what: str) -> None:
        s = self.session
        if not s.active or threading.get_ident() != s.loop_thread_id:
            return
        if asyncio._get_running_loop() is None:  # type: ignore[attr-defined]
            return
        frame = s.user_frame(sys._getframe(2))
        if frame is None:
            return
        self.calls.append({"what": what, "file": frame.f_code.co_filename, "line": frame.f_lineno, "func": getattr(frame.f_code, "co_qualname", frame.f_code.co_name)})

    def uninstall(self, session: ProfileSession) -> None:
        if getattr(asyncio.run, "_aex_session", None) is session:
            asyncio.run = self.prev_run  # type: ignore[assignment]
        if getattr(self, "patched_ruc", False):
            try:
                del session.loop.run_until_complete  # type: ignore[union-attr]
            except AttributeError:
                pass

    def finish(self, session: ProfileSession, report: Any) -> None:
        if session.nest:
            return
        groups: dict[tuple[str, int, str], int] = {}
        funcs: dict[tuple[str, int, str], str] = {}
        for c in self.calls:
            key = (c["file"], c["line"], c["what"])
            groups[key] = groups.get(key, 0) + 1
            funcs[key] = c["func"]
        for (fn, line, what), n in groups.items():
            session.add_finding(
                "event-loop-already-running",
                f"{what}() called at {session.where(fn, line)} while the event loop was already running "
                f"({n} time(s)); it raises RuntimeError and leaves its coroutine never awaited",
                filename=fn,
                line=line,
                symbol=funcs[(fn, line, what)],
                severity=Severity.CRITICAL,
                section=Section.CRITICAL_ISSUES,
                explanation=(
                    "A notebook kernel (and any async framework) already runs an event loop in this thread; "
                    "asyncio.run() and run_until_complete() cannot start another one there."
                ),
                fix="In a notebook cell use top-level `await coro()` (IPython autoawait); inside async code `await` it; "
                "as a last resort for legacy code use `%%loop_profile --nest`.",
                fix_example="# before\nresult = asyncio.run(fetch())\n# after\nresult = await fetch()",
                references=("https://ipython.readthedocs.io/en/stable/interactive/autoawait.html",),
                extra={"calls": n},
            )


# ---------------------------------------------------------------------------
# pyinstrument
# ---------------------------------------------------------------------------
class PyinstrumentProfiler(Instrument):
    """A pyinstrument profile of the profiled code (``Profiler(async_mode="enabled")``:
    time spent awaiting shows as ``[await]`` frames of the task that started it).
    The session is ``LoopReport.profile``. https://pyinstrument.readthedocs.io/en/latest/guide.html#profile-async-code"""

    name = "profile"

    def __init__(self, interval_s: float = 0.001) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.profiler: Any = None

    def install(self, session: ProfileSession) -> None:
        from pyinstrument import Profiler

        self.profiler = Profiler(interval=self.interval_s, async_mode="enabled")
        self.profiler.start()

    def uninstall(self, session: ProfileSession) -> None:
        p = self.profiler
        if p is not None and getattr(p, "is_running", False):
            try:
                p.stop()
            except Exception as exc:
                session.report.errors.append(f"pyinstrument stop failed: {exc}")

    def finish(self, session: ProfileSession, report: Any) -> None:
        if self.profiler is not None:
            report.profile = self.profiler.last_session
