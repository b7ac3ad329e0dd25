"""Lifecycle instruments: gather-partial-failure, async-generator-not-closed, cross-loop-resource."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import sys

import pytest
from corpus_util import CORPUS, corpus_expected
from loop_util import findings, line_of, run

from async_expert_ext.commands.profile import profile_file
from async_expert_ext.loop import profile


def _expected(name: str, kind: str) -> list[int]:
    return next(f["lines"] for f in corpus_expected()[name]["findings"] if f["kind"] == kind and f["runtime"])


# ---------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------
def test_corpus_22_gather_sibling_keeps_running():
    name = "22_gather_sibling_keeps_running.py"
    report, exc = profile_file(str(CORPUS / name), profile=False, static=False)
    assert exc is None
    found = findings(report, "gather-partial-failure")
    assert [f.line for f in found] == _expected(name, "gather-partial-failure") == [37]
    f = found[0]
    assert f.code == "AEX960" and f.source == "runtime"
    assert f.extra["ran_after_failure_ms"] >= 200  # main sleeps 0.3 s before cancelling the orphan
    assert any("handle_messages" in k for k in f.extra["kept_running"])
    # the orphan is a task the tracker shows as created at the gather line
    rows = [r for r in report.task_records if r["coro"] == "handle_messages"]
    assert rows and rows[0]["created_line"] == 37


def test_corpus_29_async_generator_not_closed():
    name = "29_async_generator_not_closed.py"
    report, exc = profile_file(str(CORPUS / name), profile=False, static=False)
    assert exc is None
    found = findings(report, "async-generator-not-closed")
    assert [f.line for f in found] == _expected(name, "async-generator-not-closed") == [26]
    f = found[0]
    assert f.code == "AEX916" and f.extra["finalized_by_gc"] == 1
    assert f.extra["suspended_at"].endswith(":18")
    assert "aclosing" in f.fix_example


# ---------------------------------------------------------------------------
# gather
# ---------------------------------------------------------------------------
async def _gather_orphan() -> None:
    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise KeyError("x")

    async def loops() -> None:
        while True:
            await asyncio.sleep(0.01)

    with contextlib.suppress(KeyError):
        await asyncio.gather(fails(), loops())  # GATHER
    await asyncio.sleep(0.2)
    for t in asyncio.all_tasks():
        if t.get_coro().__qualname__.endswith("loops"):
            t.cancel()
    await asyncio.sleep(0)


def test_gather_child_left_running_after_failure():
    report, _ = run(_gather_orphan)
    assert [f.line for f in findings(report, "gather-partial-failure")] == [line_of(_gather_orphan, "GATHER")]


async def _gather_clean() -> None:
    async def ok(d: float) -> float:
        await asyncio.sleep(d)
        return d

    async def fails() -> None:
        raise ValueError("no")

    await asyncio.gather(ok(0.01), ok(0.02))
    await asyncio.gather(ok(0.01), fails(), return_exceptions=True)
    with contextlib.suppress(ValueError):
        await asyncio.gather(fails(), ok(0.001))  # the sibling ends on its own right away
    await asyncio.sleep(0.15)


def test_gather_without_orphans_reports_nothing():
    report, exc = run(_gather_clean)
    assert exc is None
    assert findings(report, "gather-partial-failure") == []


# ---------------------------------------------------------------------------
# async generators
# ---------------------------------------------------------------------------
async def _agen_abandoned() -> None:
    async def rows():
        try:
            for i in range(10):
                yield i
        finally:
            await asyncio.sleep(0)

    async def first() -> int:
        gen = rows()
        async for r in gen:  # ASYNC_FOR
            if r >= 1:
                return r
        return -1

    await asyncio.create_task(first())
    gc.collect()
    await asyncio.sleep(0.01)


async def _agen_clean() -> None:
    async def rows():
        try:
            for i in range(10):
                yield i
        finally:
            await asyncio.sleep(0)

    async def plain():
        for i in range(10):
            yield i

    async with contextlib.aclosing(rows()) as gen:
        async for r in gen:
            if r >= 1:
                break
    async for r in rows():  # exhausted: nothing deferred
        pass
    async for r in plain():  # abandoned, but no cleanup to defer
        break
    gc.collect()
    await asyncio.sleep(0.01)


def test_abandoned_async_generator_with_cleanup_is_reported_at_the_async_for():
    report, _ = run(_agen_abandoned)
    found = findings(report, "async-generator-not-closed")
    assert [f.line for f in found] == [line_of(_agen_abandoned, "ASYNC_FOR")]


def test_closed_exhausted_or_cleanup_free_generators_report_nothing():
    report, exc = run(_agen_clean)
    assert exc is None
    assert findings(report, "async-generator-not-closed") == []


def test_asyncgen_hooks_are_restored_and_chained():
    async def main() -> None:
        before = sys.get_asyncgen_hooks()
        p = profile(_agen_abandoned(), static=False, profile=False)
        await p
        after = sys.get_asyncgen_hooks()
        assert after.firstiter is before.firstiter and after.finalizer is before.finalizer
        # the loop's own bookkeeping still happened (its firstiter was chained)
        loop = asyncio.get_running_loop()
        assert hasattr(loop, "_asyncgens")

        async def boom() -> None:
            raise ValueError("boom")

        with pytest.raises(ValueError):
            await profile(boom(), static=False, profile=False)
        assert sys.get_asyncgen_hooks() == before

    asyncio.run(main())


# ---------------------------------------------------------------------------
# cross-loop resources
# ---------------------------------------------------------------------------
async def _future_of_other_loop() -> None:
    other = asyncio.new_event_loop()
    try:
        fut = other.create_future()

        async def uses() -> None:
            await fut  # OTHER_LOOP

        task = asyncio.create_task(uses())
        with contextlib.suppress(RuntimeError):
            await task
    finally:
        other.close()


def test_future_of_another_loop_awaited_in_a_task():
    report, _ = run(_future_of_other_loop)
    found = findings(report, "cross-loop-resource")
    assert [f.line for f in found] == [line_of(_future_of_other_loop, "OTHER_LOOP")]
    assert "different loop" in found[0].extra["message"] and found[0].code == "AEX961"


async def _closed_loop() -> None:
    other = asyncio.new_event_loop()
    other.close()
    other.call_soon(print)  # CLOSED


def test_closed_loop_error_raised_by_the_profiled_code():
    report, exc = run(_closed_loop)
    assert isinstance(exc, RuntimeError)
    found = findings(report, "cross-loop-resource")
    assert [f.line for f in found] == [line_of(_closed_loop, "CLOSED")]
    assert "closed" in found[0].message


def test_other_runtime_errors_are_not_cross_loop():
    async def other() -> None:
        raise RuntimeError("something else")

    report, exc = run(other)
    assert isinstance(exc, RuntimeError)
    assert findings(report, "cross-loop-resource") == []


def test_error_messages_shorten_task_and_future_reprs():
    from async_expert_ext.loop.lifecycle import _short_reprs

    text = (
        "Task <Task pending name='Task-3' coro=<main() running at /x.py:3> cb=[_run_until_complete_cb() at /y.py:1]>"
        " got Future <Future pending> attached to a different loop"
    )
    assert _short_reprs(text) == "Task <Task 'Task-3'> got Future <Future> attached to a different loop"
    assert _short_reprs("Event loop is closed") == "Event loop is closed"
