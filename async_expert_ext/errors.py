"""The exception tree of async-expert-ext.

::

    AsyncExpertError            base of everything this package raises on purpose
    ├── UsageError              bad input from a user: unknown flag, missing path, unknown name
    │   └── TargetNotFound      a scan target (path, module, name) that does not exist
    ├── ConfigError             an invalid ``[tool.async_expert]`` table or ``%config`` value
    └── ScanError               a file could not be read (reported as a note, never raised to users)

In the magics, :class:`UsageError` is re-raised as IPython's own ``UsageError`` so that
the user sees one line and no traceback; the CLI exits with status 2.
"""
from __future__ import annotations

__all__ = ["AsyncExpertError", "UsageError", "TargetNotFound", "ConfigError", "ScanError"]


class AsyncExpertError(Exception):
    """Base class of the errors raised by async-expert-ext."""


class UsageError(AsyncExpertError):
    """Bad user input; the message is one line meant for the user."""


class TargetNotFound(UsageError):
    """The scan target (path, dotted module or namespace name) does not exist."""


class ConfigError(AsyncExpertError):
    """An invalid configuration value (pyproject.toml or ``%config``)."""


class ScanError(AsyncExpertError):
    """A file could not be scanned; carried as a note in ``ScanReport.errors``."""
