"""matplotlib plots of a ``LoopReport``: the task timeline and the loop lag.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot,
no global state, no GUI backend), so they work in a kernel, a script or a
thread. :func:`to_data_uri` turns a figure into a ``data:image/png;base64,...``
URI that static HTML embeds, so exported notebooks keep the plots.

Both plots draw their marks as collections, so 10,000 tasks cost about the
same as 100 (measured in ``bench/render_scale.py``).
"""
from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from typing import Any

__all__ = ["STATE_COLORS", "cached_png", "lag_plot", "task_timeline", "to_data_uri", "to_png"]

#: Colour of a task's bar by its end state (see ``TASK_COLUMNS["state"]``).
STATE_COLORS: dict[str, str] = {
    "done": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#ef6c00",
    "pending": "#6a1b9a",
}
_BLOCK_COLOR = "#d32f2f"


def _num(value: Any, default: float = math.nan) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out


def _figure(width: float, height: float, *, left: float = 0.8) -> Any:
    """A figure with fixed margins in inches (constrained layout doubled the draw time)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(left=left / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - 0.35 / height)
    return fig


def task_timeline(report: Any, *, width: float = 9.0, max_height: float = 6.0) -> Any:
    """A Gantt chart of task lifetimes, coloured by end state, blocking events shaded.

    Tasks are sorted by start time, one row each; a pending task's bar runs to the
    end of the profile and is drawn lighter. Blocking events are red bands
    across all rows, labelled with their ``path:line``.

    Args:
        report: a ``LoopReport`` (reads ``task_records``, ``blocking_records``, ``seconds``).
        width: figure width in inches.
        max_height: figure height cap in inches.

    Returns:
        A :class:`matplotlib.figure.Figure` (x axis: seconds since the profile started).
    """
    import numpy as np
    from matplotlib.lines import Line2D

    tasks = sorted(report.task_records, key=lambda t: t.get("start_s") or 0.0)
    n = len(tasks)
    starts = np.array([_num(t.get("start_s"), 0.0) for t in tasks], dtype=float)
    ends = np.array([_num(t.get("end_s")) for t in tasks], dtype=float)
    states = np.array([str(t.get("state") or "done") for t in tasks], dtype=object)
    block_ends = [_num(b.get("start_s"), 0.0) + _num(b.get("duration_ms"), 0.0) / 1000 for b in report.blocking_records]
    finite = ends[~np.isnan(ends)]
    end_all = max([_num(report.seconds, 0.0), float(finite.max()) if finite.size else 0.0, *block_ends])
    ends = np.where(np.isnan(ends), end_all, ends)
    ends = np.maximum(ends, starts + end_all * 0.002)  # keep zero-length tasks visible
    height = min(max_height, 1.6 + 0.18 * min(n, 40))
    fig = _figure(width, height, left=1.5 if n <= 30 else 0.8)
    ax = fig.add_subplot()
    lw = max(0.5, min(8.0, 200.0 / max(n, 1)))
    present = []
    rows = np.arange(n, dtype=float)
    for state in sorted(set(states), key=lambda st: list(STATE_COLORS).index(st) if st in STATE_COLORS else 9):
        mask = states == state
        k = int(mask.sum())
        # one polyline per state, segments separated by NaN: one path instead of one per task
        xs = np.column_stack([starts[mask], ends[mask], np.full(k, np.nan)]).ravel()
        ys = np.column_stack([rows[mask], rows[mask], np.full(k, np.nan)]).ravel()
        ax.plot(xs, ys, color=STATE_COLORS.get(state, "#455a64"), lw=lw, alpha=0.85 if state != "pending" else 0.5, solid_capstyle="butt")
        present.append(state)
    for b in report.blocking_records:
        start = _num(b.get("start_s"), 0.0)
        dur = _num(b.get("duration_ms"), 0.0) / 1000
        ax.axvspan(start, start + dur, color=_BLOCK_COLOR, alpha=0.25, lw=0)
        ax.annotate(
            f"{b.get('location', '')} {_num(b.get('duration_ms'), 0):.0f} ms",
            xy=(start, 1.0), xycoords=("data", "axes fraction"), fontsize=7, color=_BLOCK_COLOR,
            rotation=90, va="top", ha="right",
        )
    ax.set_xlim(0, end_all * 1.02 if end_all else 1.0)
    ax.set_ylim(n - 0.5 if n else 1, -0.5)
    ax.set_xlabel("seconds since the profile started")
    ax.set_ylabel(f"tasks ({n}, by start)")
    if n <= 30:
        ax.set_yticks(range(n), [str(t.get("name", "")) for t in tasks], fontsize=7)
    handles = [Line2D([], [], color=c, lw=4, label=s) for s, c in STATE_COLORS.items() if s in present]
    if report.blocking_records:
        handles.append(Line2D([], [], color=_BLOCK_COLOR, lw=8, alpha=0.3, label="loop blocked"))
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.8)
    ax.set_title("Task timeline", fontsize=10)
    return fig


def lag_plot(report: Any, *, width: float = 9.0, height: float = 3.2) -> Any:
    """Loop lag over time, the blocking threshold as a dashed line, blocking events marked.

    Args:
        report: a ``LoopReport`` (reads ``lag_records``, ``blocking_records``,
            ``settings["threshold_ms"]``, default 50 ms).
        width, height: figure size in inches.

    Returns:
        A :class:`matplotlib.figure.Figure`: x in seconds since the profile started,
        y in milliseconds. Each blocking event is a red marker at its start and
        duration, numbered as in the report's blocking table (1-based).
    """
    threshold = _num((getattr(report, "settings", None) or {}).get("threshold_ms"), 50.0)
    fig = _figure(width, height)
    ax = fig.add_subplot()
    lag = sorted((_num(r.get("t_s"), 0.0), _num(r.get("lag_ms"), 0.0)) for r in report.lag_records)
    if lag:
        xs, ys = zip(*lag)
        ax.plot(xs, ys, color="#1565c0", lw=1, label="loop lag")
    ax.axhline(threshold, color="#757575", ls="--", lw=1, label=f"threshold {threshold:.0f} ms")
    for i, b in enumerate(report.blocking_records, 1):
        start = _num(b.get("start_s"), 0.0)
        dur = _num(b.get("duration_ms"), 0.0)
        ax.axvspan(start, start + dur / 1000, color=_BLOCK_COLOR, alpha=0.15, lw=0)
        ax.plot([start], [dur], marker="v", color=_BLOCK_COLOR, ms=7, ls="none", label="blocking event" if i == 1 else None)
        ax.annotate(f"#{i} {b.get('location', '')}", (start, dur), textcoords="offset points", xytext=(4, 4), fontsize=7, color=_BLOCK_COLOR)
    ax.set_xlabel("seconds since the profile started")
    ax.set_ylabel("lag (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    ax.set_title("Event loop lag", fontsize=10)
    return fig


def to_png(fig: Any) -> bytes:
    """The figure as PNG bytes (Agg canvas, 100 dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def to_data_uri(fig: Any) -> str:
    """``data:image/png;base64,...`` for an ``<img src=...>`` in static HTML (a
    Figure, or PNG bytes from :func:`cached_png`)."""
    png = fig if isinstance(fig, (bytes, bytearray)) else to_png(fig)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_PNG_CACHE: dict[tuple, bytes] = {}


def cached_png(report: Any, name: str) -> bytes:
    """The PNG of ``"timeline"`` (:func:`task_timeline`) or ``"lag"`` (:func:`lag_plot`)
    for ``report``, drawn once and shared by the static HTML and the widget view
    (the cache entry goes when the report is garbage-collected).

    Raises:
        KeyError: for another name.
    """
    builders: dict[str, Callable[..., Any]] = {"timeline": task_timeline, "lag": lag_plot}
    build = builders[name]
    key = (id(report), name, len(report.task_records), len(report.blocking_records), len(report.lag_records))
    png = _PNG_CACHE.get(key)
    if png is None:
        png = to_png(build(report))
        _PNG_CACHE[key] = png
        try:
            import weakref

            weakref.finalize(report, _PNG_CACHE.pop, key, None)
        except TypeError:  # not weak-referenceable: keep a small cache instead
            while len(_PNG_CACHE) > 16:
                _PNG_CACHE.pop(next(iter(_PNG_CACHE)))
    return png
