"""Plain-text rendering of reports (terminals, ``text/plain``, the CLI)."""
from __future__ import annotations

from ..model import ScanReport

__all__ = ["render_scan"]


def render_scan(report: ScanReport, *, max_findings: int = 200) -> str:
    """A readable plain-text report: a summary line, then one block per finding
    (severity, location, message, fix), critical first."""
    c = report.counts()
    head = (
        f"async-expert scan of {report.target or 'source'}: {len(report.files_scanned)} file(s), "
        f"{c['critical']} critical, {c['warning']} warning, {c['info']} info ({report.seconds * 1000:.0f} ms)"
    )
    lines = [head]
    if not report.findings:
        lines.append("No async problems found.")
    for f in report.findings[:max_findings]:
        lines.append(f"{f.severity.value.upper():8} {f.location} [{f.code} {f.kind}] {f.message}")
        if f.fix:
            lines.append(f"         fix: {f.fix}")
        for step in f.call_chain:
            lines.append(f"         via {step}")
    if len(report.findings) > max_findings:
        lines.append(f"... and {len(report.findings) - max_findings} more (use .to_frame() to see all)")
    for e in report.errors:
        lines.append(f"note: {e}")
    return "\n".join(lines)
