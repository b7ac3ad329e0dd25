"""Static HTML rendering (``text/html``): readable without a kernel or widgets."""
from __future__ import annotations

from html import escape

from ..model import ScanReport

__all__ = ["render_scan"]

_COLORS = {"critical": "#b00020", "warning": "#b26a00", "info": "#1565c0"}


def render_scan(report: ScanReport, *, max_findings: int = 500) -> str:
    """A table of severity, location, message and fix."""
    c = report.counts()
    rows = []
    for f in report.findings[:max_findings]:
        color = _COLORS[f.severity.value]
        rows.append(
            "<tr>"
            f"<td style='color:{color};font-weight:bold'>{escape(f.severity.value)}</td>"
            f"<td><code>{escape(f.location)}</code></td>"
            f"<td><code>{escape(f.code)}</code> {escape(f.kind)}</td>"
            f"<td>{escape(f.message)}</td>"
            f"<td>{escape(f.fix)}</td>"
            "</tr>"
        )
    more = ""
    if len(report.findings) > max_findings:
        more = f"<p>... and {len(report.findings) - max_findings} more.</p>"
    notes = "".join(f"<li>{escape(e)}</li>" for e in report.errors)
    return (
        "<div class='async-expert-report'>"
        f"<p><b>async-expert scan</b> of <code>{escape(report.target or 'source')}</code>: "
        f"{len(report.files_scanned)} file(s), "
        f"<span style='color:{_COLORS['critical']}'>{c['critical']} critical</span>, "
        f"<span style='color:{_COLORS['warning']}'>{c['warning']} warning</span>, "
        f"<span style='color:{_COLORS['info']}'>{c['info']} info</span></p>"
        + (
            "<table><thead><tr><th>severity</th><th>location</th><th>rule</th><th>message</th><th>fix</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            if rows
            else "<p>No async problems found.</p>"
        )
        + more
        + (f"<ul>{notes}</ul>" if notes else "")
        + "</div>"
    )
