"""Scan files, folders, notebooks or modules for async bugs, without running them.

``async-expert scan PATH... [--format text|json|sarif] [--select ..] [--ignore ..]
[--severity MIN] [--exclude GLOB] [--extra-blocking NAME] [--exit-zero]
[--no-cache] [--jobs N] [--memory PATH] [--no-memory]``

Each PATH is a ``.py`` file, a folder (walked recursively; ``.venv``, ``build``
and hidden folders are skipped), a ``.ipynb`` notebook, or a dotted module name
(used when no such path exists and :func:`importlib.util.find_spec` finds it;
the module is never imported). All targets are scanned as one program, so a
blocking helper in one file is reported at its call site in another.

Settings come from the nearest ``pyproject.toml`` ``[tool.async_expert]`` table
(searched upward from the first target), overridden by the flags.

Exit status: 0 when nothing was reported, 1 when findings were reported (0 with
``--exit-zero``), 2 on a usage error (missing path, unknown module, bad flag or
bad configuration), with one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Sequence

from ..config import Settings, load_pyproject
from ..errors import TargetNotFound
from ..model import ScanReport, Severity

__all__ = ["configure", "run", "resolve_targets", "settings_from_args", "render", "record_memory"]

FORMATS = ("text", "json", "sarif")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _csv(value: str) -> list[str]:
    return [v for v in re.split(r"[,\s]+", value) if v]


class _ExtendCsv(argparse.Action):
    """``--select A,B --select C`` -> ``["A", "B", "C"]``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        current = list(getattr(namespace, self.dest, None) or [])
        current.extend(_csv(values))
        setattr(namespace, self.dest, current)


def _jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid job count {value!r}: give a whole number (0 = automatic)") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"invalid job count {value!r}: must be >= 0")
    return n


def _severity(value: str) -> str:
    try:
        return Severity.parse(value).value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``scan`` flags on ``parser`` (an argparse subparser)."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, folder, .ipynb notebook or dotted module name")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--select", action=_ExtendCsv, default=None, metavar="CODES", help="report only these codes, code prefixes or kinds (comma separated, repeatable)")
    parser.add_argument("--ignore", action=_ExtendCsv, default=None, metavar="CODES", help="never report these codes, code prefixes or kinds")
    parser.add_argument("--severity", type=_severity, default=None, metavar="MIN", help="lowest severity reported: info, warning or critical")
    parser.add_argument("--exclude", action=_ExtendCsv, default=None, metavar="GLOB", help="skip paths matching this glob in folder scans (repeatable)")
    parser.add_argument("--extra-blocking", dest="extra_blocking", action=_ExtendCsv, default=None, metavar="NAME", help="a dotted call that blocks the event loop, e.g. mylib.fetch_sync (repeatable)")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are reported")
    parser.add_argument("--no-cache", dest="no_cache", action="store_true", help="ignore and do not write the on-disk result cache")
    parser.add_argument("--jobs", "-j", type=_jobs, default=None, metavar="N", help="worker processes for big trees (0 = automatic, 1 = none)")
    parser.add_argument("--memory", default=None, metavar="PATH", help="append the findings to this memory file")
    parser.add_argument("--no-memory", dest="no_memory", action="store_true", help="do not write the memory file")


def resolve_targets(paths: Sequence[str]) -> list[str]:
    """File-system paths for the command-line targets: existing paths as given,
    dotted module names through :func:`importlib.util.find_spec` (not imported).

    Raises:
        TargetNotFound: for a target that is neither a path nor a findable module.
    """
    from ..scan.sources import find_module_path

    out: list[str] = []
    for raw in paths:
        if os.path.lexists(raw):
            if not os.path.exists(raw):
                raise TargetNotFound(f"{raw}: dangling symbolic link")
            out.append(raw)
            continue
        if _DOTTED.match(raw) and not raw.endswith((".py", ".ipynb")):
            try:
                out.append(find_module_path(raw))
            except TargetNotFound:
                raise TargetNotFound(f"no such file, folder or module: {raw}") from None
            continue
        raise TargetNotFound(f"no such file or folder: {raw}")
    return out


def settings_from_args(args: argparse.Namespace, start: str | None = None) -> Settings:
    """The pyproject ``[tool.async_expert]`` settings (nearest upward from
    ``start``) with the command-line flags applied over them.

    Raises:
        ConfigError: for an invalid pyproject table.
    """
    from ..scan.registry import check_selectors

    check_selectors("--select", args.select)
    check_selectors("--ignore", args.ignore)
    base = load_pyproject(start)
    overrides: dict[str, Any] = {
        "select": args.select,
        "ignore": args.ignore,
        "min_severity": args.severity,
        "jobs": args.jobs,
    }
    if args.exclude:
        overrides["exclude"] = (*base.exclude, *args.exclude)
    if args.extra_blocking:
        overrides["extra_blocking"] = (*base.extra_blocking, *args.extra_blocking)
    if args.no_cache:
        overrides["cache"] = False
    if args.no_memory:
        overrides["memory_file"] = ""
    elif args.memory is not None:
        overrides["memory_file"] = args.memory
    return base.merged(**overrides)


def render(report: ScanReport, fmt: str) -> str:
    """The report as ``text``, ``json`` (one object) or ``sarif`` (SARIF 2.1.0)."""
    if fmt == "json":
        from ..render.json import render_scan as render_json

        return render_json(report)
    if fmt == "sarif":
        from ..render.sarif import render_scan as render_sarif

        return json.dumps(render_sarif(report), indent=2)
    from ..render.text import render_scan as render_text

    return render_text(report)


def record_memory(report: ScanReport, settings: Settings) -> str | None:
    """Memory-file hook: record the scan with :func:`async_expert_ext.memory.record_analysis`
    unless memory is turned off (``--no-memory`` or ``memory_file = ""``).

    Returns the line(s) to show: where the entry was written with the new /
    seen-before / fixed counts (``RecallResult.summary()``), or why it was not
    written. Never raises: the scan result matters more than the memory file."""
    if settings.memory_file == "":
        return None
    try:
        from .. import memory  # type: ignore[attr-defined]
    except ImportError:
        return None
    fn = getattr(memory, "record_analysis", None)
    if fn is None:
        return None
    import inspect
    import warnings

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    offered: dict[str, Any] = {"tool": "async-expert scan", "target": report.target, "settings": settings}
    kwargs: dict[str, Any] = {k: v for k, v in offered.items() if k in params}
    if settings.memory_file and "path" in params:
        kwargs["path"] = settings.memory_file
    quiet = getattr(memory, "MemoryWarning", None)
    try:
        with warnings.catch_warnings():
            if quiet is not None:
                warnings.simplefilter("ignore", quiet)  # shown below, one line each
            result = fn(report, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a broken memory file must not fail the scan
        return f"memory file not updated: {exc}"
    summary = getattr(result, "summary", None)
    if summary is None:
        return None
    lines = [summary()]
    lines.extend(f"warning: {w}" for w in getattr(result, "warnings", []) if "not written" not in w)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``async-expert scan``; returns the exit status (0, 1; usage errors raise).

    Raises:
        TargetNotFound: a path or module that does not exist (exit 2 in the CLI).
        ConfigError: an invalid ``[tool.async_expert]`` table (exit 2).
    """
    from ..scan.runner import scan_paths

    targets = resolve_targets(args.paths)
    settings = settings_from_args(args, start=targets[0] if targets else None)
    report = scan_paths(targets, settings, jobs=settings.jobs)
    report.target = " ".join(args.paths)
    out = render(report, args.format)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    sys.stdout.flush()
    note = record_memory(report, settings)
    if note and note.startswith("memory:") and not note.startswith("memory: not written") and args.format == "text":
        print(note)  # part of the text report: where the memory entry went
    elif note:
        print(f"async-expert: {note}", file=sys.stderr)
    if report.findings and not args.exit_zero:
        return 1
    return 0
