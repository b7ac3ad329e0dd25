"""A progress bar for long scans: ``progress(done, total)`` callables.

:func:`~async_expert_ext.scan.runner.scan_units` (and ``scan_paths``) call
``progress(done, total)`` after each file. :func:`make_progress` returns such a
callable that shows a ``tqdm.auto`` bar (an ipywidgets bar in a notebook, text in
a terminal) once the scan has more than ``min_files`` files, and closes it when
``done == total``. It only draws: a KeyboardInterrupt raised in the scan loop
passes through untouched, so the magic stays interruptible.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MIN_FILES", "make_progress"]

#: Scans of more files than this get a bar ("more than a few dozen").
MIN_FILES = 36


class _Progress:
    def __init__(self, min_files: int, desc: str, factory: Callable[..., Any] | None) -> None:
        self.min_files = min_files
        self.desc = desc
        self.factory = factory
        self.bar: Any = None
        self.done = 0
        self.disabled = False

    def __call__(self, done: int, total: int) -> None:
        if self.disabled or total <= self.min_files:
            return
        if self.bar is None:
            try:
                factory: Any = self.factory
                if factory is None:
                    from tqdm.auto import tqdm  # type: ignore[import-untyped]

                    factory = tqdm
                self.bar = factory(total=total, desc=self.desc, unit="file", leave=False)
            except Exception:  # no tqdm / no widgets: scanning matters more than the bar
                self.disabled = True
                return
        step = done - self.done
        if step > 0:
            self.bar.update(step)
            self.done = done
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            try:
                self.bar.close()
            finally:
                self.bar = None


def make_progress(*, min_files: int = MIN_FILES, desc: str = "async-expert scan", factory: Callable[..., Any] | None = None) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callable for ``scan_paths``/``scan_units``.

    Args:
        min_files: no bar for scans of at most this many files (default 36).
        desc: the bar's label.
        factory: a tqdm-compatible class (``total``, ``desc``, ``unit``, ``leave``
            keywords; ``update(n)``, ``close()``); default ``tqdm.auto.tqdm``.

    Returns:
        A callable; it also has ``close()`` to remove the bar early (e.g. after an error).
    """
    return _Progress(min_files, desc, factory)
