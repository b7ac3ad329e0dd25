"""Helpers shared by the instrument tests: run a coroutine function under the
profiler, find a marked source line, pick findings by kind."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

from async_expert_ext.loop import profile


def line_of(fn: Any, marker: str) -> int:
    """The file line of the source line of ``fn`` containing ``# <marker>``."""
    lines, first = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if f"# {marker}" in text:
            return first + i
    raise AssertionError(f"marker {marker!r} not in {fn.__name__}")


def run(coro_fn: Any, *, instruments: Any = None, **options: Any) -> tuple[Any, BaseException | None]:
    """Profile ``coro_fn()`` on a fresh loop (no static join, no pyinstrument);
    returns ``(report, the profiled code's exception or None)``."""

    async def main() -> tuple[Any, BaseException | None]:
        p = profile(coro_fn(), static=False, profile=False, instruments=instruments, **options)
        try:
            await p
        except BaseException as exc:  # noqa: BLE001 - the program's own error is part of the test
            return p.report, exc
        return p.report, None

    return asyncio.run(main())


def findings(report: Any, kind: str) -> list[Any]:
    """The report's findings of one kind."""
    return [f for f in report.finding_list if f.kind == kind]
