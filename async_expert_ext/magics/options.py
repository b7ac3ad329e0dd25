"""``%config AsyncExpert.<option>``: the traitlets configurable shared by every magic.

Values set here sit between the flags of a magic (which win) and the project's
``[tool.async_expert]`` table (see :mod:`async_expert_ext.config`).
"""
from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, List, Unicode
from traitlets.config import SingletonConfigurable

from ..config import Settings, load_pyproject

__all__ = ["AsyncExpert", "current_settings"]


class AsyncExpert(SingletonConfigurable):
    """Options of async-expert-ext, e.g. ``%config AsyncExpert.ignore = ['AEX105']``."""

    select = List(Unicode(), default_value=None, allow_none=True, help="Codes, code prefixes or kinds to report (empty: all).").tag(config=True)
    ignore = List(Unicode(), default_value=None, allow_none=True, help="Codes, code prefixes or kinds never to report.").tag(config=True)
    extra_blocking = List(Unicode(), default_value=None, allow_none=True, help="Dotted names of extra calls that block the loop, e.g. 'mylib.fetch_sync'.").tag(config=True)
    severity = Unicode(None, allow_none=True, help="Lowest severity shown: critical, warning or info.").tag(config=True)
    rule_severity = Dict(default_value=None, allow_none=True, help="Per-rule severity overrides: {'AEX105': 'warning'}.").tag(config=True)
    memory_file = Unicode(None, allow_none=True, help="Memory file path ('' turns the memory file off; default: .claude/sub_agents_memory.md under the project root).").tag(config=True)
    threshold_ms = Float(50.0, help="%%loop_profile: a loop stall longer than this (milliseconds) is a blocking event.").tag(config=True)
    interval_ms = Float(10.0, help="%%loop_profile: heartbeat interval (milliseconds).").tag(config=True)
    profile = Bool(True, help="%%loop_profile: record a pyinstrument profile.").tag(config=True)
    widgets = Bool(True, help="Show reports as ipywidgets when a widget frontend is available.").tag(config=True)


def current_settings(start: str | None = None, **flags: Any) -> Settings:
    """Settings for one magic run: flags > %config > pyproject > defaults.

    A ``%config`` list option left at None defers to pyproject; set to ``[]`` it
    clears pyproject's list (``%config AsyncExpert.ignore = []`` ignores nothing).

    Raises:
        async_expert_ext.errors.ConfigError: for invalid values.
    """
    base = load_pyproject(start)
    cfg = AsyncExpert.instance() if AsyncExpert.initialized() else None
    if cfg is not None:
        # None means "not set here"; an explicit [] overrides pyproject's list
        base = base.merged(
            select=cfg.select,
            ignore=cfg.ignore,
            extra_blocking=cfg.extra_blocking,
            min_severity=cfg.severity or None,
            rule_severity=cfg.rule_severity or None,
            memory_file=cfg.memory_file,
        )
    return base.merged(**flags)
