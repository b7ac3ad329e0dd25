"""The :class:`Instrument` base class: no-op hooks called by a profiling session.

Modelled on ``trio.abc.Instrument`` (https://github.com/python-trio/trio,
``trio/_abc.py``): every hook is a no-op, an instrument overrides the ones it
needs, and an instrument whose hook raises is switched off and reported in
``LoopReport.errors`` instead of breaking the code being profiled.

Hook order for one session (all on the event loop thread unless noted)::

    install(session)                 before the profiled code runs
    started(session)                 once every instrument is installed: the profiled code starts now
    task_created(session, task, rec) for every task made by the loop's task factory
    task_done(session, task, rec)    when such a task finishes (done callback)
    exception_handler(session, ctx)  for every loop.call_exception_handler(ctx), any loop, any thread
    uninstall(session)               always, even after a crash of the instrument; restore here
    finish(session, report)          add rows and findings to the LoopReport

``uninstall`` must undo everything ``install`` changed and be safe to call when
``install`` failed half-way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    from ..model import LoopReport
    from .session import ProfileSession

__all__ = ["Instrument"]


class Instrument:
    """Base class of the runtime instruments (see the module docstring for hook order).

    Attributes:
        name: a short name used in error notes and ``--instruments`` style options.
        enabled: False once a hook raised; the session stops calling hooks
            (``uninstall`` is still called so that state is restored).
    """

    name = "instrument"

    def __init__(self) -> None:
        self.enabled = True

    def install(self, session: ProfileSession) -> None:
        """Patch what the instrument needs; called on the loop thread."""

    def started(self, session: ProfileSession) -> None:
        """Every instrument is installed; what runs from now on is the profiled code
        (time spent installing the others is not the user's)."""

    def task_created(self, session: ProfileSession, task: asyncio.Task, record: dict[str, Any]) -> None:
        """A task was created by the loop's task factory; ``record`` is its
        :data:`~async_expert_ext.model.TASK_COLUMNS` row (mutable)."""

    def task_done(self, session: ProfileSession, task: asyncio.Task, record: dict[str, Any]) -> None:
        """A tracked task finished (done, failed or cancelled)."""

    def exception_handler(self, session: ProfileSession, context: dict[str, Any]) -> None:
        """``loop.call_exception_handler(context)`` was called (may be another thread)."""

    def uninstall(self, session: ProfileSession) -> None:
        """Undo :meth:`install`. Must not raise; must be idempotent."""

    def finish(self, session: ProfileSession, report: LoopReport) -> None:
        """Add rows to ``report`` and runtime findings via ``session.add_finding``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} enabled={self.enabled}>"
