"""Overhead of the loop instruments on a task-heavy workload (prints ratios; no assertions).

Workload: 2000 tasks, each 50 x (``await asyncio.sleep(0)`` + a small CPU step).
Variants, each on a fresh event loop, interleaved over several rounds (the best
time of each is kept, to damp the noise of a shared machine). The ratios use the
process CPU time (``time.process_time``: all threads, the watchdog included), which
other processes on a loaded machine disturb far less than wall time; wall-time
ratios are printed too:

- plain asyncio;
- ours with ``profile=False`` (``%%loop_profile --no-profile``);
- ours with the pyinstrument profile (the default);
- asyncio debug mode (``loop.set_debug(True)``);
- pyinstrument alone (``Profiler(async_mode="enabled")``).

Targets (issue 3): ours without profile <= 1.25x plain; ours with profile <= 1.1x
pyinstrument alone.

Run: ``python bench/loop_overhead.py [--rounds N] [--tasks N] [--steps N]``.
"""
from __future__ import annotations

import argparse
import asyncio
import time

from async_expert_ext.loop import profile


def cpu_step() -> int:
    total = 0
    for i in range(40):
        total += i * i
    return total


async def worker(steps: int) -> int:
    acc = 0
    for _ in range(steps):
        await asyncio.sleep(0)
        acc += cpu_step()
    return acc


async def workload(tasks: int, steps: int) -> None:
    await asyncio.gather(*(worker(steps) for _ in range(tasks)))


def run_plain(tasks: int, steps: int) -> float:
    async def main() -> float:
        t = time.perf_counter()
        await workload(tasks, steps)
        return time.perf_counter() - t

    return asyncio.run(main())


def run_ours(tasks: int, steps: int, with_profile: bool) -> float:
    async def main() -> float:
        t = time.perf_counter()
        await profile(workload(tasks, steps), profile=with_profile, static=False)
        return time.perf_counter() - t

    return asyncio.run(main())


def run_debug(tasks: int, steps: int) -> float:
    async def main() -> float:
        t = time.perf_counter()
        await workload(tasks, steps)
        return time.perf_counter() - t

    return asyncio.run(main(), debug=True)


def run_pyinstrument(tasks: int, steps: int) -> float:
    from pyinstrument import Profiler

    async def main() -> float:
        t = time.perf_counter()
        p = Profiler(interval=0.001, async_mode="enabled")
        p.start()
        try:
            await workload(tasks, steps)
        finally:
            p.stop()
        return time.perf_counter() - t

    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=50)
    a = ap.parse_args()
    variants = {
        "plain": lambda: run_plain(a.tasks, a.steps),
        "ours --no-profile": lambda: run_ours(a.tasks, a.steps, False),
        "ours (profile)": lambda: run_ours(a.tasks, a.steps, True),
        "asyncio debug": lambda: run_debug(a.tasks, a.steps),
        "pyinstrument alone": lambda: run_pyinstrument(a.tasks, a.steps),
    }
    best = {k: float("inf") for k in variants}
    cpu = {k: float("inf") for k in variants}
    for _ in range(a.rounds):
        for name, fn in variants.items():
            c0 = time.process_time()
            best[name] = min(best[name], fn())
            cpu[name] = min(cpu[name], time.process_time() - c0)
    print(f"workload: {a.tasks} tasks x {a.steps} x (sleep(0) + CPU step); best of {a.rounds} rounds")
    print(f"  {'variant':20s} {'CPU s':>7s} {'ratio':>6s}   {'wall s':>7s} {'ratio':>6s}")
    for name in variants:
        print(f"  {name:20s} {cpu[name]:7.3f} {cpu[name] / cpu['plain']:5.2f}x   {best[name]:7.3f} {best[name] / best['plain']:5.2f}x")
    for label, num, den, target in (
        ("ours --no-profile / plain", "ours --no-profile", "plain", "<= 1.25x"),
        ("ours (profile) / pyinstrument alone", "ours (profile)", "pyinstrument alone", "<= 1.10x"),
        ("asyncio debug / plain", "asyncio debug", "plain", ""),
    ):
        print(f"{label:38s} CPU {cpu[num] / cpu[den]:.2f}x  wall {best[num] / best[den]:.2f}x  {('target ' + target) if target else ''}")


if __name__ == "__main__":
    main()
