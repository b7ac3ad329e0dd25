"""One :class:`Settings` object for every entry point.

Precedence: command-line / magic flags > ``%config AsyncExpert.<option>``
(traitlets, see :mod:`async_expert_ext.magics`) > ``[tool.async_expert]`` in the
nearest ``pyproject.toml`` > the defaults below.

``[tool.async_expert]`` keys::

    [tool.async_expert]
    select = ["AEX1", "never-awaited"]      # codes, code prefixes or kinds; empty = all
    ignore = ["async-without-await"]
    extra_blocking = ["mylib.fetch_sync"]   # extra calls that block the loop
    severity = "info"                      # minimum severity shown
    exclude = ["tests/fixtures/*"]
    memory_file = ".claude/sub_agents_memory.md"

    [tool.async_expert.rule_severity]
    AEX130 = "warning"                     # per-rule severity override (code or kind)
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .model import Severity

__all__ = ["Settings", "load_pyproject", "find_project_root"]


@dataclass
class Settings:
    """Scanner settings.

    Attributes:
        select: codes, code prefixes or kinds to report (empty: all).
        ignore: codes, code prefixes or kinds never to report.
        extra_blocking: dotted names of extra calls that block the loop.
        min_severity: the lowest severity reported.
        rule_severity: per-rule (code or kind) severity overrides.
        exclude: glob patterns of paths to skip in folder scans.
        cache: use the on-disk cache of per-file results.
        jobs: worker processes for big trees (0: automatic, 1: none).
        memory_file: the memory file path (None: default location, "": off).
    """

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    extra_blocking: tuple[str, ...] = ()
    min_severity: Severity = Severity.INFO
    rule_severity: dict[str, Severity] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    cache: bool = True
    jobs: int = 0
    memory_file: str | None = None

    def merged(self, **overrides: Any) -> Settings:
        """A copy with the non-None ``overrides`` applied (lists become tuples,
        severities are parsed).

        Raises:
            ConfigError: for an unknown option or an invalid severity.
        """
        changes: dict[str, Any] = {}
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in names:
                raise ConfigError(f"unknown async_expert option {key!r}")
            changes[key] = _coerce(key, value)
        return dataclasses.replace(self, **changes)

    def signature(self) -> str:
        """A string that changes whenever a setting that affects per-file results does."""
        sev = ",".join(f"{k}={v.value}" for k, v in sorted(self.rule_severity.items()))
        return "|".join((",".join(sorted(self.extra_blocking)), sev))


def _coerce(key: str, value: Any) -> Any:
    try:
        if key in ("select", "ignore", "extra_blocking", "exclude"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            return tuple(str(v) for v in value)
        if key == "min_severity":
            return Severity.parse(value)
        if key == "rule_severity":
            return {str(k): Severity.parse(v) for k, v in dict(value).items()}
        if key == "cache":
            return bool(value)
        if key == "jobs":
            return int(value)
        if key == "memory_file":
            return None if value is None else str(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid value for {key}: {exc}") from None
    return value


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder upward from ``start`` (default: the working directory)
    holding ``pyproject.toml`` or ``.git``; ``start`` itself when there is none."""
    here = Path(start or os.getcwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return here


def _toml_load(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def load_pyproject(start: str | os.PathLike[str] | None = None, base: Settings | None = None) -> Settings:
    """Settings from ``[tool.async_expert]`` of the nearest ``pyproject.toml``
    upward from ``start``, applied over ``base`` (default: the defaults).

    Raises:
        ConfigError: when the table holds an unknown key or an invalid value,
            or the file is not valid TOML.
    """
    base = base or Settings()
    here = Path(start or os.getcwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = _toml_load(candidate)
            except Exception as exc:  # tomllib.TOMLDecodeError, OSError
                raise ConfigError(f"{candidate}: {exc}") from None
            table = data.get("tool", {}).get("async_expert")
            if table is None:
                return base
            return _apply_table(base, table, candidate)
    return base


_KEYMAP = {
    "select": "select",
    "ignore": "ignore",
    "extra_blocking": "extra_blocking",
    "extra-blocking": "extra_blocking",
    "severity": "min_severity",
    "min_severity": "min_severity",
    "rule_severity": "rule_severity",
    "rule-severity": "rule_severity",
    "exclude": "exclude",
    "cache": "cache",
    "jobs": "jobs",
    "memory_file": "memory_file",
    "memory-file": "memory_file",
}


def _apply_table(base: Settings, table: Mapping[str, Any], where: Path) -> Settings:
    overrides: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYMAP:
            raise ConfigError(f"{where}: unknown [tool.async_expert] key {key!r}")
        overrides[_KEYMAP[key]] = value
    return base.merged(**overrides)
