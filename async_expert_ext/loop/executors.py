"""Thread pool saturation: the default executor, any ``ThreadPoolExecutor``, and
anyio's worker threads (Starlette/FastAPI sync endpoints and dependencies).

:class:`ExecutorMonitor` patches, for the session only:

- ``concurrent.futures.ThreadPoolExecutor.submit`` (class level): what
  ``loop.run_in_executor`` and ``asyncio.to_thread`` go through;
- ``anyio._backends._asyncio.AsyncIOBackend.run_sync_in_worker_thread`` when anyio's
  asyncio backend is already imported: what ``anyio.to_thread.run_sync`` and
  Starlette's ``run_in_threadpool`` go through. Its default ``CapacityLimiter`` has 40
  tokens (https://anyio.readthedocs.io/en/stable/threads.html#adjusting-the-default-maximum-worker-thread-count);
  FastAPI runs every plain ``def`` endpoint and dependency on it
  (https://fastapi.tiangolo.com/async/#path-operation-functions).

Each work item is wrapped to note when it was submitted, when a worker started it
(the queue wait) and when it ended. When an item is submitted while every worker (or
token) is busy, and every ``threshold / 2`` while a pool is full with work queued, the
workers' stacks are sampled (``sys._current_frames()``, at most every 10 ms per pool)
to name the user line that keeps them busy.

Findings: ``executor-exhaustion`` (AEX940) when work waited at least the session
threshold for a worker; ``sync-endpoint-threadpool`` (AEX941) when that pool is anyio's
and the work comes from Starlette/FastAPI; ``slow-endpoint`` (AEX942) for a sync
endpoint whose own run was short but which queued that long behind the others.
The per-pool summary is ``LoopReport.tables["executor"]``.
"""
from __future__ import annotations

import concurrent.futures
import functools
import linecache
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

__all__ = ["EXECUTOR_CODES", "EXECUTOR_COLUMNS", "ExecutorMonitor"]

#: Codes of the runtime findings of this module.
EXECUTOR_CODES = {"executor-exhaustion": "AEX940", "sync-endpoint-threadpool": "AEX941", "slow-endpoint": "AEX942"}

#: Columns of ``LoopReport.tables["executor"]`` (one row per pool), times in ms.
EXECUTOR_COLUMNS: dict[str, str] = {
    "executor": "string",  # "default executor", "ThreadPoolExecutor 0x..", "anyio default CapacityLimiter"
    "kind": "string",  # "threadpool" | "anyio"
    "workers": "int64",  # max_workers, or the limiter's total_tokens
    "submitted": "int64",
    "peak_busy": "int64",  # most work items running at once
    "peak_queued": "int64",  # most work items submitted and not started at once
    "waited": "int64",  # items that waited at least the threshold for a worker
    "wait_ms_max": "float64",
    "wait_ms_total": "float64",
    "run_ms_total": "float64",
    "run_ms_max": "float64",
}

_EXEC_DOC = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.run_in_executor"
_TO_THREAD_DOC = "https://docs.python.org/3/library/asyncio-task.html#asyncio.to_thread"
_POOL_DOC = "https://docs.python.org/3/library/concurrent.futures.html#threadpoolexecutor"
_ANYIO_DOC = "https://anyio.readthedocs.io/en/stable/threads.html#adjusting-the-default-maximum-worker-thread-count"
_FASTAPI_DOC = "https://fastapi.tiangolo.com/async/#path-operation-functions"
_WEB_RE = re.compile(r"[/\\](starlette|fastapi)[/\\]")
_MAX_ITEMS = 100_000
_MAX_SNAPSHOTS = 500


class _Pool:
    """Statistics of one pool (an executor, or an anyio CapacityLimiter)."""

    def __init__(self, label: str, kind: str, workers: int) -> None:
        self.label = label
        self.kind = kind
        self.workers = workers
        self.lock = threading.Lock()
        self.submitted = 0
        self.started = 0
        self.busy = 0
        self.peak_busy = 0
        self.peak_queued = 0
        self.running: dict[int, str] = {}  # worker thread id -> function qualname
        self.items: list[dict[str, Any]] = []
        self.hog_lines: Counter[tuple[str, int, str]] = Counter()
        self.snapshots = 0
        self.last_snapshot = 0.0
        self.web = False


def _unwrap(fn: Any) -> Any:
    """The user function behind partials, ``contextvars.Context.run`` and library
    trampolines (a library function given the real callable as an argument, such as
    FastAPI's ``partial(_run_sync_endpoint, function=endpoint, ...)``)."""
    for _ in range(8):
        if isinstance(fn, functools.partial):
            inner = fn.func
            code = getattr(inner, "__code__", None)
            if code is None or is_library_file(code.co_filename):
                candidates = [a for a in (*fn.args, *fn.keywords.values()) if callable(a) and not isinstance(a, type)]
                user = [a for a in candidates if getattr(getattr(_unwrap(a), "__code__", None), "co_filename", None)
                        and not is_library_file(_unwrap(a).__code__.co_filename)]
                if user or candidates:
                    fn = (user or candidates)[0]
                    continue
            fn = inner
            continue
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None and callable(wrapped):
            fn = wrapped
            continue
        break
    return fn


def _def_line(fn: Any) -> tuple[str, int, str]:
    """(file, line of the ``def`` keyword, qualname) of a Python function, else ("", 0, name)."""
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    if code is None:
        return "", 0, name
    line = code.co_firstlineno
    for ln in range(line, line + 30):
        text = linecache.getline(code.co_filename, ln).lstrip()
        if text.startswith(("def ", "async def ")):
            return code.co_filename, ln, name
        if not text:
            break
    return code.co_filename, line, name


class ExecutorMonitor(Instrument):
    """Worker saturation of thread pools and anyio's limiter (see the module docstring)."""

    name = "executors"

    def __init__(self) -> None:
        super().__init__()
        self.saved: dict[tuple[Any, str], Any] = {}

    # -- install / uninstall ---------------------------------------------------
    def install(self, session: ProfileSession) -> None:
        self.session = session
        self.active = True
        self.threshold = session.threshold_ms / 1000.0
        self.pools: dict[int, _Pool] = {}
        self.pool_list: list[_Pool] = []
        self.n_items = 0
        this = self
        tpe = concurrent.futures.ThreadPoolExecutor
        orig_submit = tpe.__dict__["submit"]
        self.saved[(tpe, "submit")] = orig_submit

        def submit(executor: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            if not this.active:
                return orig_submit(executor, fn, *args, **kwargs)
            try:
                pool = this._executor_pool(executor)
                wrapped = this._wrap_item(pool, fn, sys._getframe(1))
            except Exception:  # pragma: no cover - defensive: never break the user's submit
                return orig_submit(executor, fn, *args, **kwargs)
            return orig_submit(executor, wrapped, *args, **kwargs)

        submit._aex_session = session  # type: ignore[attr-defined]
        submit.__wrapped__ = orig_submit  # type: ignore[attr-defined]
        tpe.submit = submit  # type: ignore[method-assign]
        backend = sys.modules.get("anyio._backends._asyncio")
        if backend is None and "anyio" in sys.modules:
            try:  # what anyio imports on its first call on an asyncio loop anyway
                import importlib

                backend = importlib.import_module("anyio._backends._asyncio")
            except Exception:
                backend = None
        cls = getattr(backend, "AsyncIOBackend", None) if backend is not None else None
        orig_run = cls.__dict__.get("run_sync_in_worker_thread") if cls is not None else None
        if isinstance(orig_run, classmethod):
            self.saved[(cls, "run_sync_in_worker_thread")] = orig_run
            raw = orig_run.__func__

            async def run_sync_in_worker_thread(klass: Any, func: Any, args: Any, *rest: Any, **kw: Any) -> Any:
                if not this.active:
                    return await raw(klass, func, args, *rest, **kw)
                try:
                    limiter = kw.get("limiter") if "limiter" in kw else (rest[1] if len(rest) > 1 else None)
                    limiter = limiter or klass.current_default_thread_limiter()
                    pool = this._limiter_pool(limiter)
                    wrapped = this._wrap_item(pool, func, sys._getframe(1), limiter=limiter)
                except Exception:  # pragma: no cover - defensive
                    return await raw(klass, func, args, *rest, **kw)
                return await raw(klass, wrapped, args, *rest, **kw)

            run_sync_in_worker_thread._aex_session = session  # type: ignore[attr-defined]
            wrapper = classmethod(run_sync_in_worker_thread)
            setattr(cls, "run_sync_in_worker_thread", wrapper)  # noqa: B010 - cls is Any | None to mypy
            self.saved_anyio_wrapper = wrapper
        assert session.loop is not None
        self.tick_every = max(0.01, self.threshold / 2.0)
        self.tick_handle = session.loop.call_later(self.tick_every, self._tick)

    def _tick(self) -> None:
        """While a pool is full and work is queued, sample what its workers run."""
        if not self.active or not self.session.active:
            return
        for pool in self.pool_list:
            if pool.workers and pool.busy >= pool.workers and pool.submitted > pool.started:
                self._snapshot(pool)
        loop = self.session.loop
        assert loop is not None
        self.tick_handle = loop.call_later(self.tick_every, self._tick)

    def uninstall(self, session: ProfileSession) -> None:
        self.active = False
        h = getattr(self, "tick_handle", None)
        if h is not None:
            h.cancel()
        for (cls, attr), orig in self.saved.items():
            current = cls.__dict__.get(attr)
            fn = current.__func__ if isinstance(current, classmethod) else current
            if getattr(fn, "_aex_session", None) is session:
                setattr(cls, attr, orig)

    # -- pools -------------------------------------------------------------------
    def _executor_pool(self, executor: Any) -> _Pool:
        pool = self.pools.get(id(executor))
        if pool is None:
            loop = self.session.loop
            if executor is getattr(loop, "_default_executor", None):
                label = "default executor"
            else:
                prefix = getattr(executor, "_thread_name_prefix", "") or ""
                label = f"ThreadPoolExecutor {prefix or hex(id(executor))}"
            pool = _Pool(label, "threadpool", int(getattr(executor, "_max_workers", 0) or 0))
            self._remember(executor, pool)
        return pool

    def _limiter_pool(self, limiter: Any) -> _Pool:
        pool = self.pools.get(id(limiter))
        if pool is None:
            try:
                import anyio.to_thread

                default = limiter is anyio.to_thread.current_default_thread_limiter()
            except Exception:
                default = False
            label = "anyio default CapacityLimiter" if default else f"anyio CapacityLimiter {hex(id(limiter))}"
            pool = _Pool(label, "anyio", int(limiter.total_tokens))
            self._remember(limiter, pool)
        pool.workers = max(pool.workers, int(limiter.total_tokens))
        return pool

    def _remember(self, obj: Any, pool: _Pool) -> None:
        key = id(obj)
        pools = self.pools
        try:
            weakref.finalize(obj, pools.pop, key, None)
        except TypeError:
            pass
        pools[key] = pool
        self.pool_list.append(pool)

    # -- work items ------------------------------------------------------------------
    def _wrap_item(self, pool: _Pool, fn: Any, frame: Any, limiter: Any = None) -> Callable[..., Any]:
        s = self.session
        target = _unwrap(fn)
        tfile, tline, tname = _def_line(target)
        web = False
        f = frame
        depth = 0
        while f is not None and depth < 40:
            if _WEB_RE.search(f.f_code.co_filename):
                web = True
                break
            f = f.f_back
            depth += 1
        user = s.user_frame(frame)
        item: dict[str, Any] = {
            "submitted": time.perf_counter(),
            "started": None,
            "ended": None,
            "func": tname,
            "file": tfile,
            "line": tline,
            "site_file": user.f_code.co_filename if user is not None else "",
            "site_line": user.f_lineno if user is not None else 0,
        }
        with pool.lock:
            pool.submitted += 1
            pool.web = pool.web or web
            queued = pool.submitted - pool.started
            if limiter is not None:
                try:
                    busy = int(limiter.borrowed_tokens)
                    waiting = int(limiter.statistics().tasks_waiting)
                except Exception:
                    busy, waiting = pool.busy, 0
                full = busy >= pool.workers
                queued = waiting + (1 if full else 0)
            else:
                full = pool.busy + queued > pool.workers
                queued = max(0, pool.submitted - pool.started - max(0, pool.workers - pool.busy))
            pool.peak_queued = max(pool.peak_queued, queued)
            if self.n_items < _MAX_ITEMS:
                pool.items.append(item)
                self.n_items += 1
        if full:
            self._snapshot(pool)

        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            tid = threading.get_ident()
            with pool.lock:
                pool.started += 1
                pool.busy += 1
                pool.peak_busy = max(pool.peak_busy, pool.busy)
                pool.running[tid] = tname
            item["started"] = started
            try:
                return fn(*args, **kwargs)
            finally:
                item["ended"] = time.perf_counter()
                with pool.lock:
                    pool.busy -= 1
                    pool.running.pop(tid, None)

        return run

    def _snapshot(self, pool: _Pool) -> None:
        """Sample what the busy workers run (the user line innermost on each stack)."""
        now = time.perf_counter()
        if pool.snapshots >= _MAX_SNAPSHOTS or now - pool.last_snapshot < 0.01:
            return
        pool.last_snapshot = now
        pool.snapshots += 1
        with pool.lock:
            tids = list(pool.running)
        frames = sys._current_frames()
        for tid in tids:
            frame = frames.get(tid)
            user = self.session.user_frame(frame)
            if user is not None:
                pool.hog_lines[(user.f_code.co_filename, user.f_lineno, getattr(user.f_code, "co_qualname", user.f_code.co_name))] += 1
        del frames

    # -- report --------------------------------------------------------------------------
    def finish(self, session: ProfileSession, report: Any) -> None:
        rows = []
        for pool in self.pool_list:
            waits = [(it["started"] - it["submitted"]) for it in pool.items if it["started"] is not None]
            runs = [(it["ended"] - it["started"]) for it in pool.items if it["ended"] is not None and it["started"] is not None]
            waited = [it for it in pool.items if it["started"] is not None and it["started"] - it["submitted"] >= self.threshold]
            rows.append(
                {
                    "executor": pool.label,
                    "kind": pool.kind,
                    "workers": pool.workers,
                    "submitted": pool.submitted,
                    "peak_busy": pool.peak_busy,
                    "peak_queued": pool.peak_queued,
                    "waited": len(waited),
                    "wait_ms_max": max(waits, default=0.0) * 1000.0,
                    "wait_ms_total": sum(waits) * 1000.0,
                    "run_ms_total": sum(runs) * 1000.0,
                    "run_ms_max": max(runs, default=0.0) * 1000.0,
                }
            )
            if waited:
                self._findings(session, pool, rows[-1], waited)
        if rows:
            report.tables["executor"] = rows

    def _findings(self, session: ProfileSession, pool: _Pool, row: dict[str, Any], waited: list[dict[str, Any]]) -> None:
        web = pool.kind == "anyio" and pool.web
        kind = "sync-endpoint-threadpool" if web else "executor-exhaustion"
        if pool.hog_lines:
            (fn, line, func), _n = pool.hog_lines.most_common(1)[0]
            located = "the workers were busy at"
        else:  # no sample: the function that held the workers longest
            by_func: Counter[tuple[str, int, str]] = Counter()
            for it in pool.items:
                if it["ended"] is not None and it["started"] is not None and it["file"]:
                    by_func[(it["file"], it["line"], it["func"])] += it["ended"] - it["started"]
            if not by_func:
                return
            (fn, line, func), _n = by_func.most_common(1)[0]
            located = "the workers were held by"
        where = session.where(fn, line)
        worst = max(waited, key=lambda it: it["started"] - it["submitted"])
        worst_ms = (worst["started"] - worst["submitted"]) * 1000.0
        total_ms = sum(it["started"] - it["submitted"] for it in waited) * 1000.0
        victims = self._victims(pool, waited)
        if web:
            message = (
                f"anyio's worker pool ({pool.workers} tokens, shared by every sync endpoint and dependency) was full: "
                f"{len(waited)} call(s) queued up to {worst_ms:.0f} ms for a worker thread; {located} {where}"
            )
            explanation = (
                "Starlette/FastAPI run each `def` endpoint and dependency in anyio's thread pool, limited by one "
                f"CapacityLimiter of {pool.workers} tokens per process. Slow blocking work in some endpoints takes every "
                "token, and every other sync endpoint (health checks included) waits for a token before its body starts."
            )
            fix = (
                "Make short endpoints (health checks) `async def`; make slow endpoints async with async libraries, or "
                "send their blocking work to a dedicated executor; raise the limiter's total_tokens only with care."
            )
            example = (
                "# before\n@app.get('/healthz')\ndef healthz():\n    return {'status': 'alive'}\n"
                "# after\n@app.get('/healthz')\nasync def healthz():\n    return {'status': 'alive'}"
            )
            refs: tuple[str, ...] = (_FASTAPI_DOC, _ANYIO_DOC, "https://github.com/sentinel-hub/titiler-openeo/issues/304")
        else:
            message = (
                f"{pool.label} ({pool.workers} workers) was saturated: {len(waited)} work item(s) waited up to "
                f"{worst_ms:.0f} ms for a free worker ({total_ms / 1000:.2f} s in total, up to {pool.peak_queued} queued); "
                f"{located} {where}"
            )
            explanation = (
                "run_in_executor and asyncio.to_thread share a bounded pool (the default executor has "
                "min(32, cpu_count + 4) threads); when long blocking calls hold every worker, the rest of the work queues "
                "and each awaiting coroutine is delayed by the queue wait on top of its own run time."
            )
            fix = (
                "Give long or blocking-forever work its own executor (or bound it with a Semaphore), keep short calls "
                "on the default one, or make the slow calls async."
            )
            example = (
                "# before\nawait asyncio.gather(*(asyncio.to_thread(slow_io, x) for x in items))\n"
                "# after\nslow_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix='slow-io')\n"
                "await asyncio.gather(*(loop.run_in_executor(slow_pool, slow_io, x) for x in items))"
            )
            refs = (_EXEC_DOC, _TO_THREAD_DOC, _POOL_DOC)
            # name the fan-out too: the user line that submitted most of the queued work
            sites = Counter((it["site_file"], it["site_line"]) for it in waited if it.get("site_file"))
            if sites:
                (site_file, site_line), _n = sites.most_common(1)[0]
                if (site_file, site_line) != (fn, line):
                    message = message.replace(f"; {located} {where}", f"; submitted at {session.where(site_file, site_line)}, {located} {where}")
        session.add_finding(
            kind,
            message,
            filename=fn,
            line=line,
            symbol=func,
            severity=Severity.WARNING,
            section=Section.FASTAPI if web else Section.CONCURRENCY,
            explanation=explanation,
            fix=fix,
            fix_example=example,
            references=refs,
            confidence=Confidence.HIGH if pool.hog_lines else Confidence.MEDIUM,
            code=EXECUTOR_CODES[kind],
            extra={
                "pool": pool.label,
                "workers": pool.workers,
                "peak_busy": pool.peak_busy,
                "peak_queued": pool.peak_queued,
                "queued_items": len(waited),
                "wait_ms_max": round(worst_ms, 3),
                "wait_ms_total": round(total_ms, 3),
                "busy_lines": [(session.where(f, ln), n) for (f, ln, _q), n in pool.hog_lines.most_common(5)],
                "queued_functions": [
                    f"{v['func']} ({session.where(v['file'], v['line'])}) waited {v['wait_ms']:.0f} ms" for v in victims
                ],
            },
        )
        if not web:
            return
        for v in victims:
            if v["run_ms"] >= session.threshold_ms or not v["file"] or is_library_file(v["file"]):
                continue
            session.add_finding(
                "slow-endpoint",
                f"sync endpoint {v['func']} ran for {v['run_ms']:.1f} ms but waited {v['wait_ms']:.0f} ms for a worker "
                f"thread behind {func} ({where})",
                filename=v["file"],
                line=v["line"],
                symbol=v["func"],
                severity=Severity.WARNING,
                section=Section.CONCURRENCY,
                explanation=(
                    "A trivial `def` endpoint still needs a token of anyio's shared thread pool; while slow sync "
                    "endpoints hold all of them, its latency is theirs (a liveness probe that queues gets the pod restarted)."
                ),
                fix="Declare the endpoint `async def` (it does no blocking work), so it runs on the event loop directly.",
                fix_example=(
                    f"# before\ndef {v['func'].split('.')[-1]}():\n    return {{'status': 'alive'}}\n"
                    f"# after\nasync def {v['func'].split('.')[-1]}():\n    return {{'status': 'alive'}}"
                ),
                references=(_FASTAPI_DOC, _ANYIO_DOC),
                confidence=Confidence.HIGH,
                code=EXECUTOR_CODES["slow-endpoint"],
                extra={"wait_ms": round(v["wait_ms"], 3), "run_ms": round(v["run_ms"], 3), "blocked_by": where},
            )

    @staticmethod
    def _victims(pool: _Pool, waited: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per function that queued: the longest wait and its run time (ms)."""
        out: dict[str, dict[str, Any]] = {}
        for it in waited:
            wait = (it["started"] - it["submitted"]) * 1000.0
            run = ((it["ended"] or it["started"]) - it["started"]) * 1000.0
            cur = out.get(it["func"])
            if cur is None or wait > cur["wait_ms"]:
                out[it["func"]] = {"func": it["func"], "file": it["file"], "line": it["line"], "wait_ms": wait, "run_ms": run}
        return sorted(out.values(), key=lambda v: -v["wait_ms"])[:10]
