"""profile() / ProfileSession: findings by kind and line, state restoration, crashing
instruments, the LoopReport model and its renderers."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from async_expert_ext.loop import Instrument, ProfileSession, profile
from async_expert_ext.model import (
    BLOCKING_COLUMNS,
    FINDING_COLUMNS,
    LAG_COLUMNS,
    LOCK_COLUMNS,
    TASK_COLUMNS,
    LoopReport,
)
from async_expert_ext.render.html import render as render_html
from async_expert_ext.render.text import render as render_text

HERE = Path(__file__).resolve()


def line_of(marker: str) -> int:
    for n, text in enumerate(HERE.read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return n
    raise LookupError(marker)


def snapshot(loop: asyncio.AbstractEventLoop) -> dict:
    return {
        "factory": loop.get_task_factory(),
        "handler": loop.get_exception_handler(),
        "debug": loop.get_debug(),
        "slow": loop.slow_callback_duration,
        "depth": sys.get_coroutine_origin_tracking_depth(),
        "unraisable": sys.unraisablehook,
        "showwarning": warnings.showwarning,
        "filters": list(warnings.filters),
        "asyncio_handlers": list(logging.getLogger("asyncio").handlers),
        "threads": sorted(t.name for t in threading.enumerate()),
        "call_exception_handler": type(loop).call_exception_handler,
        "loop_attrs": sorted(vars(loop)),
        "selector_attrs": sorted(vars(loop._selector)),
        "asyncio_run": asyncio.run,
        "thread_profile": getattr(threading, "_profile_hook", None),
    }


def found(report: LoopReport, kind: str, line: int) -> bool:
    return any(
        f.kind == kind and f.line == line and (f.source == "runtime" or f.extra.get("confirmed"))
        for f in report.finding_list
    )


# -- cases ------------------------------------------------------------------
async def ping() -> None:
    await asyncio.sleep(0)


async def fails() -> None:
    await asyncio.sleep(0)
    raise KeyError("gone")


async def cases() -> None:
    ping()  # NEVER-AWAITED
    t = asyncio.create_task(fails())  # UNRETRIEVED
    await asyncio.sleep(0.01)
    asyncio.create_task(asyncio.sleep(10))  # LEAKED
    try:
        asyncio.run(ping())  # REENTRY
    except RuntimeError:
        pass
    del t


def run(coro, **options):
    async def go():
        loop = asyncio.get_running_loop()
        before = snapshot(loop)
        p = profile(coro, profile=False, **options)
        error = None
        try:
            await p
        except BaseException as exc:  # noqa: BLE001
            error = exc
        assert snapshot(loop) == before
        return p.report, error

    return asyncio.run(go())


def test_runtime_findings_at_their_lines():
    report, error = run(cases())
    assert error is None
    assert found(report, "never-awaited", line_of("NEVER-AWAITED"))
    assert found(report, "task-exception-never-retrieved", line_of("UNRETRIEVED"))
    assert found(report, "leaked-task", line_of("LEAKED"))
    assert found(report, "event-loop-already-running", line_of("REENTRY"))
    states = {t["coro"]: t["state"] for t in report.task_records}
    assert states["fails"] == "failed" and states["sleep"] == "pending"
    failed = next(t for t in report.task_records if t["coro"] == "fails")
    assert failed["exception"] == "KeyError: 'gone'" and failed["exception_retrieved"] is False
    pending = next(t for t in report.task_records if t["coro"] == "sleep")
    assert pending["await_stack"] and "sleep" in pending["await_stack"][0]


def test_retrieved_exception_is_not_reported():
    async def main():
        t = asyncio.create_task(fails())
        await asyncio.sleep(0.01)
        assert isinstance(t.exception(), KeyError)

    report, _ = run(main())
    assert not [f for f in report.finding_list if f.kind == "task-exception-never-retrieved"]
    assert report.task_records[0]["exception_retrieved"] is True


@pytest.mark.parametrize("cancel", [True, False])
def test_cancel_leaked_cancels_pending_tasks(cancel):
    async def go():
        holder = {}

        async def main():
            holder["t"] = asyncio.create_task(asyncio.sleep(10))

        report = await profile(main(), profile=False, cancel_leaked=cancel)
        await asyncio.sleep(0)
        state = holder["t"].cancelled()
        holder["t"].cancel()
        return state, report

    cancelled, report = asyncio.run(go())
    assert cancelled is cancel
    assert any("--cancel-leaked" in n for n in report.notes) is cancel


async def hangs_on_read() -> None:
    reader = asyncio.StreamReader()
    await reader.readexactly(8)  # STUCK-READ


def test_timeout_cancels_and_reports_pending_await():
    async def main():
        t = asyncio.create_task(hangs_on_read())
        await asyncio.sleep(5)
        return t

    started = time.perf_counter()
    report, error = run(main(), timeout_s=0.3)
    assert time.perf_counter() - started < 3
    assert error is None  # the timeout was ours: the awaitable is cancelled, the report says so
    assert report.timed_out
    assert found(report, "missing-timeout", line_of("STUCK-READ"))
    pending = [t for t in report.task_records if t["coro"] == "hangs_on_read"]
    assert pending and any("readexactly" in s for s in pending[0]["await_stack"])


def test_exception_in_profiled_code_propagates_after_report():
    async def main():
        await asyncio.sleep(0)
        raise ValueError("boom")

    report, error = run(main())
    assert isinstance(error, ValueError)
    assert report.exception == "ValueError: boom"


def test_keyboard_interrupt_restores_everything():
    async def main():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    report, error = run(main())
    assert isinstance(error, KeyboardInterrupt)
    assert report.exception.startswith("KeyboardInterrupt")


def test_async_with_form_and_logs_capture():
    async def main():
        async with profile(profile=False) as report:
            logging.getLogger("asyncio").error("captured %s", "record")
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(RuntimeError("lost"))
            del fut
            gc.collect()
        return report

    report = asyncio.run(main())
    messages = [r["message"] for r in report.log_records]
    assert "captured record" in messages
    assert any("never retrieved" in m for m in messages)


class Broken(Instrument):
    name = "broken"

    def install(self, session):
        raise RuntimeError("instrument bug")


class BrokenLater(Instrument):
    name = "broken-later"

    def task_created(self, session, task, record):
        raise ValueError("hook bug")


def test_crashing_instrument_is_switched_off_not_the_code():
    from async_expert_ext.loop.detectors import TaskTracker

    async def main():
        await asyncio.gather(*(ping() for _ in range(3)))
        return 42

    async def go():
        p = profile(main(), instruments=[Broken(), BrokenLater(), TaskTracker()], static=False)
        report = await p
        return p.result, report

    result, report = asyncio.run(go())
    assert result == 42
    assert any("broken" in e and "instrument bug" in e for e in report.errors)
    assert any("broken-later" in e and "hook bug" in e for e in report.errors)
    assert len(report.task_records) == 3


def test_nest_lets_asyncio_run_work_and_says_what_it_changes():
    import subprocess

    code = (
        "import asyncio\n"
        "from async_expert_ext.loop import profile\n"
        "async def inner():\n    await asyncio.sleep(0)\n    return 7\n"
        "async def main():\n    return asyncio.run(inner())\n"
        "async def go():\n    p = profile(main(), nest=True, profile=False)\n    r = await p\n"
        "    print(p.result, any('nest-asyncio2' in n for n in r.notes),"
        " [f.kind for f in r.finding_list if f.source == 'runtime'])\n"
        "asyncio.run(go())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[0] == "7 True []", out.stderr


def test_report_frames_have_documented_columns_and_roundtrip():
    report, _ = run(cases())
    assert list(report.tasks.columns) == list(TASK_COLUMNS)
    assert str(report.tasks["state"].dtype) == "category"
    assert list(report.blocking.columns) == list(BLOCKING_COLUMNS)
    assert list(report.lag.columns) == list(LAG_COLUMNS)
    assert list(report.locks.columns) == list(LOCK_COLUMNS)
    assert list(report.findings.columns) == list(FINDING_COLUMNS)
    data = json.loads(json.dumps(report.to_dict()))
    again = LoopReport.from_dict(data)
    assert [f.fingerprint for f in again.finding_list] == [f.fingerprint for f in report.finding_list]
    assert again.summary()["tasks"] == report.summary()["tasks"] == len(report.task_records)
    bundle = report._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "never-awaited" in render_text(report) and "<table>" in render_html(report)


def test_session_arguments_are_checked():
    with pytest.raises(ValueError):
        ProfileSession(threshold_ms=0)
    with pytest.raises(ValueError):
        ProfileSession(timeout_s=-1)
    with pytest.raises(ValueError):
        ProfileSession(origin_tracking="sometimes")


async def swallows(q: asyncio.Queue) -> str:
    while True:
        try:
            return await q.get()
        except asyncio.CancelledError:  # SWALLOW
            continue


async def cleans_up_and_reraises(q: asyncio.Queue) -> str:
    try:
        return await q.get()
    except asyncio.CancelledError:
        await asyncio.sleep(0)
        raise


def test_cancelled_error_swallowed_only_when_cancellation_is_lost():
    async def main():
        q1: asyncio.Queue = asyncio.Queue()
        q2: asyncio.Queue = asyncio.Queue()
        a = asyncio.create_task(swallows(q1))
        b = asyncio.create_task(cleans_up_and_reraises(q2))
        await asyncio.sleep(0.01)
        a.cancel()
        b.cancel()
        await asyncio.sleep(0.01)
        q1.put_nowait("done anyway")
        await asyncio.gather(a, b, return_exceptions=True)

    report, _ = run(main())
    hits = [f for f in report.finding_list if f.kind == "cancelled-error-swallowed" and (f.source == "runtime" or f.extra.get("confirmed"))]
    assert [f.line for f in hits] == [line_of("SWALLOW")]


class SlowToInstall(Instrument):
    """Stands for an instrument whose installation takes time (pyinstrument, class patches)."""

    name = "slow-install"

    def install(self, session):
        time.sleep(0.2)


def test_instrument_installation_is_not_reported_as_blocking():
    from async_expert_ext.loop.detectors import BlockingDetector

    async def main():
        await asyncio.sleep(0.05)
        time.sleep(0.12)  # the only block of the profiled code
        await asyncio.sleep(0.02)

    async def go():
        return await profile(main(), instruments=[BlockingDetector(), SlowToInstall()], static=False, threshold_ms=50)

    report = asyncio.run(go())
    assert [(b["line"], b["snippet"].strip()) for b in report.blocking_records] == [
        (main.__code__.co_firstlineno + 2, "time.sleep(0.12)  # the only block of the profiled code")
    ]


def test_coroutine_made_before_the_profile_is_not_blamed_on_the_caller():
    """A stale coroutine from an earlier cell, collected by the profiler's own closing
    gc.collect(), has no culprit line: an info finding at an unknown location."""
    import gc

    async def main():
        await asyncio.sleep(0.01)

    async def go():
        gc.disable()
        try:
            cycle = [ping()]
            cycle.append(cycle)
            del cycle  # only the profiler's closing gc.collect() finds it
            return await profile(main(), static=False, profile=False)
        finally:
            gc.enable()

    report = asyncio.run(go())
    found = [(f.kind, f.severity.value, f.location) for f in report.finding_list if f.kind == "never-awaited"]
    assert found == [("never-awaited", "info", "?")]


async def _waits_on_a_queue() -> None:
    q: asyncio.Queue = asyncio.Queue()
    await q.get()  # never answered


def test_timeout_names_the_await_of_the_profiled_code_not_the_instruments():
    """`await profile(coro, timeout_s=...)`: the note and the finding name the user's
    await (Queue.get at its line), not the contention monitor's wrapper."""

    async def go():
        return await profile(_waits_on_a_queue(), timeout_s=0.5, profile=False, static=False)

    report = asyncio.run(go())
    line = _waits_on_a_queue.__code__.co_firstlineno + 2
    assert report.timed_out
    assert any(n.startswith("when --timeout 0.5 s fired, the profiled code was awaiting `Queue.get` at ") and n.endswith(f":{line}") for n in report.notes), report.notes
    found = [(f.kind, f.line, f.message) for f in report.finding_list if f.kind == "missing-timeout"]
    assert found and found[0][1] == line and "Queue.get" in found[0][2] and "make_wait" not in found[0][2]
