"""Runtime instruments for a running asyncio event loop.

``async with profile() as report: ...`` or ``report = await profile(main())`` runs
code on the current loop with the instruments of :mod:`.detectors` installed and
returns a :class:`~async_expert_ext.model.LoopReport`. The instruments never use
``loop.set_debug(True)``, never start a nested loop, and restore everything on exit.
Only the standard library is imported (pyinstrument lazily, for the profile).
"""
from __future__ import annotations

from .instrument import Instrument
from .session import Profile, ProfileSession, profile

__all__ = ["profile", "Profile", "ProfileSession", "Instrument"]
