"""The interactive report view (ipywidgets 8), one for ScanReport and LoopReport.

Tabs:

- **Summary**: counts by severity and kind, then the five parts.
- **Findings**: a paginated table (50 rows a page) filterable by severity, kind,
  file and free text, sortable by any column; selecting a row fills the detail
  pane (code excerpt with the line highlighted, why it hurts, fix with
  before/after code, references, call chain, confirmed-at-runtime and
  seen-before notes).
- **Tasks** (loop reports): a paginated table filterable by end state, and the
  task timeline (Gantt) coloured by end state with blocking events marked.
- **Loop lag** (loop reports): lag over time with the threshold and the blocking
  events; selecting an event shows its line and stack.
- **Profile** (when the report has one): the pyinstrument HTML page in an
  ``<iframe srcdoc>``.

Only visible work is done: a page of rows, and plots drawn when their tab is
first opened, so 5,000 findings or 10,000 tasks open in well under a second
(``bench/render_scale.py``). Only this module imports ipywidgets.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from typing import Any

from ..model import Finding, Severity
from . import html as _html
from .sections import findings_of, is_loop_report, memory_status

__all__ = ["PAGE_SIZE", "ReportView", "report_widget"]

#: Rows per page in the findings and tasks tables.
PAGE_SIZE = 50

_ALL = "(all)"
_NBSP = "\u00a0"
_WIDGET_CSS = """
<style>
.aex-table select{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace !important;font-size:12px !important}
.aex-table-head{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;font-weight:bold;
  white-space:pre;padding-left:6px;background:#f5f5f5;border:1px solid #ddd}
.aex-detail-pane{border:1px solid #ddd;padding:4px 8px;min-height:60px;max-height:520px;overflow:auto}
</style>
"""

# column name -> (header, width in characters)
_COLUMNS = (("severity", "severity", 9), ("code", "code", 8), ("kind", "kind", 26), ("location", "location", 26), ("message", "message", 0))
_SORTS: dict[str, Callable[[Finding], Any]] = {
    "severity": lambda f: (-f.severity.rank, f.path, f.line),
    "kind": lambda f: (f.kind, -f.severity.rank, f.path, f.line),
    "file": lambda f: (f.path, f.line, -f.severity.rank),
    "line": lambda f: (f.line, f.path),
    "code": lambda f: (f.code, f.path, f.line),
    "message": lambda f: (f.message.lower(), f.path, f.line),
}


_LOCK_COLUMNS = (
    ("primitive", "primitive"), ("name", "created at"), ("task", "waiting task"), ("location", "waited at"),
    ("start_s", "start (s)"), ("wait_ms", "wait (ms)"), ("hold_ms", "then held (ms)"), ("holder", "held by"),
)
_CALLBACK_COLUMNS = (("start_s", "start (s)"), ("duration_ms", "ran (ms)"), ("callback", "callback"), ("task", "task"), ("location", "suspended at"))
_LOG_COLUMNS = (("t_s", "t (s)"), ("source", "source"), ("level", "level"), ("logger", "logger"), ("message", "message"), ("location", "location"))


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return -math.inf
    return -math.inf if math.isnan(out) else out


def _cell_html(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return f"<code>{escape(str(value))}</code>" if ":" in str(value) and len(str(value)) < 80 else escape(str(value))


def _cell(text: str, width: int) -> str:
    if width <= 0:
        return text if len(text) <= 120 else text[:119] + "…"
    if len(text) > width - 1:
        text = text[: width - 2] + "…"
    return text.ljust(width)


def _row_label(f: Finding) -> str:
    values = {"severity": f.severity.value, "code": f.code, "kind": f.kind, "location": f.location, "message": f.message}
    text = "".join(_cell(values[name], width) for name, _h, width in _COLUMNS)
    return text.replace(" ", _NBSP)


def _header_text() -> str:
    return "".join(_cell(h, width) for _n, h, width in _COLUMNS)


def _page_label(page: int, pages: int, rows: int, total: int) -> str:
    return f"page {page + 1} / {max(pages, 1)} · {rows} of {total} row(s)"


class ReportView:
    """The widget view of a report; ``.widget`` is what gets displayed.

    Args:
        report: a ScanReport or LoopReport.
        page_size: rows per page in the tables (default :data:`PAGE_SIZE`).
        memory: the memory file's ``Recall`` (``status_of(finding)``) for the
            "seen before"/"new" notes; optional.

    Attributes:
        widget: the top-level ``ipywidgets.VBox``.
        tabs: the ``ipywidgets.Tab``; ``tab_titles`` lists its titles in order.
        severity, kind, file, search: the findings filters (ToggleButtons,
            Dropdown, Dropdown, Text).
        sort_by, descending: the findings sort controls.
        table: the findings ``Select``; its value is an index into ``rows``.
        rows: the filtered, sorted findings (all pages).
        detail: the ``HTML`` detail pane of the selected finding.
    """

    def __init__(self, report: Any, *, page_size: int = PAGE_SIZE, memory: Any = None) -> None:
        import ipywidgets as W  # type: ignore[import-untyped]

        self._W = W
        self.report = report
        self.memory = memory
        self.page_size = page_size
        self.findings: list[Finding] = findings_of(report)
        self.sources: dict[str, str] = getattr(report, "sources", {}) or {}
        self.loop = is_loop_report(report)
        self.page = 0
        self.rows: list[Finding] = list(self.findings)
        self._lazy: dict[int, Callable[[], None]] = {}

        children: list[Any] = []
        titles: list[str] = []

        self.summary = W.HTML(_html.summary_html(report, self.findings, memory))
        children.append(self.summary)
        titles.append("Summary")

        children.append(self._build_findings())
        titles.append(f"Findings ({len(self.findings)})")

        if self.loop:
            children.append(self._build_tasks(len(children)))
            titles.append(f"Tasks ({len(report.task_records)})")
            children.append(self._build_lag(len(children)))
            titles.append(f"Loop lag ({len(report.blocking_records)} blocks)")
            if report.lock_records:
                children.append(self._records_tab(report.lock_records, _LOCK_COLUMNS, sort_by="wait_ms", name="locks"))
                titles.append(f"Locks ({len(report.lock_records)})")
            if report.callback_records or report.log_records:
                children.append(
                    self._W.VBox(
                        [
                            self._W.HTML("<b>Slow callbacks</b> (handles that ran longer than the threshold)"),
                            self._records_tab(report.callback_records, _CALLBACK_COLUMNS, sort_by="duration_ms", name="callbacks"),
                            self._W.HTML("<b>Logs</b> (asyncio logger, exception handler, warnings: shown in no cell otherwise)"),
                            self._records_tab(report.log_records, _LOG_COLUMNS, sort_by=None, name="logs"),
                        ]
                    )
                )
                titles.append(f"Callbacks & logs ({len(report.callback_records)}/{len(report.log_records)})")
            if getattr(report, "profile", None) is not None:
                children.append(self._build_profile(len(children)))
                titles.append("Profile")

        self.tab_titles = titles
        self.tabs = W.Tab(children=children, titles=titles)
        self.tabs.observe(self._on_tab, names="selected_index")
        c = {s.value: 0 for s in Severity}
        for f in self.findings:
            c[f.severity.value] += 1
        head = _html.escape(getattr(report, "target", "") or "")
        kind = "loop profile" if self.loop else "scan"
        self.header = W.HTML(
            _WIDGET_CSS + _html.STYLE
            + f"<div class='aex-report'><b>async-expert {kind}</b> of <code>{head}</code>: "
            + " ".join(f"<span class='sev sev-{s}'>{s}</span> {n}" for s, n in c.items())
            + "</div>"
        )
        self.widget = W.VBox([self.header, self.tabs])
        self.widget.add_class("aex-report-view")
        self._refresh_findings()

    # -- findings -----------------------------------------------------------
    def _build_findings(self) -> Any:
        W = self._W
        kinds = sorted({f.kind for f in self.findings})
        files = sorted({f.path for f in self.findings})
        self.severity = W.ToggleButtons(options=[_ALL, "critical", "warning", "info"], value=_ALL, description="severity")
        self.severity.style.button_width = "80px"
        self.kind = W.Dropdown(options=[_ALL, *kinds], value=_ALL, description="kind")
        self.file = W.Dropdown(options=[_ALL, *files], value=_ALL, description="file")
        self.search = W.Text(value="", placeholder="text in message, code, symbol, fix", description="search", continuous_update=True)
        self.sort_by = W.Dropdown(options=list(_SORTS), value="severity", description="sort by", layout=W.Layout(width="200px"))
        self.descending = W.ToggleButton(value=False, description="descending", icon="sort", layout=W.Layout(width="120px"))
        self.prev_button = W.Button(description="◀ prev", layout=W.Layout(width="80px"))
        self.next_button = W.Button(description="next ▶", layout=W.Layout(width="80px"))
        self.page_label = W.Label("")
        self.head = W.HTML(f"<div class='aex-table-head'>{escape(_header_text())}</div>", layout=W.Layout(width="100%"))
        self.table = W.Select(options=[], rows=15, layout=W.Layout(width="100%"))
        self.table.add_class("aex-table")
        self.detail = W.HTML("<i>Select a finding to see its code, why it hurts and the fix.</i>")
        self.detail.add_class("aex-detail-pane")
        for w in (self.severity, self.kind, self.file, self.search, self.sort_by, self.descending):
            w.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _b: self._turn(-1))
        self.next_button.on_click(lambda _b: self._turn(+1))
        self.table.observe(self._on_select, names="value")
        return W.VBox(
            [
                self.severity,
                W.HBox([self.kind, self.file]),
                W.HBox([self.search, self.sort_by, self.descending]),
                W.HBox([self.prev_button, self.next_button, self.page_label]),
                self.head,
                self.table,
                self.detail,
            ]
        )

    def _filtered(self) -> list[Finding]:
        sev, kind, path = self.severity.value, self.kind.value, self.file.value
        needle = self.search.value.strip().lower()
        out = []
        for f in self.findings:
            if sev != _ALL and f.severity.value != sev:
                continue
            if kind != _ALL and f.kind != kind:
                continue
            if path != _ALL and f.path != path:
                continue
            if needle and needle not in f"{f.message}\n{f.code}\n{f.kind}\n{f.symbol}\n{f.fix}\n{f.location}".lower():
                continue
            out.append(f)
        out.sort(key=_SORTS[self.sort_by.value], reverse=bool(self.descending.value))
        return out

    def _on_filter(self, _change: Any = None) -> None:
        self.rows = self._filtered()
        self.page = 0
        self._refresh_findings()

    def _turn(self, step: int) -> None:
        pages = max(1, math.ceil(len(self.rows) / self.page_size))
        new = min(max(0, self.page + step), pages - 1)
        if new != self.page:
            self.page = new
            self._refresh_findings()

    def _refresh_findings(self) -> None:
        start = self.page * self.page_size
        page_rows = self.rows[start : start + self.page_size]
        self.table.index = None
        self.table.options = [(_row_label(f), start + i) for i, f in enumerate(page_rows)]
        self.table.rows = max(2, min(15, len(page_rows)))
        pages = math.ceil(len(self.rows) / self.page_size)
        self.page_label.value = _page_label(self.page, pages, len(self.rows), len(self.findings))
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        if not page_rows:
            self.detail.value = "<i>No finding matches these filters.</i>" if self.findings else "<i>No async problems found.</i>"

    def _on_select(self, change: Any) -> None:
        idx = change["new"]
        if idx is None or idx >= len(self.rows):
            return
        self.detail.value = _html.STYLE + "<div class='aex-report'>" + _html.finding_detail(self.rows[idx], self.sources, memory_status(self.memory, self.rows[idx])) + "</div>"

    def select(self, position: int) -> Finding:
        """Select the row at ``position`` on the current page (0-based) and return its finding."""
        value = self.table.options[position][1]
        self.table.value = value
        return self.rows[value]

    def visible_rows(self) -> list[Finding]:
        """The findings on the current page, in table order."""
        return [self.rows[v] for _label, v in self.table.options]

    # -- loop tabs ---------------------------------------------------------
    def _on_tab(self, change: Any) -> None:
        build = self._lazy.pop(change["new"], None)
        if build is not None:
            build()

    def render_all(self) -> None:
        """Draw every lazily drawn tab now (plots), as opening each tab would."""
        for index in list(self._lazy):
            self._lazy.pop(index)()

    def _build_tasks(self, index: int) -> Any:
        W = self._W
        states = sorted({str(t.get("state") or "") for t in self.report.task_records})
        self.task_state = W.ToggleButtons(options=[_ALL, *states], value=_ALL, description="state")
        self.task_sort = W.Dropdown(options=["start", "duration", "state", "name"], value="start", description="sort by")
        self.task_prev = W.Button(description="◀ prev", layout=W.Layout(width="80px"))
        self.task_next = W.Button(description="next ▶", layout=W.Layout(width="80px"))
        self.task_label = W.Label("")
        self.task_table = W.HTML()
        self.timeline = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.timeline.add_class("aex-timeline")
        self.timeline_note = W.HTML("<i>drawing the task timeline…</i>")
        self.task_page = 0
        self.task_state.observe(self._on_task_filter, names="value")
        self.task_sort.observe(self._on_task_filter, names="value")
        self.task_prev.on_click(lambda _b: self._task_turn(-1))
        self.task_next.on_click(lambda _b: self._task_turn(+1))
        self._on_task_filter()

        def draw() -> None:
            from .plots import cached_png

            self.timeline.value = cached_png(self.report, "timeline")
            self.timeline_note.value = ""

        self._lazy[index] = draw
        return W.VBox(
            [self.timeline_note, self.timeline, W.HBox([self.task_state, self.task_sort]),
             W.HBox([self.task_prev, self.task_next, self.task_label]), self.task_table]
        )

    def _on_task_filter(self, _change: Any = None) -> None:
        state = self.task_state.value
        rows = [t for t in self.report.task_records if state == _ALL or str(t.get("state")) == state]
        key = self.task_sort.value
        if key == "start":
            rows.sort(key=lambda t: float(t.get("start_s") or 0))
        elif key == "duration":
            rows.sort(key=lambda t: -float(t.get("duration_ms") or math.inf))
        elif key == "state":
            rows.sort(key=lambda t: (str(t.get("state")), float(t.get("start_s") or 0)))
        else:
            rows.sort(key=lambda t: str(t.get("name")))
        self.task_rows = rows
        self.task_page = 0
        self._refresh_tasks()

    def _task_turn(self, step: int) -> None:
        pages = max(1, math.ceil(len(self.task_rows) / self.page_size))
        new = min(max(0, self.task_page + step), pages - 1)
        if new != self.task_page:
            self.task_page = new
            self._refresh_tasks()

    def _refresh_tasks(self) -> None:
        from .plots import STATE_COLORS

        start = self.task_page * self.page_size
        page = self.task_rows[start : start + self.page_size]
        body = []
        for t in page:
            state = str(t.get("state") or "")
            dur = t.get("duration_ms")
            dur_text = "" if dur is None or (isinstance(dur, float) and math.isnan(dur)) else f"{float(dur):.1f}"
            stack = "<br>".join(escape(str(s)) for s in (t.get("await_stack") or ()))
            body.append(
                f"<tr><td style='color:{STATE_COLORS.get(state, '#000')};font-weight:bold'>{escape(state)}</td>"
                f"<td>{escape(str(t.get('name', '')))}</td><td><code>{escape(str(t.get('coro', '')))}</code></td>"
                f"<td><code>{escape(str(t.get('created_at', '')))}</code></td><td>{float(t.get('start_s') or 0):.3f}</td>"
                f"<td>{dur_text}</td><td>{escape(str(t.get('exception') or ''))}</td><td><small>{stack}</small></td></tr>"
            )
        self.task_table.value = (
            _html.STYLE + "<div class='aex-report'><table class='aex-tasks'><thead><tr><th>state</th><th>name</th><th>coroutine</th>"
            "<th>created at</th><th>start (s)</th><th>duration (ms)</th><th>exception</th><th>await stack</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
        pages = math.ceil(len(self.task_rows) / self.page_size)
        self.task_label.value = _page_label(self.task_page, pages, len(self.task_rows), len(self.report.task_records))
        self.task_prev.disabled = self.task_page == 0
        self.task_next.disabled = self.task_page >= pages - 1

    def _build_lag(self, index: int) -> Any:
        W = self._W
        blocks = self.report.blocking_records
        self.lag_image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.lag_image.add_class("aex-lag-image")
        self.lag_note = W.HTML("<i>drawing the loop lag…</i>")
        self.blocks = W.Select(
            options=[
                (f"#{i} at {float(b.get('start_s') or 0):.3f} s, {float(b.get('duration_ms') or 0):.0f} ms, "
                 f"{b.get('location', '?')}: {b.get('snippet', '')}", i - 1)
                for i, b in enumerate(blocks, 1)
            ],
            rows=max(2, min(8, len(blocks))),
            layout=W.Layout(width="100%"),
            description="blocking",
        )
        self.blocks.index = None  # nothing selected until the user picks an event
        self.blocks.add_class("aex-blocks")
        self.block_detail = W.HTML("<i>Select a blocking event to see its line and stack.</i>" if blocks else "<i>No blocking events.</i>")
        self.block_detail.add_class("aex-detail-pane")
        self.blocks.observe(self._on_block, names="value")

        def draw() -> None:
            from .plots import cached_png

            self.lag_image.value = cached_png(self.report, "lag")
            self.lag_note.value = ""

        self._lazy[index] = draw
        return W.VBox([self.lag_note, self.lag_image, self.blocks, self.block_detail])

    def _on_block(self, change: Any) -> None:
        i = change["new"]
        if i is None:
            return
        b = self.report.blocking_records[i]
        stack = "\n".join(escape(str(s)) for s in (b.get("stack") or ()))
        src = (self.sources or {}).get(str(b.get("path", "")))
        excerpt = ""
        if src and b.get("line"):
            f = Finding(code="", kind="blocking-call-in-async", severity=Severity.CRITICAL, message="", path=str(b["path"]), line=int(b["line"]))
            from .sections import excerpt as _ex

            excerpt = "".join(
                f"<span class='hit'>{n} &gt; {escape(t)}</span>\n" if hit else f"{n}   {escape(t)}\n" for n, t, hit in _ex(self.sources, f)
            )
        self.block_detail.value = (
            _html.STYLE + "<div class='aex-report'>"
            f"<p><b>#{i + 1}</b>: the loop was blocked <b>{float(b.get('duration_ms') or 0):.0f} ms</b> from "
            f"{float(b.get('start_s') or 0):.3f} s at <code>{escape(str(b.get('location', '')))}</code>"
            f"{' in <code>' + escape(str(b.get('function'))) + '</code>' if b.get('function') else ''}"
            f"{' (task ' + escape(str(b.get('task'))) + ')' if b.get('task') else ''}.</p>"
            f"<pre><code>{excerpt or escape(str(b.get('snippet', '')))}</code></pre>"
            f"<p><b>Stack</b> ({b.get('samples', '?')} samples, line on {float(b.get('share') or 0) * 100:.0f}% of them):</p>"
            f"<pre>{stack}</pre></div>"
        )

    def _records_tab(self, records: list[dict[str, Any]], columns: tuple[tuple[str, str], ...], *, sort_by: str | None, name: str) -> Any:
        """A paginated HTML table of runtime records (worst first when ``sort_by`` names a number column)."""
        W = self._W
        rows = list(records)
        if sort_by:
            rows.sort(key=lambda r: -_float(r.get(sort_by)))
        state = {"page": 0}
        table = W.HTML()
        table.add_class(f"aex-{name}")
        label = W.Label("")
        prev_b = W.Button(description="◀ prev", layout=W.Layout(width="80px"))
        next_b = W.Button(description="next ▶", layout=W.Layout(width="80px"))

        def refresh() -> None:
            start = state["page"] * self.page_size
            page = rows[start : start + self.page_size]
            head = "".join(f"<th>{escape(h)}</th>" for _c, h in columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{_cell_html(r.get(c))}</td>" for c, _h in columns) + "</tr>" for r in page
            )
            table.value = (_html.STYLE + f"<div class='aex-report'><table class='aex-{name}-table'><thead><tr>{head}</tr></thead>"
                           f"<tbody>{body}</tbody></table></div>") if rows else "<i>none</i>"
            pages = math.ceil(len(rows) / self.page_size)
            label.value = _page_label(state["page"], pages, len(page), len(rows))
            prev_b.disabled = state["page"] == 0
            next_b.disabled = state["page"] >= pages - 1

        def turn(step: int) -> None:
            pages = max(1, math.ceil(len(rows) / self.page_size))
            state["page"] = min(max(0, state["page"] + step), pages - 1)
            refresh()

        prev_b.on_click(lambda _b: turn(-1))
        next_b.on_click(lambda _b: turn(+1))
        refresh()
        return W.VBox([W.HBox([prev_b, next_b, label]), table])

    def _build_profile(self, index: int) -> Any:
        W = self._W
        box = W.HTML("<i>rendering the profile…</i>", layout=W.Layout(width="100%"))

        def draw() -> None:
            page = _html.profile_html(self.report)
            box.value = _html.iframe(page, height=600) if page else "<i>No profile in this report.</i>"

        self._lazy[index] = draw
        return box


def report_widget(report: Any, *, page_size: int = PAGE_SIZE, memory: Any = None) -> Any:
    """The displayable ipywidgets view of ``report`` (see :class:`ReportView`)."""
    return ReportView(report, page_size=page_size, memory=memory).widget
