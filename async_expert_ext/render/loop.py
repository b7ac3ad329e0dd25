"""Text and static HTML views of a :class:`~async_expert_ext.model.LoopReport`.

Pure functions of the report (no pandas, no IPython): used by
``LoopReport._repr_mimebundle_`` and the CLI's text format.
"""
from __future__ import annotations

from html import escape
from typing import Any

from ..model import LoopReport

__all__ = ["render_html", "render_text"]

_COLORS = {"critical": "#b00020", "warning": "#b26a00", "info": "#1565c0"}


def _headline(report: LoopReport) -> str:
    s = report.summary()
    states = ", ".join(f"{n} {k}" for k, n in sorted(s["tasks_by_state"].items())) or "none"
    parts = [
        f"async-expert loop profile of {report.target or 'code'}: {report.seconds:.3f} s",
        f"{s['blocking_events']} blocking event(s), {s['blocked_ms'] / 1000:.2f} s blocked"
        + (f" (worst {s['worst_block_ms']:.0f} ms at {s['worst_block_at']})" if s["blocking_events"] else ""),
        f"max loop lag {s['max_lag_ms']:.0f} ms",
        f"{s['tasks']} task(s): {states}",
    ]
    return "; ".join(parts)


def render_text(report: LoopReport, *, max_rows: int = 20) -> str:
    """A plain-text report: headline, findings (critical first), blocking events,
    pending tasks with await stacks, captured log records, notes and instrument errors."""
    c = report.counts()
    lines = [_headline(report), f"findings: {c['critical']} critical, {c['warning']} warning, {c['info']} info"]
    if report.exception:
        lines.append(f"the profiled code raised {report.exception}" + (" (timeout)" if report.timed_out else ""))
    for f in report.finding_list[:max_rows]:
        tag = "confirmed" if f.extra.get("confirmed") else f.source
        lines.append(f"{f.severity.value.upper():8} {f.location} [{f.code} {f.kind}, {tag}] {f.message}")
        if f.fix:
            lines.append(f"         fix: {f.fix}")
    if len(report.finding_list) > max_rows:
        lines.append(f"... and {len(report.finding_list) - max_rows} more findings (see .findings)")
    if report.blocking_records:
        lines.append("blocking events (ms):")
        worst = sorted(report.blocking_records, key=lambda r: -(r.get("duration_ms") or 0))[:max_rows]
        for b in worst:
            lines.append(
                f"  {b.get('duration_ms', 0):8.1f} ms at {b.get('location') or '?'}  {b.get('snippet', '')}"
                + (f"  [{b.get('task')}]" if b.get("task") else "")
            )
    pending = [t for t in report.task_records if t.get("state") == "pending" and t.get("await_stack")]
    if pending:
        lines.append("tasks pending at the end:")
        for t in pending[:max_rows]:
            lines.append(f"  {t.get('name')} ({t.get('coro')}) created at {t.get('created_at') or '?'}")
            for step in t.get("await_stack", ())[:8]:
                lines.append(f"      {step}")
    if report.log_records:
        lines.append(f"captured log records ({len(report.log_records)}):")
        for r in report.log_records[:max_rows]:
            lines.append(f"  {r.get('level', '')} {r.get('source', '')}: {r.get('message', '')}")
    for n in report.notes:
        lines.append(f"note: {n}")
    for e in report.errors:
        lines.append(f"instrument error: {e}")
    return "\n".join(lines)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: LoopReport, *, max_rows: int = 200) -> str:
    """Static HTML (no scripts): headline, findings table, blocking table, pending
    tasks, logs, notes. Readable without a kernel or widgets."""
    parts = [f"<div class='async-expert-loop-report'><p><b>{escape(_headline(report))}</b></p>"]
    if report.exception:
        parts.append(f"<p>The profiled code raised <code>{escape(report.exception)}</code>.</p>")
    if report.finding_list:
        rows = []
        for f in report.finding_list[:max_rows]:
            color = _COLORS[f.severity.value]
            tag = "confirmed" if f.extra.get("confirmed") else f.source
            rows.append(
                [
                    f"<span style='color:{color};font-weight:bold'>{escape(f.severity.value)}</span>",
                    f"<code>{escape(f.location)}</code>",
                    f"<code>{escape(f.code)}</code> {escape(f.kind)}",
                    escape(tag),
                    escape(f.message),
                    escape(f.fix),
                ]
            )
        parts.append(_table(["severity", "location", "rule", "evidence", "message", "fix"], rows))
    else:
        parts.append("<p>No async problems observed.</p>")
    if report.blocking_records:
        rows = [
            [
                f"{b.get('duration_ms', 0):.1f}",
                f"<code>{escape(str(b.get('location') or '?'))}</code>",
                f"<code>{escape(str(b.get('snippet', '')))}</code>",
                escape(str(b.get("task", ""))),
                "<details><summary>stack</summary><pre>" + escape("\n".join(b.get("stack", ()))) + "</pre></details>",
            ]
            for b in sorted(report.blocking_records, key=lambda r: -(r.get("duration_ms") or 0))[:max_rows]
        ]
        parts.append("<p><b>Blocking events</b></p>" + _table(["ms", "location", "line", "task", "stack"], rows))
    pending = [t for t in report.task_records if t.get("state") == "pending"]
    if pending:
        rows = [
            [
                escape(str(t.get("name"))),
                escape(str(t.get("coro"))),
                f"<code>{escape(str(t.get('created_at') or '?'))}</code>",
                "<pre>" + escape("\n".join(t.get("await_stack", ()))) + "</pre>",
            ]
            for t in pending[:max_rows]
        ]
        parts.append("<p><b>Tasks pending at the end</b></p>" + _table(["task", "coroutine", "created at", "await stack"], rows))
    if report.log_records:
        rows = [[escape(str(r.get("level"))), escape(str(r.get("source"))), escape(str(r.get("message")))] for r in report.log_records[:max_rows]]
        parts.append("<p><b>Captured log records</b></p>" + _table(["level", "source", "message"], rows))
    notes = [escape(n) for n in report.notes] + [f"instrument error: {escape(e)}" for e in report.errors]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>")
    parts.append("</div>")
    return "".join(parts)
