"""ExecutorMonitor: thread pool and anyio limiter saturation, sync endpoints."""
from __future__ import annotations

import asyncio
import concurrent.futures
import time

import anyio
import anyio.to_thread
import pytest
from corpus_util import CORPUS, corpus_expected
from loop_util import findings, line_of, run

from async_expert_ext.commands.profile import profile_file
from async_expert_ext.loop import profile
from async_expert_ext.loop.executors import EXECUTOR_COLUMNS, ExecutorMonitor


def _anyio_backend():
    import anyio._backends._asyncio as backend

    return backend.AsyncIOBackend


# ---------------------------------------------------------------------------
# corpus 08: FastAPI sync endpoints starve anyio's thread pool
# ---------------------------------------------------------------------------
def test_corpus_08_sync_endpoints_starve_the_threadpool():
    name = "08_fastapi_sync_endpoints_starve_threadpool.py"
    expected = next(f for f in corpus_expected()[name]["findings"] if f["kind"] == "sync-endpoint-threadpool")
    report, exc = profile_file(str(CORPUS / name), profile=False, static=False)
    assert exc is None
    found = findings(report, "sync-endpoint-threadpool")
    assert any(f.line in expected["lines"] for f in found), report.finding_list
    f = next(f for f in found if f.line in expected["lines"])
    assert f.line == 23  # the line the 40 workers were busy at: time.sleep in render_tile
    assert f.code == "AEX941" and f.source == "runtime"
    assert f.extra["workers"] == 40 and f.extra["peak_busy"] == 40
    assert f.extra["wait_ms_max"] >= 500
    assert f.fix_example and f.references
    # the trivial sync probe that queued behind the renders
    slow = findings(report, "slow-endpoint")
    assert [s.line for s in slow] == [28]
    assert slow[0].extra["wait_ms"] >= 500 and slow[0].extra["run_ms"] < 50
    # NOT a finding: time.sleep in a sync endpoint runs in a worker thread, not on the loop
    assert not [b for b in findings(report, "blocking-call-in-async") if b.line == 23]
    table = report.tables["executor"]
    assert table[0]["executor"] == "anyio default CapacityLimiter" and set(table[0]) == set(EXECUTOR_COLUMNS)


# ---------------------------------------------------------------------------
# unit
# ---------------------------------------------------------------------------
def _slow_io(x: int) -> int:
    time.sleep(0.1)  # WORKER
    return x


async def _saturated_pool() -> None:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="io") as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, _slow_io, i) for i in range(6)))


def test_saturated_threadpool_is_executor_exhaustion_at_the_busy_line():
    report, exc = run(_saturated_pool)
    assert exc is None
    found = findings(report, "executor-exhaustion")
    assert [f.line for f in found] == [line_of(_slow_io, "WORKER")]
    f = found[0]
    assert f.code == "AEX940"
    assert f.extra["workers"] == 2 and f.extra["peak_busy"] == 2
    assert f.extra["queued_items"] >= 3 and f.extra["wait_ms_max"] >= 150
    row = report.tables["executor"][0]
    assert row["executor"] == "ThreadPoolExecutor io" and row["submitted"] == 6 and row["peak_queued"] >= 3
    assert row["run_ms_max"] >= 90


async def _default_executor_to_thread() -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    await asyncio.gather(*(asyncio.to_thread(_slow_io, i) for i in range(3)))


def test_default_executor_through_to_thread():
    report, _ = run(_default_executor_to_thread)
    found = findings(report, "executor-exhaustion")
    assert [f.line for f in found] == [line_of(_slow_io, "WORKER")]
    assert found[0].extra["pool"] == "default executor"


async def _anyio_limiter() -> None:
    limiter = anyio.CapacityLimiter(2)
    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(lambda i=i: anyio.to_thread.run_sync(_slow_io, i, limiter=limiter))


def test_anyio_limiter_outside_a_web_framework_is_executor_exhaustion():
    _anyio_backend()  # imported before the session, as in any program that already used anyio
    report, _ = run(_anyio_limiter)
    assert findings(report, "sync-endpoint-threadpool") == []
    found = findings(report, "executor-exhaustion")
    assert [f.line for f in found] == [line_of(_slow_io, "WORKER")]
    assert found[0].extra["workers"] == 2 and found[0].extra["pool"].startswith("anyio CapacityLimiter")


async def _clean_executor_use() -> None:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(10):
            await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.005) for _ in range(4)))
    for _ in range(20):
        await asyncio.to_thread(sum, range(100))
    await anyio.to_thread.run_sync(sum, range(10))


def test_clean_executor_use_reports_nothing():
    report, exc = run(_clean_executor_use)
    assert exc is None
    assert not {f.kind for f in report.finding_list} & {"executor-exhaustion", "sync-endpoint-threadpool", "slow-endpoint"}
    rows = report.tables["executor"]
    assert sum(r["submitted"] for r in rows) >= 61
    assert all(r["waited"] == 0 for r in rows)


def test_patches_are_restored_even_after_an_exception():
    backend = _anyio_backend()
    submit = concurrent.futures.ThreadPoolExecutor.__dict__["submit"]
    run_sync = backend.__dict__["run_sync_in_worker_thread"]

    async def boom() -> None:
        await asyncio.to_thread(time.sleep, 0)
        await anyio.to_thread.run_sync(time.sleep, 0)
        raise ValueError("boom")

    report, exc = run(boom)
    assert isinstance(exc, ValueError)
    assert concurrent.futures.ThreadPoolExecutor.__dict__["submit"] is submit
    assert backend.__dict__["run_sync_in_worker_thread"] is run_sync

    async def interrupted() -> None:
        async with profile(static=False, profile=False):
            await asyncio.to_thread(time.sleep, 0)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(interrupted())
    assert concurrent.futures.ThreadPoolExecutor.__dict__["submit"] is submit
    assert backend.__dict__["run_sync_in_worker_thread"] is run_sync

    async def hangs() -> None:
        await asyncio.to_thread(time.sleep, 0)
        await asyncio.sleep(10)

    report, _ = run(hangs, timeout_s=0.2)
    assert report.timed_out
    assert concurrent.futures.ThreadPoolExecutor.__dict__["submit"] is submit


def test_work_submitted_during_the_session_finishing_after_it_still_runs():
    async def main() -> int:
        loop = asyncio.get_running_loop()
        async with profile(static=False, profile=False, instruments=[ExecutorMonitor()]):
            fut = loop.run_in_executor(None, _slow_io, 7)
        return await fut

    assert asyncio.run(main()) == 7
