"""Show the memory file: past analyses, what was fixed, recurring patterns.

``async-expert memory [--path P] [--format text|json] [--target T] [--kind K]
[--since DATE] [--stats]``

The memory file is found as the writers find it (see
:func:`async_expert_ext.memory.resolve_memory_path`): ``--path`` (alias
``--memory``), else ``$ASYNC_EXPERT_MEMORY``, else ``memory_file`` in
``[tool.async_expert]``, else ``.claude/sub_agents_memory.md`` under the project
root of the working directory.

``--format json`` prints one object::

    {"path": "/abs/.claude/sub_agents_memory.md",
     "entries": [{"time": "2026-11-29T06:45:15Z", "tool": "async-expert scan", "target": "app/",
                  "counts": {"critical": 1, "warning": 0, "info": 2},
                  "findings": [{"key", "fingerprint", "code", "kind", "severity", "path", "line",
                                "symbol", "message", "snippet", "fix", "source", "status", "first_seen"}],
                  "fixed": [...], "fixed_since": "...", "runtime": {...} | null,
                  "unchanged": false, "same_as": ""}],
     "warnings": ["line 40: unparseable entry data (...); skipped"]}

and with ``--stats`` also ``"stats": [{"kind", "entries", "findings", "distinct", "open",
"first_seen", "last_seen", "fix"}]``.

Exit status: 0 (also for a missing or empty memory file), 2 on a usage error
(bad ``--since`` date, memory turned off with an empty path).
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import UsageError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``memory`` flags on ``parser`` (an argparse subparser)."""
    parser.add_argument("--path", "--memory", dest="path", default=None, metavar="P", help="the memory file (default: .claude/sub_agents_memory.md under the project root)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("--target", default=None, metavar="T", help="only entries whose target contains T")
    parser.add_argument("--kind", default=None, metavar="K", help="only entries with a finding of this kind (or code prefix)")
    parser.add_argument("--since", default=None, metavar="DATE", help="only entries at or after DATE (YYYY-MM-DD or ISO time, UTC)")
    parser.add_argument("--stats", action="store_true", help="show recurring patterns (per kind) instead of the entries")


def run(args: argparse.Namespace) -> int:
    """Run ``async-expert memory``; returns 0.

    Raises:
        UsageError: a bad ``--since`` date, or an empty ``--path`` (exit 2).
    """
    from ..config import load_pyproject
    from ..memory import filter_entries, parse_since, pattern_stats, read_memory, render_entries_text

    if args.path is not None and not args.path.strip():
        raise UsageError("--path is empty: give the memory file to read")
    since = parse_since(args.since) if args.since else None
    path, entries, warnings = read_memory(args.path, settings=load_pyproject())
    if path is None:
        raise UsageError("the memory file is turned off (empty ASYNC_EXPERT_MEMORY or memory_file); pass --path")
    shown = filter_entries(entries, target=args.target, kind=args.kind, since=since)
    if args.format == "json":
        out = {"path": str(path), "entries": [e.to_dict() for e in shown], "warnings": list(warnings)}
        if args.stats:
            out["stats"] = pattern_stats(shown)
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not path.exists():
        print(f"No memory file at {path} yet: run `async-expert scan` or `%async_scan` to start one.")
        return 0
    print(render_entries_text(shown, path=path, stats=args.stats, warnings=warnings))
    return 0
