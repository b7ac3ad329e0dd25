"""``async-expert``: the command line (also ``python -m async_expert_ext``).

Subcommands live one per module in :mod:`async_expert_ext.commands`, each with
``configure(parser)`` and ``run(args) -> int``. Exit codes: 0 clean, 1 findings
reported, 2 usage error.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from . import __version__
from .errors import AsyncExpertError

__all__ = ["main", "build_parser", "COMMANDS"]

#: subcommand -> (module implementing it, one-line help). Only the module of the
#: command being run is imported: `scan` does not pay for the profiler's imports.
COMMANDS = {
    "scan": ("async_expert_ext.commands.scan", "Scan files, folders, notebooks or modules for async bugs, without running them."),
    "profile": ("async_expert_ext.commands.profile", "Run a program's main() under the loop instruments and report what happened."),
    "memory": ("async_expert_ext.commands.memory", "Show the memory file: past analyses, what was fixed, recurring patterns."),
    "load": ("async_expert_ext.commands.load", "Load a FastAPI or Starlette app in-process and say which route made which other route slow."),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """Usage errors: exit 2 with one line on stderr (no usage block)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported and configured
    (every command's when ``command`` is None, e.g. for the docs)."""
    parser = _Parser(prog="async-expert", description="Find async bugs in Python code, statically or in a running loop.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (modname, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is not None and name != command:
            continue
        mod = importlib.import_module(modname)
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args))
    except AsyncExpertError as exc:
        print(f"async-expert: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("async-expert: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
