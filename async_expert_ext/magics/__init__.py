"""IPython glue: ``%load_ext async_expert_ext`` registers every magic here.

One module per magic family, each defining a ``Magics`` subclass and listed in
:data:`MAGIC_MODULES`; only this package imports IPython. Configuration through
``%config AsyncExpert.<option>`` is the :class:`~async_expert_ext.magics.options.AsyncExpert`
traitlets class.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension", "MAGIC_MODULES"]

#: modules that define a ``MAGICS`` list of Magics classes, and optionally
#: ``install(ip)`` / ``uninstall(ip)`` for hooks and input transformers.
MAGIC_MODULES = (
    "async_expert_ext.magics.scan",
    "async_expert_ext.magics.profile",
    "async_expert_ext.magics.memory",
    "async_expert_ext.magics.load",
)


def _modules() -> list[Any]:
    out = []
    for name in MAGIC_MODULES:
        try:
            out.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a missing family
                raise
    return out


def load_ipython_extension(ip: Any) -> None:
    """Register the configurable, the magics, and any hooks the families need."""
    from .options import AsyncExpert

    config = AsyncExpert.instance(parent=ip) if not AsyncExpert.initialized() else AsyncExpert.instance()
    if config not in getattr(ip, "configurables", []):
        ip.configurables.append(config)
    for mod in _modules():
        for cls in getattr(mod, "MAGICS", ()):
            ip.register_magics(cls(ip))
        install = getattr(mod, "install", None)
        if install is not None:
            install(ip)


def unload_ipython_extension(ip: Any) -> None:
    """Undo :func:`load_ipython_extension`'s hooks (magics stay until re-registered)."""
    for mod in _modules():
        uninstall = getattr(mod, "uninstall", None)
        if uninstall is not None:
            uninstall(ip)
