"""Load a FastAPI or Starlette app in-process and say which route made which other route slow.

``async-expert load FILE.py:app [--path P ...] [--requests N] [--concurrency C]
[--duration S] [--param name=value ...] [--server] [--threshold MS]
[--format text|json] [--exit-zero] [--memory PATH] [--no-memory]``

FILE is imported as a module (not as ``__main__``) and its ``app`` (or NAME in
``FILE.py:NAME``) is driven by :func:`async_expert_ext.loadprobe.probe`: the app's
lifespan runs, each route is requested alone, then all routes at once under the
loop instruments, with a timer-driven canary per route. With ``--server`` the app
runs under uvicorn on 127.0.0.1 (a free port) and is driven through real sockets.
The app's own standard output goes to standard error, so that with
``--format json`` standard output holds only the report object:
``{"findings": [...], "routes": [{"path", "method", "requests", "p50_ms", "p95_ms",
"p99_ms", "errors", ...}], "skipped": [...], "threadpool": {...},
"recommendations": [...], "load": {...}}``.

Exit status: 0 when nothing was reported, 1 when findings were reported (0 with
``--exit-zero``), 2 on a usage error (missing file, no such app, a ``--path``
matching no route, bad flag), with one line on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from ..errors import UsageError

__all__ = ["configure", "parse_params", "run"]


def _positive(kind: str, cast: Any = float):
    def parse(value: str) -> Any:
        try:
            number = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind} {value!r}: give a {'whole ' if cast is int else ''}number") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"invalid {kind} {value!r}: must be > 0")
        return number

    return parse


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["id=3", "q=abc"]`` -> ``{"id": "3", "q": "abc"}``.

    Raises:
        UsageError: an item without ``=`` or with an empty name.
    """
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param needs name=value, got {item!r}")
        out[name.strip()] = value
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``load`` flags on ``parser`` (an argparse subparser)."""
    parser.add_argument("app", metavar="FILE.py:app", help="the file defining the app, and the app's name (default: app)")
    parser.add_argument("--path", action="append", default=None, metavar="P", help="only this route: a path template or a concrete path (repeatable)")
    parser.add_argument("--requests", type=_positive("request count", int), default=100, metavar="N", help="load requests per route (default 100)")
    parser.add_argument("--concurrency", type=_positive("concurrency", int), default=None, metavar="C", help="requests in flight per route (default 8; anyio's tokens + 5 for slow sync endpoints, 2 for slow async ones)")
    parser.add_argument("--duration", type=_positive("duration"), default=3.0, metavar="S", help="stop the load after S seconds (default 3)")
    parser.add_argument("--param", action="append", default=None, metavar="NAME=VALUE", help="sample value of a path, query, header or body parameter (repeatable)")
    parser.add_argument("--server", action="store_true", help="run the app under uvicorn on 127.0.0.1 and use real sockets")
    parser.add_argument("--threshold", type=_positive("threshold"), default=50.0, metavar="MS", help="a loop stall longer than this is a blocking event (default 50 ms)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are reported")
    parser.add_argument("--memory", default=None, metavar="PATH", help="append the run to this memory file")
    parser.add_argument("--no-memory", dest="no_memory", action="store_true", help="do not write the memory file")


def run(args: argparse.Namespace) -> int:
    """Run ``async-expert load``; returns the exit status.

    Raises:
        TargetNotFound, UsageError: bad file, app, ``--path`` or ``--param`` (exit 2 in the CLI).
    """
    from ..loadprobe import load_app, render_text, run_probe

    params = parse_params(args.param)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        app, _path = load_app(args.app)
        try:
            report = run_probe(
                app,
                paths=args.path,
                requests=args.requests,
                concurrency=args.concurrency,
                duration=args.duration,
                params=params,
                server=args.server,
                threshold_ms=args.threshold,
                target=args.app,
            )
        except RuntimeError as exc:  # the app's lifespan failed: one line, exit 2
            raise UsageError(str(exc)) from None
    if args.format == "json":
        data = report.to_dict()
        keys = ("findings", "routes", "skipped", "threadpool", "recommendations", "load", "blocking", "target", "seconds", "notes", "errors", "exception")
        out = json.dumps({k: data[k] for k in keys}, indent=2)
    else:
        out = render_text(report)
    real_stdout.write(out + "\n")
    real_stdout.flush()
    from ..memory import record_quietly

    recall = record_quietly(report, tool="async-expert load", target=args.app, path=args.memory, enabled=not args.no_memory)
    if recall is not None:
        print(recall.summary(), file=real_stdout if args.format == "text" and recall.status != "failed" else sys.stderr)
    if args.exit_zero:
        return 0
    return 1 if report.finding_list else 0
