"""ContentionMonitor: asyncio primitive waits, lock-held-across-await, deadlocks.

Corpus cases run their ``main()`` under the profiler (the default instruments) and must
report the expected kind at one of the expected lines; unit cases build small programs
whose lines are found by a marker comment.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from corpus_util import CORPUS, corpus_expected
from loop_util import findings, line_of, run

from async_expert_ext.commands.profile import profile_file
from async_expert_ext.loop import profile
from async_expert_ext.loop.contention import _TARGETS, ContentionMonitor
from async_expert_ext.loop.detectors import BlockingDetector, TaskTracker


def originals():
    return {(cls, attr): cls.__dict__[attr] for cls, attr in _TARGETS}


# ---------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------
def _corpus_lines(name: str, kind: str) -> list[int]:
    for f in corpus_expected()[name]["findings"]:
        if f["kind"] == kind and f["runtime"]:
            return f["lines"]
    raise AssertionError(f"{name} expects no runtime {kind}")


def test_corpus_19_lock_held_across_await_and_deadlock():
    name = "19_lock_held_across_network_await.py"
    report, exc = profile_file(str(CORPUS / name), profile=False, static=False)
    assert exc is None
    held = findings(report, "lock-held-across-await")
    assert any(f.line in _corpus_lines(name, "lock-held-across-await") for f in held), report.finding_list
    f = next(f for f in held if f.line in _corpus_lines(name, "lock-held-across-await"))
    assert f.source == "runtime" and f.code == "AEX930"
    assert f.extra["waits"] >= 7 and f.extra["hold_ms_max"] >= 150  # 0.2 s round trips, 8 requests
    assert f.fix_example and f.references and f.explanation
    dead = findings(report, "deadlock")
    assert any(d.line in _corpus_lines(name, "deadlock") for d in dead), report.finding_list
    d = next(d for d in dead if d.line == 33)
    assert d.extra["shape"] == "self" and d.extra["waited_ms"] >= 1000  # until wait_for's 1.5 s timeout
    assert d.path.endswith(name)
    rows = [r for r in report.lock_records if r["primitive"] == "Lock"]
    assert len(rows) >= 8 and all(r["holder"] for r in rows)
    assert rows[0]["name"].endswith(f"{name}:18")  # where the lock was created
    assert report.locks["wait_ms"].max() >= 1000


def test_corpus_21_loop_blocked_on_threading_lock_held_by_suspended_task():
    name = "21_threading_lock_in_async.py"
    report, exc = profile_file(str(CORPUS / name), profile=False, static=False)
    assert exc is None
    lines = _corpus_lines(name, "blocking-call-in-async")  # [36, 20]: the blocked line is where the deadlock shows
    dead = [f for f in findings(report, "deadlock") if f.line in lines]
    assert dead, report.finding_list
    d = dead[0]
    assert d.extra["shape"] == "thread-lock-held-by-suspended-task"
    assert d.extra["holder_with_at"].endswith(f"{name}:29")
    assert d.extra["blocked_ms"] >= 1500


def test_corpus_29_semaphore_held_by_abandoned_generator_is_a_deadlock():
    report, _exc = profile_file(str(CORPUS / "29_async_generator_not_closed.py"), profile=False, static=False)
    dead = findings(report, "deadlock")
    assert [d.line for d in dead] == [31]  # `async with pool:` while the generator holds the only token
    assert dead[0].extra["held_at"].endswith(":14")


# ---------------------------------------------------------------------------
# unit: contention
# ---------------------------------------------------------------------------
async def _serialized() -> None:
    lock = asyncio.Lock()

    async def worker() -> None:
        async with lock:  # ACQUIRE
            await asyncio.sleep(0.08)

    await asyncio.gather(*(worker() for _ in range(4)))


def test_lock_held_across_await_is_reported_at_the_acquire_line():
    report, exc = run(_serialized)
    assert exc is None
    held = findings(report, "lock-held-across-await")
    assert [f.line for f in held] == [line_of(_serialized, "ACQUIRE")]
    f = held[0]
    assert f.extra["waits"] == 3 and f.extra["peak_waiters"] == 3
    assert f.extra["wait_ms_max"] >= 200
    assert any("sleep" in a for a in f.extra["held_while_awaiting"])
    frame = report.locks
    assert list(frame.columns)[:3] == ["primitive", "name", "task"]
    assert len(frame) == 3 and (frame["hold_ms"] >= 70).all() and (frame["wait_ms"] >= 70).all()
    summary = report.tables["contention"]
    assert summary[0]["acquisitions"] == 4 and summary[0]["waits"] == 3


async def _clean() -> None:
    lock = asyncio.Lock()
    sem = asyncio.Semaphore(3)
    bounded = asyncio.BoundedSemaphore(2)
    event = asyncio.Event()
    cond = asyncio.Condition()
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=5)
    shared = {"n": 0}

    async def worker(i: int) -> None:
        for _ in range(5):
            async with lock:
                shared["n"] += 1
                await asyncio.sleep(0)
            async with sem, bounded:
                await asyncio.sleep(0)

    async def producer() -> None:
        for i in range(200):
            await queue.put(i)
        await queue.put(-1)

    async def consumer() -> None:
        while await queue.get() != -1:
            pass

    async def waiter() -> None:
        await event.wait()
        async with cond:
            await cond.wait_for(lambda: shared["n"] >= 2500)

    w = asyncio.create_task(waiter())
    await asyncio.gather(*(worker(i) for i in range(500)), producer(), consumer())
    event.set()
    await asyncio.sleep(0)
    async with cond:
        cond.notify_all()
    await w


def test_clean_run_with_plenty_of_lock_use_reports_nothing():
    report, exc = run(_clean)
    assert exc is None
    kinds = {f.kind for f in report.finding_list}
    assert not kinds & {"lock-held-across-await", "deadlock"}, report.finding_list
    assert report.errors == []
    rows = report.tables["contention"]
    assert max(r["acquisitions"] for r in rows if r["primitive"] == "Lock") >= 2500
    assert {"Lock", "Semaphore", "BoundedSemaphore", "Queue", "Event"} <= {r["primitive"] for r in rows}


async def _self_call() -> None:
    lock = asyncio.Lock()

    async def inner() -> None:
        async with lock:  # INNER
            pass

    async def outer() -> None:
        async with lock:
            await inner()  # SELF-CALL

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(outer(), 0.3)


def test_lock_reacquired_by_the_task_that_holds_it_is_a_deadlock_at_the_call():
    report, exc = run(_self_call)
    assert exc is None
    dead = findings(report, "deadlock")
    # the second acquisition, reached through the call made while holding the lock
    assert [d.line for d in dead] == [line_of(_self_call, "INNER")]
    assert any(f":{line_of(_self_call, 'SELF-CALL')})" in c for c in dead[0].call_chain)
    assert dead[0].extra["waited_ms"] >= 250 and dead[0].code == "AEX931"


async def _nested_same_function() -> None:
    lock = asyncio.Lock()

    async def twice() -> None:
        async with lock, lock:  # AGAIN
            pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(twice(), 0.2)


def test_nested_acquire_in_one_function_is_reported_at_the_second_acquire():
    report, _ = run(_nested_same_function)
    assert [d.line for d in findings(report, "deadlock")] == [line_of(_nested_same_function, "AGAIN")]


async def _cycle() -> None:
    a, b = asyncio.Lock(), asyncio.Lock()

    async def one() -> None:
        async with a:
            await asyncio.sleep(0.02)
            async with b:  # ONE
                pass

    async def two() -> None:
        async with b:
            await asyncio.sleep(0.02)
            async with a:  # TWO
                pass

    t1, t2 = asyncio.create_task(one()), asyncio.create_task(two())
    await asyncio.sleep(0.6)
    t1.cancel()
    t2.cancel()
    await asyncio.gather(t1, t2, return_exceptions=True)


def test_wait_for_cycle_is_a_deadlock():
    report, _ = run(_cycle, instruments=[TaskTracker(), ContentionMonitor(deadlock_s=0.2)])
    dead = findings(report, "deadlock")
    assert dead and {d.line for d in dead} <= {line_of(_cycle, "ONE"), line_of(_cycle, "TWO")}
    assert dead[0].extra["shape"] == "cycle"


async def _holder_stuck() -> None:
    lock = asyncio.Lock()
    never = asyncio.Event()

    async def holder() -> None:
        async with lock:
            await never.wait()

    async def victim() -> None:
        await asyncio.sleep(0.01)
        async with lock:  # VICTIM
            pass

    tasks = [asyncio.create_task(holder()), asyncio.create_task(victim())]
    await asyncio.sleep(0.6)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_waiter_behind_a_holder_stuck_on_an_event_is_a_deadlock():
    report, _ = run(_holder_stuck, instruments=[TaskTracker(), ContentionMonitor(deadlock_s=0.2)])
    dead = findings(report, "deadlock")
    assert [d.line for d in dead] == [line_of(_holder_stuck, "VICTIM")]
    assert dead[0].extra["shape"] == "holder-stuck"


async def _slow_but_progressing() -> None:
    lock = asyncio.Lock()

    async def slow() -> None:
        async with lock:
            await asyncio.sleep(0.5)  # long, but it ends

    async def other() -> None:
        await asyncio.sleep(0.01)
        async with lock:
            pass

    await asyncio.gather(slow(), other())


def test_a_long_hold_that_ends_is_contention_not_deadlock():
    report, _ = run(_slow_but_progressing, instruments=[TaskTracker(), ContentionMonitor(deadlock_s=0.2)])
    assert findings(report, "deadlock") == []
    assert len(findings(report, "lock-held-across-await")) == 1


async def _thread_holds_threading_lock() -> None:
    lock = threading.Lock()
    started = threading.Event()

    def hold() -> None:
        with lock:
            started.set()
            time.sleep(0.3)

    t = threading.Thread(target=hold)
    t.start()
    started.wait()
    with lock:  # blocks the loop, but the owner is a thread that will release it
        pass
    t.join()


def test_threading_lock_owned_by_a_thread_is_blocking_not_deadlock():
    report, _ = run(_thread_holds_threading_lock)
    assert findings(report, "deadlock") == []
    assert findings(report, "blocking-call-in-async")


# ---------------------------------------------------------------------------
# restoration
# ---------------------------------------------------------------------------
def test_patches_are_restored_after_normal_exit_exception_interrupt_and_timeout():
    before = originals()

    async def boom() -> None:
        lock = asyncio.Lock()
        async with lock:
            raise ValueError("boom")

    _report, exc = run(boom)
    assert isinstance(exc, ValueError)
    assert originals() == before

    async def interrupt() -> None:
        async with profile(static=False, profile=False):
            await asyncio.Lock().acquire()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(interrupt())
    assert originals() == before

    async def forever() -> None:
        ev = asyncio.Event()
        await ev.wait()

    report, exc = run(forever, timeout_s=0.2)
    assert report.timed_out and originals() == before
    assert math.isnan(report.lock_records[0]["wait_ms"]) or report.lock_records[0]["wait_ms"] >= 150

    run(_serialized)
    assert originals() == before
    assert asyncio.Lock.acquire.__qualname__ == "Lock.acquire"


def test_primitives_created_during_a_session_keep_working_afterwards():
    async def main() -> None:
        async with profile(static=False, profile=False):
            cond = asyncio.Condition()  # binds lock.acquire while the wrapper is installed
            lock = asyncio.Lock()
        async with cond:
            cond.notify_all()
        async with lock:
            pass
        assert not lock.locked()

    asyncio.run(main())


def test_crashing_hook_switches_the_instrument_off_not_the_program(monkeypatch):
    mon = ContentionMonitor()

    def broken(*_a, **_k):
        raise RuntimeError("instrument bug")

    monkeypatch.setattr(mon, "finish", broken)
    report, exc = run(_serialized, instruments=[mon])
    assert exc is None
    assert any("contention" in e and "switched off" in e for e in report.errors)


def test_blocking_detector_rows_are_read_not_required():
    # without the blocking instrument the threading-lock check finds no rows and stays quiet
    report, _ = run(_serialized, instruments=[ContentionMonitor(), BlockingDetector()])
    assert findings(report, "deadlock") == []
