"""Synthetic reports of any size, for renderer tests and ``bench/render_scale.py``.

The findings are copies of real rule output shapes (blocking call, task and
FastAPI kinds with fixes, before/after examples and references); the loop
report has tasks in every end state, blocking events with stacks and a lag
series. Deterministic: the same arguments give the same report.
"""
from __future__ import annotations

import random

from ..model import Finding, LoopReport, ScanReport

__all__ = ["SAMPLE_SOURCE", "loop_report", "scan_report"]

SAMPLE_SOURCE = '''\
import asyncio
import time

import requests


async def handler(request):
    time.sleep(0.5)
    data = requests.get("https://example.org", timeout=5).json()
    asyncio.create_task(audit(data))
    return data


async def audit(data):
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        pass
'''

_KINDS = [
    (
        "AEX101", "blocking-call-in-async", "critical", "critical-issues", 8,
        "`time.sleep()` blocks the event loop; every other task waits for it",
        "time.sleep() suspends the whole thread, and the event loop runs on that thread.",
        "Use `await asyncio.sleep(...)`, which suspends only this coroutine.",
        "# before\nasync def handler():\n    time.sleep(0.5)\n\n# after\nasync def handler():\n    await asyncio.sleep(0.5)",
        ("https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code",),
    ),
    (
        "AEX102", "blocking-call-in-async", "critical", "critical-issues", 9,
        "`requests.get()` does network I/O on the event loop thread",
        "A synchronous HTTP client blocks the loop for the whole round trip.",
        "Use an async client such as `httpx.AsyncClient`.",
        "# before\nrequests.get(url).json()\n\n# after\n(await client.get(url)).json()",
        ("https://www.python-httpx.org/async/",),
    ),
    (
        "AEX201", "fire-and-forget-task", "warning", "async-patterns", 10,
        "the task returned by `create_task()` is not kept",
        "The loop keeps only a weak reference to tasks; an unreferenced task can vanish mid-flight.",
        "Keep a reference (a set of background tasks) or use a TaskGroup.",
        "# before\nasyncio.create_task(audit(data))\n\n# after\ntask = asyncio.create_task(audit(data))\nbackground.add(task)\ntask.add_done_callback(background.discard)",
        ("https://docs.python.org/3/library/asyncio-task.html#asyncio.create_task",),
    ),
    (
        "AEX301", "cancelled-error-swallowed", "warning", "error-handling", 17,
        "`CancelledError` is caught and not re-raised",
        "Swallowing cancellation breaks timeouts, TaskGroup and shutdown.",
        "Re-raise `CancelledError` after cleanup.",
        "# before\nexcept asyncio.CancelledError:\n    pass\n\n# after\nexcept asyncio.CancelledError:\n    cleanup()\n    raise",
        ("https://docs.python.org/3/library/asyncio-task.html#task-cancellation",),
    ),
    (
        "AEX401", "sync-endpoint-threadpool", "info", "fastapi", 7,
        "a sync endpoint runs in Starlette's threadpool (40 workers)",
        "Sync endpoints share a bounded threadpool; under load requests queue.",
        "Make the endpoint `async def` and await async I/O.",
        "# before\n@app.get('/x')\ndef x(): ...\n\n# after\n@app.get('/x')\nasync def x(): ...",
        ("https://fastapi.tiangolo.com/async/",),
    ),
]


def scan_report(n: int, *, files: int = 0) -> ScanReport:
    """A ScanReport with ``n`` findings spread over ``files`` files (default
    ``max(1, n // 10)``), every file's source being :data:`SAMPLE_SOURCE`."""
    files = files or max(1, n // 10)
    findings = []
    for i in range(n):
        code, kind, sev, section, line, msg, why, fix, example, refs = _KINDS[i % len(_KINDS)]
        path = f"app/module_{i % files:04d}.py"
        extra = {}
        if i % 7 == 0 and kind == "blocking-call-in-async":
            extra = {"confirmed": True, "blocked_count": 3, "total_blocked_s": 0.61}
        if i % 11 == 0:
            extra = {**extra, "seen_before": "2026-11-20"}
        findings.append(
            Finding(
                code=code, kind=kind, severity=sev, section=section, message=f"{msg} (#{i})",
                path=path, line=line, explanation=why, fix=fix, fix_example=example,
                references=refs, symbol="handler", snippet=SAMPLE_SOURCE.splitlines()[line - 1],
                call_chain=("handler (%s:%d)" % (path, line),) if i % 5 == 1 else (), extra=extra,
            )
        )
    paths = sorted({f.path for f in findings})
    return ScanReport(
        findings=findings, files_scanned=paths, seconds=0.01 * n / 100 if n else 0.001,
        target="app", sources={p: SAMPLE_SOURCE for p in paths},
    )


def loop_report(n_tasks: int, *, blocks: int = 3, lag_samples: int = 0, seed: int = 7) -> LoopReport:
    """A LoopReport with ``n_tasks`` tasks (done, failed, cancelled, pending),
    ``blocks`` blocking events at known lines and a lag series."""
    rnd = random.Random(seed)
    duration = max(1.0, n_tasks / 2000)
    states = ["done"] * 7 + ["failed", "cancelled", "pending"]
    tasks = []
    for i in range(n_tasks):
        start = rnd.uniform(0, duration * 0.8)
        state = states[i % len(states)]
        end = None if state == "pending" else min(duration, start + rnd.uniform(0.001, duration * 0.2))
        tasks.append(
            {
                "task_id": i, "name": f"Task-{i + 1}", "coro": "fetch" if i % 3 else "worker",
                "created_at": f"In[3]:{4 + i % 5}", "created_path": "In[3]", "created_line": 4 + i % 5,
                "start_s": start, "end_s": end, "duration_ms": None if end is None else (end - start) * 1000,
                "state": state, "exception": "ValueError: boom" if state == "failed" else "",
                "exception_retrieved": False if state == "failed" else None,
                "await_stack": ("worker (In[3]:9)", "Event.wait (asyncio/locks.py:213)") if state == "pending" else (),
            }
        )
    blocking = []
    for b in range(blocks):
        start = duration * (b + 1) / (blocks + 1)
        blocking.append(
            {
                "start_s": start, "duration_ms": 60.0 + 120.0 * b, "location": f"In[3]:{6 + b}",
                "path": "In[3]", "line": 6 + b, "function": "handler", "snippet": "time.sleep(0.2)",
                "samples": 12, "share": 0.9, "task": "Task-1",
                "stack": ("<module> (In[3]:12)", "handler (In[3]:%d)" % (6 + b), "sleep (<built-in>)"),
            }
        )
    n_lag = lag_samples or max(50, int(duration / 0.01))
    lag = []
    for k in range(n_lag):
        t = duration * k / n_lag
        v = abs(rnd.gauss(1.0, 0.5))
        for b in blocking:
            if b["start_s"] <= t <= b["start_s"] + b["duration_ms"] / 1000 + 0.01:
                v = b["duration_ms"]
        lag.append({"t_s": t, "lag_ms": v})
    findings = [
        Finding(
            code="AEX901", kind="blocking-call-in-async", severity="critical", section="critical-issues",
            message=f"the event loop was blocked {b['duration_ms']:.0f} ms at {b['location']}",
            path="In[3]", line=b["line"], source="runtime", snippet=b["snippet"],
            fix="Use `await asyncio.sleep(...)`.", explanation="Nothing else ran on the loop meanwhile.",
            fix_example="# before\ntime.sleep(0.2)\n\n# after\nawait asyncio.sleep(0.2)",
            extra={"blocked_ms": b["duration_ms"], "confirmed": True},
        )
        for b in blocking
    ]
    pending = [t for t in tasks if t["state"] == "pending"]
    if pending:
        findings.append(
            Finding(
                code="AEX910", kind="leaked-task", severity="warning", section="async-patterns",
                message=f"{len(pending)} task(s) still pending at the end", path="In[3]", line=9,
                source="runtime", fix="Await or cancel every task you start (TaskGroup).",
            )
        )
    return LoopReport(
        finding_list=findings, task_records=tasks, blocking_records=blocking, lag_records=lag,
        target="In[3]", seconds=duration, settings={"threshold_ms": 50.0, "interval_ms": 10.0},
    )
