"""Static HTML rendering (``text/html``): readable without a kernel or widgets.

One self-contained ``<div>`` (inline ``<style>``, plots as PNG data URIs, the
pyinstrument profile in an ``<iframe srcdoc>``), so nbconvert's HTML export,
GitHub's notebook viewer and VS Code show the whole report. No JavaScript:
each finding's details (code excerpt, why, fix, before/after, references,
call chain) sit in a ``<details>`` element.
"""
from __future__ import annotations

from html import escape
from typing import Any

from ..model import Finding, LoopReport, ScanReport
from .sections import (
    build_sections,
    counts_by_kind,
    counts_by_severity,
    excerpt,
    finding_badges,
    findings_of,
    is_loop_report,
    memory_status,
)

__all__ = ["SEVERITY_COLORS", "STYLE", "finding_detail", "iframe", "profile_html", "render", "render_loop", "render_scan", "summary_html"]

#: Text colour per severity; frame.py and widget.py use the same palette.
SEVERITY_COLORS = {"critical": "#b00020", "warning": "#b26a00", "info": "#1565c0"}
#: Background tint per severity (table rows, badges).
SEVERITY_BACKGROUNDS = {"critical": "#fde7e9", "warning": "#fff4e0", "info": "#e8f1fb"}

STYLE = """
<style>
.aex-report{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:13px;line-height:1.4;max-width:1100px}
.aex-report h3{margin:.4em 0}.aex-report h4{margin:.8em 0 .3em 0;border-bottom:1px solid #ddd}
.aex-report table{border-collapse:collapse;margin:.3em 0}
.aex-report th,.aex-report td{border:1px solid #ddd;padding:2px 6px;text-align:left !important;vertical-align:top}
.aex-report pre,.aex-report code,.aex-report details,.aex-report summary,.aex-report p,.aex-report li{text-align:left !important}
.aex-report tbody tr:nth-child(odd){background:transparent}
.aex-report th{background:#f5f5f5}
.aex-report pre{background:#f7f7f7;padding:6px;margin:.3em 0;overflow-x:auto;font-size:12px}
.aex-report .sev{font-weight:bold;padding:0 4px;border-radius:3px}
.aex-report .sev-critical{color:#b00020;background:#fde7e9}.aex-report .sev-warning{color:#b26a00;background:#fff4e0}
.aex-report .sev-info{color:#1565c0;background:#e8f1fb}
.aex-report .hit{background:#ffe08a;font-weight:bold}
.aex-report .badge{display:inline-block;border-radius:3px;padding:0 4px;margin-right:4px;font-size:11px}
.aex-report .badge-confirmed{background:#c8e6c9;color:#1b5e20}.aex-report .badge-seen{background:#e1bee7;color:#4a148c}
.aex-report .badge-other{background:#eceff1;color:#37474f}
.aex-report details>summary{cursor:pointer}
.aex-report img{max-width:100%}
</style>
"""


def _sev(severity: str) -> str:
    return f"<span class='sev sev-{escape(severity)}'>{escape(severity)}</span>" if severity else ""


def _inline(text: str) -> str:
    """Escape, then turn `backticks` into <code>."""
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _code(code: str) -> str:
    return f"<pre><code>{escape(code)}</code></pre>"


def _badges(f: Finding, status: str = "") -> str:
    out = []
    for label, detail in finding_badges(f, status):
        cls = "badge-confirmed" if label.startswith("confirmed") else "badge-seen" if label == "seen before" else "badge-other"
        out.append(f"<span class='badge {cls}' title='{escape(detail)}'>{escape(label)}{': ' + escape(detail) if detail else ''}</span>")
    return "".join(out)


def finding_detail(f: Finding, sources: dict[str, str] | None = None, memory_status: str = "") -> str:
    """The detail block of one finding (HTML fragment): badges, code excerpt with
    the offending line highlighted, why it hurts, the fix with before/after code,
    references and call chain. Used by the static report and the widget."""
    parts = [f"<div class='aex-detail'><p>{_sev(f.severity.value)} <code>{escape(f.code)}</code> "
             f"<b>{escape(f.kind)}</b> at <code>{escape(f.location)}</code>"
             f"{' in <code>' + escape(f.symbol) + '</code>' if f.symbol else ''} {_badges(f, memory_status)}</p>",
             f"<p>{_inline(f.message)}</p>"]
    lines = excerpt(sources, f)
    if lines:
        width = len(str(lines[-1][0]))
        body = "\n".join(
            (f"<span class='hit'>{n:>{width}} &gt; {escape(t)}</span>" if hit else f"{n:>{width}}   {escape(t)}")
            for n, t, hit in lines
        )
        parts.append(f"<pre class='aex-excerpt'><code>{body}</code></pre>")
    if f.explanation:
        parts.append(f"<p><b>Why it hurts:</b> {_inline(f.explanation)}</p>")
    if f.fix:
        parts.append(f"<p class='aex-fix'><b>Fix:</b> {_inline(f.fix)}</p>")
    if f.fix_example:
        parts.append(_code(f.fix_example))
    if f.call_chain:
        parts.append("<p><b>Call chain:</b></p><ol>" + "".join(f"<li><code>{escape(s)}</code></li>" for s in f.call_chain) + "</ol>")
    if f.references:
        parts.append("<p><b>References:</b> " + " ".join(
            f"<a href='{escape(r)}' target='_blank' rel='noopener'>{escape(r)}</a>" for r in f.references) + "</p>")
    measures = {k: v for k, v in (f.extra or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if measures:
        parts.append("<p><b>Measured:</b> " + ", ".join(f"{escape(str(k))}={v:g}" for k, v in measures.items()) + "</p>")
    parts.append("</div>")
    return "".join(parts)


def summary_html(report: Any, findings: list[Finding] | None = None, memory: Any = None) -> str:
    """Counts by severity and kind, then the five parts (HTML fragment, no <style>)."""
    findings = findings_of(report) if findings is None else findings
    c = counts_by_severity(findings)
    kinds = counts_by_kind(findings)
    out = [
        "<p>" + " ".join(f"{_sev(s)} {n}" for s, n in c.items()) + "</p>",
    ]
    if kinds:
        rows = "".join(
            f"<tr><td>{escape(k)}</td>" + "".join(f"<td>{v[s] or ''}</td>" for s in ("critical", "warning", "info")) + f"<td>{sum(v.values())}</td></tr>"
            for k, v in kinds
        )
        out.append("<table class='aex-kinds'><thead><tr><th>kind</th><th>critical</th><th>warning</th><th>info</th><th>total</th></tr></thead>"
                   f"<tbody>{rows}</tbody></table>")
    for n, (title, items) in enumerate(build_sections(report, memory=memory), 1):
        out.append(f"<h4>{n}. {escape(title)}</h4><ul>")
        for item in items:
            body = f"{_sev(item.severity)} {_inline(item.text)}" if item.severity else _inline(item.text)
            if item.details:
                body += "<br><small>" + "<br>".join(_inline(d) for d in item.details) + "</small>"
            if item.code:
                body += _code(item.code)
            out.append(f"<li>{body}</li>")
        out.append("</ul>")
    return "".join(out)


def _findings_html(findings: list[Finding], sources: dict[str, str], max_findings: int, max_details: int, memory: Any = None) -> str:
    if not findings:
        return "<p>No async problems found.</p>"
    rows = []
    for i, f in enumerate(findings[:max_findings]):
        msg = _inline(f.message)
        if i < max_details:
            msg = f"<details><summary>{msg}</summary>{finding_detail(f, sources, memory_status(memory, f))}</details>"
        rows.append(
            f"<tr><td>{_sev(f.severity.value)}</td><td><code>{escape(f.location)}</code></td>"
            f"<td><code>{escape(f.code)}</code> {escape(f.kind)}</td><td>{msg}</td></tr>"
        )
    more = ""
    if len(findings) > max_findings:
        more = (f"<p>... and {len(findings) - max_findings} more findings (run the report in a kernel for the "
                "filterable table, or use <code>.to_frame()</code>).</p>")
    return ("<table class='aex-findings'><thead><tr><th>severity</th><th>location</th><th>rule</th><th>message</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{more}")


def profile_html(report: Any) -> str | None:
    """The pyinstrument HTML page of ``report.profile`` (a Session), or None."""
    session = getattr(report, "profile", None)
    if session is None:
        return None
    if isinstance(session, str):
        return session
    try:
        from pyinstrument.renderers import HTMLRenderer

        return HTMLRenderer().render(session)
    except Exception:  # a broken profile must not break the report
        return None


def iframe(html_page: str, height: int = 520) -> str:
    """``<iframe srcdoc=...>`` embedding a whole HTML page (the profile), as
    pyinstrument's own IPython magic does (``pyinstrument/magic/magic.py``): its
    page keeps view settings in ``localStorage``, which a sandboxed iframe forbids."""
    return (f"<iframe srcdoc=\"{escape(html_page, quote=True)}\" "
            f"style='width:100%;height:{height}px;border:1px solid #ddd;resize:vertical'></iframe>")


def _loop_html(report: LoopReport, *, plots: bool, profile: bool, max_rows: int) -> str:
    out = []
    if plots and (report.lag_records or report.blocking_records):
        from .plots import cached_png, to_data_uri

        out.append(f"<h4>Loop lag</h4><img alt='loop lag over time' src='{to_data_uri(cached_png(report, 'lag'))}'>")
    if report.blocking_records:
        rows = []
        for i, b in enumerate(report.blocking_records[:max_rows], 1):
            stack = "\n".join(str(s) for s in (b.get("stack") or ()))
            rows.append(
                f"<tr><td>#{i}</td><td>{float(b.get('start_s') or 0):.3f}</td><td>{float(b.get('duration_ms') or 0):.0f}</td>"
                f"<td><code>{escape(str(b.get('location', '')))}</code></td><td><code>{escape(str(b.get('snippet', '')))}</code></td>"
                f"<td><details><summary>{escape(str(b.get('function', '')) or 'stack')}</summary><pre>{escape(stack)}</pre></details></td></tr>"
            )
        out.append("<h4>Blocking events</h4><table class='aex-blocking'><thead><tr><th>#</th><th>start (s)</th><th>blocked (ms)</th>"
                   f"<th>line</th><th>code</th><th>stack</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    if report.task_records:
        if plots:
            from .plots import cached_png, to_data_uri

            out.append(f"<h4>Tasks ({len(report.task_records)})</h4><img alt='task timeline' src='{to_data_uri(cached_png(report, 'timeline'))}'>")
        order = {"failed": 0, "pending": 1, "cancelled": 2}
        tasks = sorted(report.task_records, key=lambda t: (order.get(str(t.get("state")), 3), float(t.get("start_s") or 0)))
        rows = []
        for t in tasks[:max_rows]:
            dur = t.get("duration_ms")
            rows.append(
                f"<tr><td>{escape(str(t.get('state', '')))}</td><td>{escape(str(t.get('name', '')))}</td><td><code>{escape(str(t.get('coro', '')))}</code></td>"
                f"<td><code>{escape(str(t.get('created_at', '')))}</code></td><td>{float(t.get('start_s') or 0):.3f}</td>"
                f"<td>{'' if dur is None else f'{float(dur):.1f}'}</td><td>{escape(str(t.get('exception') or ''))}</td></tr>"
            )
        more = f"<p>... and {len(tasks) - max_rows} more tasks (see <code>.tasks</code>).</p>" if len(tasks) > max_rows else ""
        out.append("<table class='aex-tasks'><thead><tr><th>state</th><th>name</th><th>coroutine</th><th>created at</th>"
                   f"<th>start (s)</th><th>duration (ms)</th><th>exception</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{more}")
    for title, records, columns, key in (
        ("Lock and queue waits", report.lock_records,
         (("primitive", "primitive"), ("name", "created at"), ("task", "waiting task"), ("location", "waited at"),
          ("wait_ms", "wait (ms)"), ("hold_ms", "then held (ms)"), ("holder", "held by")), "wait_ms"),
        ("Slow callbacks", report.callback_records,
         (("start_s", "start (s)"), ("duration_ms", "ran (ms)"), ("callback", "callback"), ("location", "suspended at")), "duration_ms"),
        ("Logs", report.log_records,
         (("t_s", "t (s)"), ("source", "source"), ("level", "level"), ("message", "message"), ("location", "location")), None),
    ):
        if records:
            out.append(_records_html(title, records, columns, key, max_rows))
    if profile:
        page = profile_html(report)
        if page:
            out.append(f"<h4>Profile</h4><details><summary>pyinstrument profile</summary>{iframe(page)}</details>")
    for note in report.notes:
        out.append(f"<p>note: {escape(note)}</p>")
    return "".join(out)


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("-inf")
    return float("-inf") if out != out else out


def _records_html(title: str, records: list[dict[str, Any]], columns: tuple[tuple[str, str], ...], key: str | None, max_rows: int) -> str:
    rows = sorted(records, key=lambda r: -_num(r.get(key))) if key else list(records)
    head = "".join(f"<th>{escape(h)}</th>" for _c, h in columns)

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return ""
        return f"{v:.3f}" if isinstance(v, float) and abs(v) < 100 else f"{v:.0f}" if isinstance(v, float) else escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c, _h in columns) + "</tr>" for r in rows[:max_rows])
    more = f"<p>... and {len(rows) - max_rows} more.</p>" if len(rows) > max_rows else ""
    return f"<h4>{escape(title)} ({len(rows)})</h4><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def render(
    report: Any,
    *,
    max_findings: int = 500,
    max_details: int = 200,
    plots: bool = True,
    profile: bool = True,
    max_rows: int = 200,
    memory: Any = None,
) -> str:
    """The whole report as one static HTML fragment.

    Args:
        report: a ScanReport or LoopReport.
        max_findings: rows in the findings table (the rest are counted).
        max_details: findings that get an expandable detail block.
        plots: embed the loop lag and task timeline plots (PNG data URIs).
        profile: embed the pyinstrument profile page (loop reports).
        max_rows: rows in the tasks and blocking tables.
        memory: the memory file's ``Recall`` for "seen before"/"new" badges (optional).

    Returns:
        An HTML ``<div class="aex-report">`` with its own ``<style>``.
    """
    findings = findings_of(report)
    loop = is_loop_report(report)
    if loop:
        s = report.summary()
        title = (f"async-expert loop profile of <code>{escape(report.target or 'cell')}</code>: {report.seconds:.3f} s, "
                 f"{s['tasks']} task(s), {s['blocking_events']} blocking event(s), max lag {s['max_lag_ms']:.0f} ms")
    else:
        title = (f"async-expert scan of <code>{escape(report.target or 'source')}</code>: "
                 f"{report.scanned_text()} in {report.seconds * 1000:.0f} ms")
    sources = getattr(report, "sources", {}) or {}
    parts = [STYLE, "<div class='aex-report'>", f"<h3>{title}</h3>", summary_html(report, findings, memory),
             "<h4>Findings</h4>", _findings_html(findings, sources, max_findings, max_details, memory)]
    if loop:
        parts.append(_loop_html(report, plots=plots, profile=profile, max_rows=max_rows))
    if report.errors:
        parts.append("<ul>" + "".join(f"<li>note: {escape(e)}</li>" for e in report.errors) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def render_scan(report: ScanReport, *, max_findings: int = 500) -> str:
    """Static HTML for a scan (see :func:`render`)."""
    return render(report, max_findings=max_findings)


def render_loop(report: LoopReport, **options: Any) -> str:
    """Static HTML for a loop profile (see :func:`render`)."""
    return render(report, **options)
