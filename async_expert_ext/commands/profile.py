"""Run a program's ``main()`` under the loop instruments and report what happened.

``async-expert profile FILE.py [--entry main] [--no-profile] [--format text|json]
[--threshold MS] [--interval MS] [--timeout S] [--cancel-leaked] [--exit-zero]``

FILE is imported as a module (not as ``__main__``, so its ``if __name__ ==
"__main__":`` block does not run), then ``await FILE.main()`` (or ``--entry NAME``)
runs on a fresh event loop with the instruments installed. The program's own
standard output goes to standard error, so that with ``--format json`` standard
output holds only ``{"findings": [...], "tasks": [...], "blocking": [...]}``
(findings in the same schema as ``async-expert scan --format json``).

Exit status: 0 when nothing was reported, 1 when findings were reported or the
program raised (0 with ``--exit-zero``), 2 on a usage error (missing file, no such
entry point, entry point not async, bad flag), with one line on stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import sys
import traceback
from typing import Any

from ..errors import UsageError
from ..model import LoopReport

__all__ = ["configure", "run", "load_entry", "profile_file"]


def _positive(kind: str):
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind} {value!r}: give a number") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"invalid {kind} {value!r}: must be > 0")
        return number

    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``profile`` flags on ``parser`` (an argparse subparser)."""
    parser.add_argument("file", metavar="FILE.py", help="the program; imported as a module, its main() is awaited")
    parser.add_argument("--entry", default="main", metavar="NAME", help="the async function to await (default: main)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("--threshold", type=_positive("threshold"), default=50.0, metavar="MS", help="a loop stall longer than this is a blocking event (default 50 ms)")
    parser.add_argument("--interval", type=_positive("interval"), default=10.0, metavar="MS", help="heartbeat interval for the loop lag series (default 10 ms)")
    parser.add_argument("--timeout", type=_positive("timeout"), default=None, metavar="S", help="cancel the program after S seconds and report what was pending")
    parser.add_argument("--no-profile", dest="no_profile", action="store_true", help="do not record a pyinstrument profile")
    parser.add_argument("--cancel-leaked", dest="cancel_leaked", action="store_true", help="cancel tasks still pending when main() returns")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are reported")
    parser.add_argument("--memory", default=None, metavar="PATH", help="append the run to this memory file")
    parser.add_argument("--no-memory", dest="no_memory", action="store_true", help="do not write the memory file")


def load_entry(path: str, entry: str = "main") -> tuple[Any, Any]:
    """Import ``path`` as a module (named after the file, not ``__main__``) and
    return ``(module, entry_function)``.

    Raises:
        TargetNotFound: when the file does not exist.
        UsageError: when the entry point is missing or not an ``async def``.
    """
    from ..importfile import import_file

    module = import_file(path)
    fn = getattr(module, entry, None)
    if fn is None:
        raise UsageError(f"{path} has no function {entry!r} (use --entry NAME)")
    if not inspect.iscoroutinefunction(fn):
        raise UsageError(f"{path}:{entry} is not an async function")
    return module, fn


def profile_file(path: str, entry: str = "main", **options: Any) -> tuple[LoopReport, BaseException | None]:
    """Import ``path``, run ``await entry()`` on a fresh loop under :func:`~async_expert_ext.loop.profile`.

    Returns:
        ``(report, exception)``; the exception the program raised, or None.

    Raises:
        TargetNotFound, UsageError: see :func:`load_entry`.
    """
    from ..loop import profile

    _module, fn = load_entry(path, entry)
    source = open(path, encoding="utf-8", errors="replace").read()
    real = os.path.abspath(path)

    def label(filename: str) -> str:
        if os.path.abspath(filename) == real:
            return path
        try:
            rel = os.path.relpath(filename)
        except ValueError:
            return filename
        return filename if rel.startswith("..") else rel

    holder: dict[str, Any] = {}

    async def runner() -> None:
        p = profile(fn(), target=f"{path}:{entry}", label=label, static_source={path: source}, **options)
        holder["profile"] = p
        try:
            await p
        except BaseException as exc:  # the program's error: keep the report
            holder["exc"] = exc

    asyncio.run(runner())
    return holder["profile"].report, holder.get("exc")


def run(args: argparse.Namespace) -> int:
    """Run ``async-expert profile``; returns the exit status.

    Raises:
        TargetNotFound, UsageError: bad file or entry point (exit 2 in the CLI).
    """
    options = {
        "threshold_ms": args.threshold,
        "interval_ms": args.interval,
        "timeout_s": args.timeout,
        "profile": not args.no_profile,
        "cancel_leaked": args.cancel_leaked,
    }
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        report, exc = profile_file(args.file, args.entry, **options)
        if exc is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if args.format == "json":
        data = report.to_dict()
        out = json.dumps({"findings": data["findings"], "tasks": data["tasks"], "blocking": data["blocking"]}, indent=2)
    else:
        from ..render.text import render as render_text

        out = render_text(report)
    real_stdout.write(out + "\n")
    real_stdout.flush()
    from ..memory import record_quietly

    recall = record_quietly(report, tool="async-expert profile", target=args.file, path=args.memory, enabled=not args.no_memory)
    if recall is not None:  # where the memory entry went (stdout with text, else stderr)
        print(recall.summary(), file=real_stdout if args.format == "text" and recall.status != "failed" else sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    if args.exit_zero:
        return 0
    return 1 if (report.finding_list or exc is not None) else 0
