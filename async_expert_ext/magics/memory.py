"""``%async_memory``: past analyses and recurring patterns from the memory file.

``%async_memory [--target T] [--kind K] [--since DATE] [--stats] [--path P]``

The memory file is the one the other magics write to (see
:func:`async_expert_ext.memory.resolve_memory_path`): ``--path``, else
``%config AsyncExpert.memory_file``, else ``$ASYNC_EXPERT_MEMORY``, else
``memory_file`` in ``[tool.async_expert]``, else ``.claude/sub_agents_memory.md``
under the project root of the kernel's working directory.

The result is a :class:`MemoryListing` (shown as markdown and plain text; its
``entries`` are :class:`~async_expert_ext.memory.MemoryEntry` objects and
``to_frame()`` gives one row per finding per entry).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from .. import errors
from ..memory import _int

__all__ = ["AsyncMemoryMagics", "MemoryListing", "MAGICS"]

#: Columns of :meth:`MemoryListing.to_frame`, with their pandas dtypes.
MEMORY_COLUMNS: dict[str, str] = {
    "time": "datetime64 (UTC)",  # when the analysis ran; the unit (ns/us) is pandas' default
    "tool": "string",
    "target": "string",
    "unchanged": "bool",  # a "re-checked, unchanged" note
    "code": "string",
    "kind": "category",
    "severity": "string",
    "path": "string",
    "line": "int64",
    "symbol": "string",
    "status": "string",  # "new" | "seen"
    "first_seen": "string",  # YYYY-MM-DD
    "fingerprint": "string",
}


@dataclass
class MemoryListing:
    """What ``%async_memory`` shows.

    Attributes:
        path: the memory file read (None when memory is turned off).
        entries: the matching entries, oldest first.
        stats: with ``--stats``, the rows of :func:`async_expert_ext.memory.pattern_stats`.
        warnings: unparseable parts that were skipped, one line each.
    """

    path: Path | None
    entries: list[Any] = field(default_factory=list)
    stats: list[dict[str, Any]] | None = None
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The plain-text listing."""
        from ..memory import render_entries_text

        if self.path is not None and not self.path.exists():
            return f"No memory file at {self.path} yet: %async_scan or %%loop_profile will start one."
        return render_entries_text(self.entries, path=self.path, stats=self.stats is not None, warnings=self.warnings)

    def _repr_markdown_(self) -> str:
        from ..render.markdown import table_cell

        if self.path is not None and not self.path.exists():
            return self.text()
        lines: list[str] = []
        if self.stats is not None:
            lines.append(f"**Recurring async patterns** in `{self.path}` ({len(self.entries)} entries)\n")
            lines.append("| kind | entries | findings | distinct | still open | first seen | last seen | fix |")
            lines.append("|---|---:|---:|---:|---:|---|---|---|")
            for r in self.stats:
                lines.append(
                    f"| {table_cell(r['kind'])} | {r['entries']} | {r['findings']} | {r['distinct']} | {r['open']} "
                    f"| {r['first_seen']} | {r['last_seen']} | {table_cell(r['fix'])} |"
                )
        else:
            lines.append(f"**{len(self.entries)} memory entries** in `{self.path}`\n")
            lines.append("| time (UTC) | tool | target | critical | warning | info | new | fixed | note |")
            lines.append("|---|---|---|---:|---:|---:|---:|---:|---|")
            for e in self.entries:
                c = e.counts
                new = sum(1 for d in e.findings if d.get("status") == "new") if not e.unchanged else 0
                lines.append(
                    f"| {e.time:%Y-%m-%d %H:%M:%S} | {table_cell(e.tool)} | {table_cell(e.target)} | {c.get('critical', 0)} "
                    f"| {c.get('warning', 0)} | {c.get('info', 0)} | {new} | {len(e.fixed)} "
                    f"| {'re-checked, unchanged' if e.unchanged else ''} |"
                )
        for w in self.warnings:
            lines.append(f"\n> warning: {w}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def to_frame(self) -> Any:
        """One row per finding per entry; columns and dtypes as in :data:`MEMORY_COLUMNS`."""
        import pandas as pd

        rows = []
        for e in self.entries:
            for d in e.findings:
                rows.append(
                    {
                        "time": e.time,
                        "tool": e.tool,
                        "target": e.target,
                        "unchanged": e.unchanged,
                        "code": d.get("code", ""),
                        "kind": d.get("kind", ""),
                        "severity": d.get("severity", ""),
                        "path": d.get("path", ""),
                        "line": _int(d.get("line")),
                        "symbol": d.get("symbol", ""),
                        "status": d.get("status", ""),
                        "first_seen": d.get("first_seen", ""),
                        "fingerprint": d.get("fingerprint", ""),
                    }
                )
        frame = pd.DataFrame(rows, columns=list(MEMORY_COLUMNS))
        for col, dtype in MEMORY_COLUMNS.items():
            if dtype.startswith("datetime"):
                frame[col] = pd.to_datetime(frame[col], utc=True)
            else:
                frame[col] = frame[col].astype(dtype)
        return frame


@magics_class
class AsyncMemoryMagics(Magics):
    """``%async_memory``: read the memory file."""

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--target", metavar="T", help="Only entries whose target contains T.")
    @magic_arguments.argument("--kind", metavar="K", help="Only entries with a finding of kind K (or code prefix, e.g. AEX1).")
    @magic_arguments.argument("--since", metavar="DATE", help="Only entries at or after DATE (YYYY-MM-DD or ISO time, UTC).")
    @magic_arguments.argument("--stats", action="store_true", help="Show recurring patterns per kind instead of the entries.")
    @magic_arguments.argument("--path", "--memory", dest="path", metavar="P", help="The memory file to read (default: the one the scans write).")
    @line_magic
    def async_memory(self, line: str = "") -> MemoryListing:
        """Show past analyses recorded in the memory file, or recurring patterns (--stats).

        Every %async_scan and %%loop_profile run appends an entry to the memory file
        (.claude/sub_agents_memory.md under the project root by default); this shows
        them, newest last, with new / seen-before / fixed counts.
        """
        from ..config import load_pyproject
        from ..memory import filter_entries, parse_since, pattern_stats, read_memory

        try:
            try:
                args = magic_arguments.parse_argstring(self.async_memory, line)
            except (ValueError, SyntaxError) as exc:
                raise errors.UsageError(f"cannot parse the arguments of %async_memory: {exc}") from None
            for name in ("target", "kind", "since", "path"):  # IPython keeps the quotes of "a b"
                value = getattr(args, name)
                if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    setattr(args, name, value[1:-1])
            since = parse_since(args.since) if args.since else None
            path_arg = args.path
            if path_arg is not None and not path_arg.strip():
                raise errors.UsageError("--path is empty: give the memory file to read")
            path, entries, warnings = read_memory(path_arg, settings=load_pyproject(os.getcwd()))
            if path is None:
                raise errors.UsageError("the memory file is turned off (empty memory_file); pass --path P")
        except errors.AsyncExpertError as exc:
            raise UsageError(" ".join(str(exc).split())) from None
        shown = filter_entries(entries, target=args.target, kind=args.kind, since=since)
        return MemoryListing(path=path, entries=shown, stats=pattern_stats(shown) if args.stats else None, warnings=warnings)


MAGICS = [AsyncMemoryMagics]
