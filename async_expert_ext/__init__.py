"""async-expert-ext: an async doctor for Jupyter notebooks, scripts and CI.

Load it in a notebook with ``%load_ext async_expert_ext``; see README.md.
Heavy modules (IPython, pandas, ipywidgets) are imported only when used.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
    "scan_code",
    "Finding",
    "ScanReport",
    "Severity",
    "profile",
    "LoopReport",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext async_expert_ext``)."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove hooks and transformers installed by the extension (``%unload_ext``)."""
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)


def scan_code(target: Any, **settings: Any) -> Any:
    """Scan ``target`` statically, without running it: a path, a list of paths, or
    source text containing a newline (scanned as a notebook cell). Keyword arguments
    are :class:`~async_expert_ext.config.Settings` fields. Returns a :class:`ScanReport`.

    (It is not called ``scan`` because :mod:`async_expert_ext.scan` is the scanner package.)

    Raises:
        TargetNotFound: when a path does not exist.
        ConfigError: for an unknown or invalid setting.
    """
    from .config import Settings
    from .scan.runner import scan_paths, scan_source

    s = Settings().merged(**settings)
    if isinstance(target, str) and "\n" in target:
        return scan_source(target, settings=s)
    paths = [target] if isinstance(target, str) else list(target)
    return scan_paths(paths, s)


def profile(awaitable: Any = None, **options: Any) -> Any:
    """Profile code on the running event loop: ``async with profile() as report: ...``
    or ``report = await profile(main())``. See :func:`async_expert_ext.loop.profile`
    for the options (``threshold_ms``, ``interval_ms``, ``profile``, ``timeout_s`` ...).

    Raises:
        ValueError: for a non-positive threshold, interval or timeout.
    """
    from .loop import profile as _profile

    return _profile(awaitable, **options)


def __getattr__(name: str) -> Any:
    if name in ("Finding", "ScanReport", "Severity", "LoopReport"):
        from . import model

        return getattr(model, name)
    raise AttributeError(name)
