"""Blocking detection: injected blocks at known lines are found at those lines; clean runs report none."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from async_expert_ext.loop import profile

HERE = Path(__file__).resolve()


def line_of(marker: str) -> int:
    for n, text in enumerate(HERE.read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return n
    raise LookupError(marker)


def spin(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:  # SPIN
        n += 1
    return n


async def sleeper(ms: int) -> None:
    await asyncio.sleep(0.01)
    time.sleep(ms / 1000)  # BLOCK-SLEEP
    await asyncio.sleep(0)


async def cruncher(ms: int) -> None:
    await asyncio.sleep(0.01)
    spin(ms / 1000)  # BLOCK-CPU
    await asyncio.sleep(0)


async def background_ticker(stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.005)


async def injected() -> None:
    stop = asyncio.Event()
    ticker = asyncio.create_task(background_ticker(stop))
    for ms in (60, 120, 300):
        await sleeper(ms)
        await asyncio.sleep(0.02)
    for ms in (80, 200):
        await cruncher(ms)
        await asyncio.sleep(0.02)
    time.sleep(0.1)  # BLOCK-MAIN
    stop.set()
    await ticker


def run(coro, **options):
    async def go():
        return await profile(coro, profile=False, **options)

    return asyncio.run(go())


def test_injected_blocks_found_at_their_lines():
    report = run(injected())
    rows = report.blocking_records
    sleep_line, main_line = line_of("BLOCK-SLEEP"), line_of("BLOCK-MAIN")
    sleeps = [r for r in rows if r["line"] == sleep_line]
    assert len(sleeps) == 3, rows
    for r, ms in zip(sorted(sleeps, key=lambda r: r["start_s"]), (60, 120, 300)):
        assert ms * 0.9 <= r["duration_ms"] <= ms * 1.5 + 30, r
        assert r["kind"] == "blocking-call-in-async"
        assert r["task"].startswith("Task-")  # the task that ran the step
        assert r["location"].endswith(f"test_loop_blocking.py:{sleep_line}")
        assert any("sleeper" in step for step in r["stack"])
    # CPU-bound blocks: the innermost user line is inside spin(); the caller's line is on the stack
    spins = [r for r in rows if r["line"] == line_of("SPIN")]
    assert len(spins) == 2, rows
    assert all(r["kind"] == "cpu-bound-in-async" for r in spins), spins
    assert any(r["line"] == main_line for r in rows)
    # findings: one per line and kind, located at the line, with the measured cost
    by_line = {(f.kind, f.line): f for f in report.finding_list if f.source == "runtime" or f.extra.get("confirmed")}
    assert ("blocking-call-in-async", sleep_line) in by_line
    assert by_line[("blocking-call-in-async", sleep_line)].extra["events"] == 3
    assert ("cpu-bound-in-async", line_of("SPIN")) in by_line
    # nothing else was reported as blocking
    assert {r["line"] for r in rows} <= {sleep_line, line_of("SPIN"), main_line}, rows


def test_static_finding_confirmed_with_cost():
    report = run(injected())
    confirmed = [f for f in report.finding_list if f.extra.get("confirmed") and f.line == line_of("BLOCK-SLEEP")]
    assert confirmed and confirmed[0].kind == "blocking-call-in-async" and confirmed[0].source == "static"
    assert "blocked the loop 3 time(s)" in confirmed[0].extra["runtime"]


async def small(i: int) -> int:
    total = 0
    for _ in range(3):
        await asyncio.sleep(0)
        total += sum(range(50))
    return total + i


async def clean_10k() -> int:
    done = 0
    for batch in range(50):  # 10,000 tasks, 200 at a time: no loop step does much work
        tasks = [asyncio.create_task(small(batch * 200 + i)) for i in range(200)]
        done += len(await asyncio.gather(*tasks))
    return done


def test_clean_run_of_10000_tasks_reports_no_blocking():
    report = run(clean_10k())
    assert report.blocking_records == []
    assert not [f for f in report.finding_list if f.kind in ("blocking-call-in-async", "cpu-bound-in-async")]
    assert len(report.task_records) == 10_000
    assert {t["state"] for t in report.task_records} == {"done"}


def test_lag_series_shows_the_stall():
    async def main():
        await asyncio.sleep(0.05)
        time.sleep(0.15)
        await asyncio.sleep(0.05)

    report = run(main(), interval_ms=5)
    lag = report.lag
    assert list(lag.columns) == ["t_s", "lag_ms"]
    assert str(lag["lag_ms"].dtype) == "float64"
    assert lag["lag_ms"].max() >= 100
    assert len(lag) >= 5


def test_threshold_flag_changes_what_counts():
    async def main():
        await asyncio.sleep(0.01)
        time.sleep(0.08)
        await asyncio.sleep(0.01)

    assert run(main(), threshold_ms=50).blocking_records
    assert not run(main(), threshold_ms=200).blocking_records


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _three_stalls_in_one_step() -> None:
    time.sleep(0.15)  # line A
    _spin(0.15)  # line B (the spinning line is inside _spin)
    time.sleep(0.15)  # line C


def test_one_step_blocking_at_several_lines_gives_one_event_per_line():
    """A task step that never suspends but blocks at three lines in a row is three
    events, each at its own line (a single event would name only the dominant line)."""

    async def main():
        await asyncio.sleep(0.01)
        await _three_stalls_in_one_step()
        await asyncio.sleep(0.01)

    async def go():
        return await profile(main(), static=False, profile=False, threshold_ms=50)

    report = asyncio.run(go())
    first = _three_stalls_in_one_step.__code__.co_firstlineno
    spin_line = _spin.__code__.co_firstlineno + 2  # the `while` line
    lines = [b["line"] for b in report.blocking_records]
    assert lines == [first + 1, spin_line, first + 3], report.blocking_records
    assert all(100 <= b["duration_ms"] <= 400 for b in report.blocking_records)


def test_confirmed_cost_adds_up_runtime_findings_of_one_line():
    """Events at one line classified partly blocking, partly cpu-bound are one total."""
    from async_expert_ext.loop.join import _blocking_totals, _total_cost
    from async_expert_ext.model import Finding

    a = Finding(code="AEX901", kind="blocking-call-in-async", severity="warning", message="m", extra={"blocked_ms": 4010.0, "events": 7, "worst_ms": 600.0})
    b = Finding(code="AEX902", kind="cpu-bound-in-async", severity="warning", message="m", extra={"blocked_ms": 3000.0, "events": 6, "worst_ms": 700.0})
    assert _total_cost([a, b]) == "blocked the loop 13 time(s) for 7.01 s in total"
    assert _blocking_totals([a, b]) == {"events": 13, "blocked_ms": 7010.0, "worst_ms": 700.0}


def test_lag_series_includes_a_block_that_lasts_to_the_end():
    """A block at the very end (a sync cell) leaves the heartbeat no chance to run:
    the last, late heartbeat is still a lag sample."""

    async def main():
        time.sleep(0.2)

    async def go():
        return await profile(main(), static=False, profile=False, threshold_ms=50)

    report = asyncio.run(go())
    assert report.summary()["blocking_events"] == 1
    assert report.summary()["max_lag_ms"] >= 150
