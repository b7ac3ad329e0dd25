"""Render times at scale: 5,000 findings and 10,000 tasks (target: under 2 s each).

Run: ``python bench/render_scale.py``. Prints wall times in milliseconds (best
of ``--repeat`` runs) for each renderer and each interaction of the widget view,
and the ratio to the 2 s budget. No assertions: the numbers go in the report.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

BUDGET_S = 2.0


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--findings", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import ipywidgets  # noqa: F401
    import matplotlib  # noqa: F401  (import costs are not render costs)
    import pandas  # noqa: F401

    from async_expert_ext.render import _samples, frame, html, mime_bundle, text
    from async_expert_ext.render.widget import ReportView

    rows: list[tuple[str, float]] = []

    def measure(label: str, fn: Callable[[], Any]) -> None:
        rows.append((label, _best(fn, args.repeat)))

    scan = _samples.scan_report(args.findings)
    n = f"{args.findings} findings"
    measure(f"{n}: text/plain", lambda: text.render(scan))
    measure(f"{n}: text/html (static)", lambda: html.render(scan))
    measure(f"{n}: styled frame (first 500 rows)", lambda: frame.render(scan))
    measure(f"{n}: widget view (build)", lambda: ReportView(scan))
    measure(f"{n}: display bundle (widget+html+text)", lambda: mime_bundle(scan, widget=True))
    view = ReportView(scan)
    measure(f"{n}: filter severity=critical", lambda: (setattr(view.severity, "value", "critical"), setattr(view.severity, "value", "(all)")))
    measure(f"{n}: text search", lambda: (setattr(view.search, "value", "requests"), setattr(view.search, "value", "")))
    measure(f"{n}: sort by file, descending", lambda: (setattr(view.descending, "value", True), setattr(view.descending, "value", False)))
    measure(f"{n}: next page", lambda: (view._turn(1), view._turn(-1)))
    measure(f"{n}: select a row (detail pane)", lambda: (view.select(7), view.select(8)))

    from async_expert_ext.render import plots

    loop = _samples.loop_report(args.tasks, blocks=5)
    m = f"{args.tasks} tasks"

    def cold(fn: Callable[[], Any]) -> Callable[[], Any]:
        # plots are drawn once per report and shared by HTML and widget: time them cold
        return lambda: (plots._PNG_CACHE.clear(), fn())

    measure(f"{m}: text/plain", lambda: text.render(loop))
    measure(f"{m}: text/html (static, 2 plots)", cold(lambda: html.render(loop)))
    measure(f"{m}: widget view (build)", cold(lambda: ReportView(loop)))
    measure(f"{m}: display bundle (widget+html+text)", cold(lambda: mime_bundle(loop, widget=True)))

    @cold
    def open_tabs() -> None:
        v = ReportView(loop)
        v.tabs.selected_index = 2  # tasks: table + timeline
        v.tabs.selected_index = 3  # loop lag plot

    measure(f"{m}: widget view + open Tasks and Loop lag tabs", open_tabs)
    measure(f"{m}: display bundle, then open both plot tabs", cold(lambda: (mime_bundle(loop, widget=True)[1].render_all())))
    lv = ReportView(loop)
    measure(f"{m}: filter tasks by state", lambda: (setattr(lv.task_state, "value", "failed"), setattr(lv.task_state, "value", "(all)")))

    width = max(len(label) for label, _ in rows)
    print(f"{'what':<{width}}  {'ms':>8}  {'/ 2 s budget':>12}")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds * 1000:8.1f}  {seconds / BUDGET_S:12.3f}")


if __name__ == "__main__":
    main()
