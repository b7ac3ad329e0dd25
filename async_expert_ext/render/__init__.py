"""Renderers: one module per output.

- :mod:`.text`: ``text/plain`` (terminals, the CLI);
- :mod:`.html`: static ``text/html`` (nbconvert, GitHub, VS Code; no kernel needed);
- :mod:`.markdown`: markdown (the memory file), when present;
- :mod:`.frame`: pandas DataFrames with documented columns and styled views;
- :mod:`.widget`: the interactive ipywidgets view;
- :mod:`.plots`: matplotlib task timeline and loop lag;
- :mod:`.sections`: the five report parts as data, shared by all of them;
- :mod:`.progress`: a progress bar callable for long scans.

Only ``frame`` imports pandas and only ``widget`` imports ipywidgets (both lazily).
"""
from __future__ import annotations

from typing import Any

__all__ = ["display_report", "last_view", "mime_bundle"]

_LAST_VIEW: Any = None

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where a widget manager may exist)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the magics
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def mime_bundle(report: Any, *, widget: bool | None = None, memory: Any = None) -> tuple[dict[str, Any], Any]:
    """The display data of a report: ``text/plain``, ``text/html`` and, in a kernel,
    the widget view.

    Args:
        report: a ScanReport or LoopReport.
        widget: add the widget view; ``None`` means "when running in a kernel
            with ipywidgets installed".
        memory: the memory file's ``Recall`` (``status_of(finding)``), so findings
            show "seen before" / "new"; optional.

    Returns:
        ``(bundle, view)``: the mime bundle dict, and the
        :class:`~async_expert_ext.render.widget.ReportView` (``None`` without widget).
    """
    from . import html, text

    bundle: dict[str, Any] = {"text/plain": text.render(report, memory=memory), "text/html": html.render(report, memory=memory)}
    view = None
    if widget is None:
        widget = _in_kernel()
    if widget:
        try:
            from .widget import ReportView
        except ImportError:  # ipywidgets missing: the static fallbacks are the report
            return bundle, None
        view = ReportView(report, memory=memory)
        data = view.widget._repr_mimebundle_()
        if data and WIDGET_MIME in data:
            bundle[WIDGET_MIME] = data[WIDGET_MIME]
    return bundle, view


def display_report(report: Any, *, widget: bool | None = None, memory: Any = None) -> None:
    """Display a report as ONE mime bundle: the widget view, ``text/html`` and ``text/plain``.

    A frontend with a widget manager (JupyterLab, Notebook 7, VS Code) shows the
    interactive view; nbconvert, GitHub's viewer and frontends without a widget
    manager show the static HTML; terminal IPython shows the text. The view is
    kept (see :func:`last_view`) so its callbacks stay alive.

    Args:
        report: a ScanReport or LoopReport.
        widget: force (True) or suppress (False) the widget view; default: in a kernel.
        memory: the memory file's ``Recall`` (what ``memory.record_quietly`` returns),
            so findings show "seen before (first DATE)" / "new"; optional.
    """
    global _LAST_VIEW
    from IPython.display import display

    bundle, view = mime_bundle(report, widget=widget, memory=memory)
    if view is not None:
        _LAST_VIEW = view
    display(bundle, raw=True)


def last_view() -> Any:
    """The :class:`~async_expert_ext.render.widget.ReportView` shown last, or None."""
    return _LAST_VIEW
