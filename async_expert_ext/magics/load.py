"""``%async_load app``: the in-process load probe for a FastAPI or Starlette app of the namespace.

Flags::

    %async_load APP [--path P ...] [--requests N] [--concurrency C] [--duration S]
                    [--param name=value ...] [--server] [--threshold MS] [-o NAME]
                    [--memory PATH] [--no-memory]

APP is the name (or dotted attribute, ``module.app``) of the app in the user's
namespace. The probe (:func:`async_expert_ext.loadprobe.probe`) runs on a fresh
event loop in a worker thread while the cell waits: the kernel's own loop is busy
running the cell, and the app's lifespan creates its resources on the probe's loop.
The :class:`~async_expert_ext.loadprobe.LoadReport` is displayed, stored in
``_async_load`` (and in NAME with ``-o``), and recorded in the memory file.
"""
from __future__ import annotations

import shlex
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_magic, magics_class

__all__ = ["MAGICS", "LoadMagics"]


@magics_class
class LoadMagics(Magics):
    """The ``%async_load`` line magic."""

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("app", help="name of the FastAPI/Starlette app in the namespace")
    @magic_arguments.argument("--path", action="append", default=None, metavar="P", help="only this route: a path template or a concrete path (repeatable)")
    @magic_arguments.argument("--requests", type=int, default=100, metavar="N", help="load requests per route (default 100)")
    @magic_arguments.argument("--concurrency", type=int, default=None, metavar="C", help="requests in flight per route (default 8; anyio's tokens + 5 for slow sync endpoints, 2 for slow async ones)")
    @magic_arguments.argument("--duration", type=float, default=3.0, metavar="S", help="stop the load after S seconds (default 3)")
    @magic_arguments.argument("--param", action="append", default=None, metavar="NAME=VALUE", help="sample value of a path, query, header or body parameter (repeatable)")
    @magic_arguments.argument("--server", action="store_true", help="run the app under uvicorn on 127.0.0.1 and use real sockets")
    @magic_arguments.argument("--threshold", type=float, default=None, metavar="MS", help="a loop stall longer than this is a blocking event (default 50 ms, %%config AsyncExpert.threshold_ms)")
    @magic_arguments.argument("-o", dest="output", default=None, metavar="NAME", help="store the LoadReport in this variable (the last one is always _async_load)")
    @magic_arguments.argument("--memory", default=None, metavar="PATH", help="record this run in the memory file at PATH")
    @magic_arguments.argument("--no-memory", dest="no_memory", action="store_true", help="do not record this run in the memory file")
    @line_magic
    def async_load(self, line: str) -> None:
        """Load-test a FastAPI/Starlette app in-process under the loop instruments and
        show per-route latency, which route made which other route slow (and the
        culprit line), threadpool saturation and FastAPI recommendations."""
        import os
        import sys

        from IPython.display import display

        from ..commands.load import parse_params
        from ..errors import UsageError
        from ..fastapi_inspect import is_app
        from ..loadprobe import run_probe
        from .profile import _cell_label

        try:
            args = self.async_load.parser.parse_args(shlex.split(line))  # type: ignore[attr-defined]
        except SystemExit:  # pragma: no cover - magic_arguments raises UsageError itself
            raise IPythonUsageError(f"%async_load: invalid flags {line!r}") from None
        for name in ("requests", "concurrency", "duration", "threshold"):
            value = getattr(args, name)
            if value is not None and not value > 0:
                raise IPythonUsageError(f"%async_load: --{name} must be > 0, got {value:g}")
        if args.output is not None and not args.output.isidentifier():
            raise IPythonUsageError(f"%async_load: -o needs a variable name, got {args.output!r}")
        app = self._lookup(args.app)
        if not is_app(app):
            raise IPythonUsageError(f"%async_load: {args.app} is not a FastAPI or Starlette app ({type(app).__name__})")
        from .options import AsyncExpert

        cfg = AsyncExpert.instance() if AsyncExpert.initialized() else None
        try:
            params = parse_params(args.param)
            report = run_probe(
                app,
                paths=args.path,
                requests=args.requests,
                concurrency=args.concurrency,
                duration=args.duration,
                params=params,
                server=args.server,
                threshold_ms=args.threshold or (cfg.threshold_ms if cfg else 50.0),
                target=args.app,
                label=_cell_label(self.shell),
            )
        except UsageError as exc:
            raise IPythonUsageError(f"%async_load: {exc}") from None
        except RuntimeError as exc:
            raise IPythonUsageError(f"%async_load: {exc}") from None
        shell = self.shell
        assert shell is not None
        shell.user_ns["_async_load"] = report
        if args.output:
            shell.user_ns[args.output] = report
        display(report)
        from ..memory import record_quietly

        memory = args.memory
        if memory and len(memory) >= 2 and memory[0] == memory[-1] and memory[0] in "'\"":
            memory = memory[1:-1]
        recall = record_quietly(report, tool="%async_load", target=args.app, path=memory, enabled=not args.no_memory, start=os.getcwd())
        if recall is not None:
            print(recall.summary(), file=sys.stderr if recall.status == "failed" else sys.stdout)

    def _lookup(self, name: str) -> Any:
        assert self.shell is not None
        ns = self.shell.user_ns
        head, *rest = name.split(".")
        if not head.isidentifier() or not all(p.isidentifier() for p in rest):
            raise IPythonUsageError(f"%async_load: give the app's name, got {name!r}")
        if head not in ns:
            raise IPythonUsageError(f"%async_load: no variable {head!r} in the namespace")
        obj = ns[head]
        for part in rest:
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise IPythonUsageError(f"%async_load: {name!r}: no attribute {part!r}") from None
        return obj


MAGICS = [LoadMagics]
