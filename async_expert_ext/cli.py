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

#: subcommand -> module implementing it
COMMANDS = {
    "scan": "async_expert_ext.commands.scan",
    "profile": "async_expert_ext.commands.profile",
    "memory": "async_expert_ext.commands.memory",
    "load": "async_expert_ext.commands.load",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """Usage errors: exit 2 with one line on stderr (no usage block)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="async-expert", description="Find async bugs in Python code, statically or in a running loop.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue
            raise
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else None)
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
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
