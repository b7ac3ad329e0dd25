"""``%%loop_profile``: run a cell on the kernel's own event loop with the loop instruments.

How it runs (see DESIGN.md, "Facts measured here"): an input transformer replaces
the ``%%loop_profile [flags]`` header line with one call that parses the flags and
installs the instruments on the running loop; IPython then runs the body as usual
(top-level ``await`` included, same line numbers); a ``post_run_cell`` hook removes
the instruments and shows the report. No nested loop and no thread: futures, clients
and tasks from other cells keep working. When the cell raises, the report is shown
first and the cell's own traceback after it (``showtraceback`` is wrapped for the
duration of the cell only).

Flags::

    %%loop_profile [--threshold MS] [--interval MS] [--timeout S] [--no-profile]
                   [--cancel-leaked] [--nest] [-o NAME]
"""
from __future__ import annotations

import itertools
import shlex
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, magics_class

__all__ = ["MAGICS", "LoopProfileMagics", "install", "transform_cell", "uninstall"]

_HEADER = "%%loop_profile"
_BODIES: dict[str, str] = {}
_COUNTER = itertools.count(1)
_STATE: dict[str, Any] = {"session": None, "options": None, "showtraceback": None, "ip": None}


@magics_class
class LoopProfileMagics(Magics):
    """The ``%%loop_profile`` cell magic (the input transformer does the work)."""

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--threshold", type=float, default=None, metavar="MS", help="a loop stall longer than this is a blocking event (default 50 ms, %%config AsyncExpert.threshold_ms)")
    @magic_arguments.argument("--interval", type=float, default=None, metavar="MS", help="heartbeat interval for the loop lag series (default 10 ms)")
    @magic_arguments.argument("--timeout", type=float, default=None, metavar="S", help="cancel the cell's work after S seconds and report what was still pending")
    @magic_arguments.argument("--no-profile", dest="no_profile", action="store_true", help="no pyinstrument profile")
    @magic_arguments.argument("--cancel-leaked", dest="cancel_leaked", action="store_true", help="cancel tasks still pending when the cell ends")
    @magic_arguments.argument("--nest", action="store_true", help="apply nest-asyncio2 so that asyncio.run() works in the cell (process-wide patch, opt-in)")
    @magic_arguments.argument("-o", dest="output", default=None, metavar="NAME", help="store the LoopReport in this variable (the last one is always _loop_profile)")
    @magic_arguments.argument("--memory", default=None, metavar="PATH", help="record this run in the memory file at PATH (default: .claude/sub_agents_memory.md under the project root)")
    @magic_arguments.argument("--no-memory", dest="no_memory", action="store_true", help="do not record this run in the memory file")
    @cell_magic
    def loop_profile(self, line: str, cell: str) -> None:
        """Run the cell on the kernel's running event loop with the loop instruments
        (blocking watchdog, loop lag, tasks, never-awaited coroutines, asyncio logs,
        pyinstrument) and show a LoopReport. Requires ``%load_ext async_expert_ext``."""
        # Reached only when the input transformer is not installed (e.g. the magic
        # was registered by hand): the body cannot be awaited from here.
        raise IPythonUsageError(
            "%%loop_profile needs its input transformer: run `%load_ext async_expert_ext` first"
        )


MAGICS = [LoopProfileMagics]


def _parse(line: str) -> Any:
    parser = LoopProfileMagics.loop_profile.parser  # type: ignore[attr-defined]
    try:
        args = parser.parse_args(shlex.split(line))
    except SystemExit:  # pragma: no cover - magic_arguments raises UsageError itself
        raise IPythonUsageError(f"%%loop_profile: invalid flags {line!r}") from None
    for name in ("threshold", "interval", "timeout"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise IPythonUsageError(f"%%loop_profile: --{name} must be > 0, got {value:g}")
    if args.output is not None and not args.output.isidentifier():
        raise IPythonUsageError(f"%%loop_profile: -o needs a variable name, got {args.output!r}")
    return args


def transform_cell(lines: list[str]) -> list[str]:
    """Input transformer (``input_transformers_cleanup``): turn the header line into
    a call of :func:`_begin`; the body and its line numbers stay as they are."""
    if not lines or not lines[0].startswith(_HEADER):
        return lines
    head = lines[0]
    rest = head[len(_HEADER):]
    if rest and not rest[0].isspace():
        return lines  # %%loop_profilexyz: not ours
    token = str(next(_COUNTER))
    _BODIES[token] = "\n" + "".join(lines[1:])  # line 1 blank: static lines match the cell's
    call = f"__import__('async_expert_ext.magics.profile', fromlist=['_begin'])._begin({rest.strip()!r}, {token!r})"
    if _needs_a_loop():
        # terminal IPython runs only cells with a top-level await on its event loop:
        # one await on the header line gives this cell a loop (same line numbers)
        call += "; await __import__('asyncio').sleep(0)"
    return [call + "\n", *lines[1:]]


def _needs_a_loop() -> bool:
    """True where no event loop runs while cells execute (terminal IPython, an
    InteractiveShell in a script) but IPython can run the cell on its own loop
    (``%autoawait`` on). In a Jupyter kernel the kernel's loop is already running."""
    import asyncio

    try:
        asyncio.get_running_loop()
        return False
    except RuntimeError:
        pass
    from IPython import get_ipython

    ip = get_ipython()
    return bool(ip is not None and getattr(ip, "autoawait", False))


def _cell_label(ip: Any) -> Any:
    compiler = getattr(ip, "compile", None)
    fmap = getattr(compiler, "_filename_map", {}) or {}

    def label(filename: str) -> str:
        n = fmap.get(filename)
        return f"In[{n}]" if n is not None else filename

    return label


def _begin(line: str, token: str) -> None:
    """Called by the transformed cell's first line: parse flags, start the session."""
    import asyncio

    from IPython import get_ipython

    from ..loop.session import ProfileSession

    ip = get_ipython()
    body = _BODIES.pop(token, "")
    args = _parse(line)
    if _STATE["session"] is not None:  # a previous cell did not finish cleanly
        _finish(None)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise IPythonUsageError(
            "%%loop_profile: no event loop is running for this cell; turn on `%autoawait asyncio` "
            "(terminal IPython then runs the cell on its event loop), or run it in a Jupyter kernel"
        ) from None
    from .options import AsyncExpert

    cfg = AsyncExpert.instance() if AsyncExpert.initialized() else None
    import sys

    labeller = _cell_label(ip)
    label = labeller(sys._getframe(1).f_code.co_filename)  # the cell's own code name
    if label.startswith("<") or "/" in label or "\\" in label:
        label = f"In[{ip.execution_count}]"
    session = ProfileSession(
        threshold_ms=args.threshold or (cfg.threshold_ms if cfg else 50.0),
        interval_ms=args.interval or (cfg.interval_ms if cfg else 10.0),
        profile=(not args.no_profile) and (cfg.profile if cfg else True),
        timeout_s=args.timeout,
        cancel_leaked=args.cancel_leaked,
        nest=args.nest,
        target=label,
        label=labeller,
        static_source={label: body},
    )
    _STATE.update(session=session, options=args, ip=ip)
    original = ip.showtraceback
    _STATE["showtraceback"] = original

    def showtraceback(*a: Any, **kw: Any) -> Any:
        import sys

        if _STATE["session"] is session:
            _finish(sys.exc_info()[1])
        return original(*a, **kw)

    ip.showtraceback = showtraceback
    session.start()


def _finish(exc: BaseException | None) -> Any:
    session = _STATE["session"]
    if session is None:
        return None
    ip, args = _STATE["ip"], _STATE["options"]
    _STATE["session"] = None
    if _STATE["showtraceback"] is not None:
        try:
            del ip.showtraceback  # drop the instance attribute, back to the class method
        except AttributeError:
            ip.showtraceback = _STATE["showtraceback"]
        _STATE["showtraceback"] = None
    report = session.stop(exc)
    host = session.host_task
    if session.timed_out and host is not None and hasattr(host, "uncancel") and host.cancelling():
        host.uncancel()
    ip.user_ns["_loop_profile"] = report
    if args is not None and args.output:
        ip.user_ns[args.output] = report
    import os
    import sys

    from ..memory import record_quietly
    from ..render import display_report

    memory = getattr(args, "memory", None)
    if memory and len(memory) >= 2 and memory[0] == memory[-1] and memory[0] in "'\"":
        memory = memory[1:-1]
    # record first, so the view can mark each finding new / seen before
    recall = record_quietly(report, tool="%%loop_profile", target=report.target, path=memory, enabled=not getattr(args, "no_memory", False), start=os.getcwd())
    display_report(report, memory=recall)
    if recall is not None:  # where the memory entry went, or why it did not
        print(recall.summary(), file=sys.stderr if recall.status == "failed" else sys.stdout)
    return report


def _post_run_cell(result: Any) -> None:
    if _STATE["session"] is not None:
        _finish(getattr(result, "error_in_exec", None))


def install(ip: Any) -> None:
    """Add the input transformer and the ``post_run_cell`` hook (idempotent)."""
    if transform_cell not in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.append(transform_cell)
    try:
        ip.events.unregister("post_run_cell", _post_run_cell)
    except ValueError:
        pass
    ip.events.register("post_run_cell", _post_run_cell)


def uninstall(ip: Any) -> None:
    """Remove what :func:`install` added; a running session is stopped first."""
    if _STATE["session"] is not None:
        _finish(None)
    while transform_cell in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(transform_cell)
    try:
        ip.events.unregister("post_run_cell", _post_run_cell)
    except ValueError:
        pass
