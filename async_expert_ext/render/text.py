"""Plain-text rendering of reports (terminals, ``text/plain``, the CLI).

Layout: a headline, counts by severity and kind, the five parts of
:func:`~async_expert_ext.render.sections.build_sections`, then the findings
(critical first) and, for loop reports, the blocking events and the tasks that
did not finish cleanly. Long lists are capped; the cap line says how to see all.
"""
from __future__ import annotations

import textwrap
from typing import Any

from ..model import LoopReport, ScanReport
from .sections import (
    build_sections,
    counts_by_kind,
    counts_by_severity,
    finding_badges,
    findings_of,
    is_loop_report,
    memory_status,
)

__all__ = ["render", "render_loop", "render_scan"]


def _headline(report: Any) -> str:
    c = counts_by_severity(findings_of(report))
    counts = f"{c['critical']} critical, {c['warning']} warning, {c['info']} info"
    if is_loop_report(report):
        s = report.summary()
        return (
            f"async-expert loop profile of {report.target or 'cell'}: {report.seconds:.3f} s, "
            f"{s['tasks']} task(s), {s['blocking_events']} blocking event(s), max lag "
            f"{s['max_lag_ms']:.0f} ms; {counts}"
        )
    return (
        f"async-expert scan of {report.target or 'source'}: {report.scanned_text()}, "
        f"{counts} ({report.seconds * 1000:.0f} ms)"
    )


def _indent(text: str, prefix: str) -> str:
    return textwrap.indent(text, prefix, lambda _line: True)


def render(report: Any, *, max_findings: int = 200, sections: bool = True, memory: Any = None) -> str:
    """The whole report as plain text.

    Args:
        report: a ScanReport or LoopReport.
        max_findings: findings listed one by one; the rest are counted.
        sections: include the five parts (False gives the short list only).
        memory: the memory file's ``Recall`` for "seen before"/"new" notes (optional).

    Returns:
        Text with ``\\n`` line ends and no trailing newline.
    """
    findings = findings_of(report)
    lines = [_headline(report)]
    if is_loop_report(report) and report.exception:
        lines.append(f"the profiled code raised {report.exception}" + (" (timeout)" if report.timed_out else ""))
    if findings:
        kinds = counts_by_kind(findings)
        lines.append("by kind: " + ", ".join(f"{k} {sum(v.values())}" for k, v in kinds))
    if sections:
        for n, (title, items) in enumerate(build_sections(report, memory=memory), 1):
            lines.append("")
            lines.append(f"{n}. {title}")
            for item in items:
                lines.append("   - " + item.text)
                for d in item.details:
                    lines.append(f"       {d}")
                if item.code:
                    lines.append(_indent(item.code, "       | "))
    lines.append("")
    lines.append("Findings" if findings else "No async problems found.")
    loop = is_loop_report(report)
    for f in findings[:max_findings]:
        # in a loop report, say inline where the evidence came from
        tag = (", confirmed" if f.extra.get("confirmed") else f", {f.source}") if loop else ""
        lines.append(f"{f.severity.value.upper():8} {f.location} [{f.code} {f.kind}{tag}] {f.message}")
        for label, detail in finding_badges(f, memory_status(memory, f)):
            lines.append(f"         {label}{': ' + detail if detail else ''}")
        if f.fix:
            lines.append(f"         fix: {f.fix}")
        # a runtime finding's chain is a sampled stack: only the user's frames
        for step in user_frames(f.call_chain) if f.source == "runtime" else f.call_chain:
            lines.append(f"         via {step}")
    if len(findings) > max_findings:
        lines.append(f"... and {len(findings) - max_findings} more (use .to_frame() / .findings to see all)")
    if is_loop_report(report):
        lines.extend(_loop_tail(report, max_findings))
    for e in report.errors:
        lines.append(f"instrument error: {e}" if is_loop_report(report) else f"note: {e}")
    for note in getattr(report, "notes", ()):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _loop_tail(report: LoopReport, cap: int) -> list[str]:
    out: list[str] = []
    if report.blocking_records:
        out.append("")
        out.append("Blocking events (the loop did not run callbacks)")
        for b in report.blocking_records[:cap]:
            out.append(
                f"  at {float(b.get('start_s') or 0):8.3f} s  {float(b.get('duration_ms') or 0):7.0f} ms  "
                f"{b.get('location', '?')}  {b.get('snippet', '')}"
            )
            out.extend(f"      {frame}" for frame in user_frames(b.get("stack") or ()))
    waits = sorted(report.lock_records, key=lambda r: -float(r.get("wait_ms") or 0.0))
    if waits:
        out.append("")
        out.append(f"Lock and queue waits: {len(waits)} (longest first)")
        for w in waits[:10]:
            out.append(
                f"  {float(w.get('wait_ms') or 0):7.0f} ms  {w.get('primitive', '')} created at {w.get('name', '?')}: "
                f"{w.get('task', '')} waited at {w.get('location', '?')}, held by {w.get('holder', '') or '?'}"
            )
    if report.log_records:
        out.append("")
        out.append(f"Logs captured from the loop: {len(report.log_records)}")
        for r in report.log_records[:20]:
            out.append(f"  {r.get('level', '')} {r.get('source', '')} {r.get('location', '')}: {r.get('message', '')}")
    bad = [t for t in report.task_records if t.get("state") in ("failed", "pending", "cancelled")]
    if report.task_records:
        out.append("")
        out.append(f"Tasks: {len(report.task_records)} ({len(bad)} not done cleanly)")
        for t in bad[: min(cap, 50)]:
            exc = f"  {t.get('exception')}" if t.get("exception") else ""
            out.append(f"  {t.get('state', '?'):9} {t.get('name', '')} {t.get('coro', '')} created at {t.get('created_at', '?')}{exc}")
            if t.get("state") == "pending":
                for step in (t.get("await_stack") or ())[:8]:
                    out.append(f"      awaiting {step}")
        if len(bad) > min(cap, 50):
            out.append(f"  ... and {len(bad) - min(cap, 50)} more (see .tasks)")
    return out


def user_frames(stack: Any) -> list[str]:
    """The frames of a sampled stack (``"qualname (path:line)"`` strings, outermost
    first) that are the user's code; runs of library frames (the standard library,
    site-packages, this package) fold into one ``... N library frames`` line. The
    full stack stays in ``LoopReport.blocking``."""
    from ..loop.session import is_library_file

    out: list[str] = []
    hidden = 0
    for frame in stack:
        text = str(frame)
        path = text.rpartition("(")[2].rpartition(":")[0] if text.endswith(")") else ""
        if path and is_library_file(path):
            hidden += 1
            continue
        if hidden:
            out.append(f"... {hidden} library frame(s)")
            hidden = 0
        out.append(text)
    if hidden:
        out.append(f"... {hidden} library frame(s)")
    return out


def render_scan(report: ScanReport, *, max_findings: int = 200) -> str:
    """A readable plain-text report of a static scan (see :func:`render`)."""
    return render(report, max_findings=max_findings)


def render_loop(report: LoopReport, *, max_findings: int = 200) -> str:
    """A readable plain-text report of a runtime profile (see :func:`render`)."""
    return render(report, max_findings=max_findings)
