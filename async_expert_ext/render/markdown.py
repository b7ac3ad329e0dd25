"""Markdown rendering of a report's five parts (memory file entries, agent notes, READMEs).

The five parts, in order, are the sections an async code review delivers:

1. **Critical issues**: every finding of severity ``critical``, with location,
   the offending line and the fix.
2. **Async pattern analysis**: the kinds of problems seen, how often, and the fix
   that applies to each kind.
3. **FastAPI performance recommendations**: findings in the FastAPI section or of
   a FastAPI/Starlette kind (omitted when there are none).
4. **Verification plan**: for each kind seen, how to prove the fix works (a check
   a person or CI can run), see :data:`VERIFICATION`.
5. **Best-practice code (before/after)**: the rule's ``fix_example``, once per kind.

Runtime reports (:class:`~async_expert_ext.model.LoopReport`) add a
**Runtime measures** part: the worst blocking line and how long it blocked (ms),
the max loop lag (ms) and the leaked tasks, see :func:`runtime_headline`.

Everything here is pure: no I/O, no third-party imports. Reports are read
defensively (``finding_list`` or ``findings``; ``counts()`` when present), so a
renderer written against today's model keeps working while the model grows.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..model import Finding, Severity
from .sections import FASTAPI_KINDS, is_fastapi_finding
from .sections import VERIFICATION as _CHECKS

__all__ = [
    "PARTS",
    "VERIFICATION",
    "FASTAPI_KINDS",
    "report_findings",
    "report_counts",
    "runtime_headline",
    "render_markdown",
    "render_parts",
    "code_span",
    "table_cell",
]

#: Part ids in rendering order, with their headings.
PARTS: dict[str, str] = {
    "critical": "Critical issues",
    "patterns": "Async pattern analysis",
    "fastapi": "FastAPI performance recommendations",
    "verification": "Verification plan",
    "runtime": "Runtime measures",
    "examples": "Best-practice code (before/after)",
}



_DEV_MODE = "https://docs.python.org/3/library/asyncio-dev.html#debug-mode"
_BLOCKING = "https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code"

#: kind -> the source (a CPython/FastAPI/library doc) of the check that verifies a fix of that
#: kind. The check itself is the one every view shows (:data:`sections.VERIFICATION`),
#: so the memory file and the report say the same thing.
VERIFICATION_SOURCES: dict[str, str] = {
    "blocking-call-in-async": _DEV_MODE,
    "cpu-bound-in-async": _BLOCKING,
    "never-awaited": "https://docs.python.org/3/library/asyncio-dev.html#detect-never-awaited-coroutines",
    "fire-and-forget-task": "https://docs.python.org/3/library/asyncio-task.html#asyncio.create_task",
    "task-exception-never-retrieved": "https://docs.python.org/3/library/asyncio-dev.html#detect-never-retrieved-exceptions",
    "leaked-task": "https://docs.python.org/3/library/asyncio-task.html#asyncio.all_tasks",
    "cancelled-error-swallowed": "https://docs.python.org/3/library/asyncio-task.html#task-cancellation",
    "lock-held-across-await": "https://docs.python.org/3/library/asyncio-sync.html#asyncio.Lock",
    "lock-not-released": "https://docs.python.org/3/library/asyncio-sync.html#asyncio.Lock",
    "sync-lock-in-async": _BLOCKING,
    "deadlock": "https://docs.python.org/3/library/asyncio-task.html#asyncio.timeout",
    "gather-partial-failure": "https://docs.python.org/3/library/asyncio-task.html#task-groups",
    "missing-timeout": "https://docs.python.org/3/library/asyncio-task.html#timeouts",
    "event-loop-already-running": "https://docs.python.org/3/library/asyncio-runner.html#asyncio.run",
    "unclosed-session": "https://docs.aiohttp.org/en/stable/client_reference.html#client-session",
    "threadsafe-misuse": "https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading",
    "executor-exhaustion": "https://anyio.readthedocs.io/en/stable/threads.html#adjusting-the-default-maximum-worker-thread-count",
    "sync-endpoint-threadpool": "https://fastapi.tiangolo.com/async/#path-operation-functions",
    "basehttpmiddleware": "https://www.starlette.io/middleware/#limitations",
    "async-generator-not-closed": "https://docs.python.org/3/library/contextlib.html#contextlib.aclosing",
    "cross-loop-resource": "https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading",
    "slow-endpoint": "https://fastapi.tiangolo.com/async/",
    "busy-wait": "https://docs.python.org/3/library/asyncio-sync.html#asyncio.Event",
}

#: kind -> (how to verify the fix, the source of that check), for the verification plan;
#: a kind not listed gets the generic re-scan step only.
VERIFICATION: dict[str, tuple[str, str]] = {
    kind: (_CHECKS[kind][0], source) for kind, source in VERIFICATION_SOURCES.items() if kind in _CHECKS
}

_RESCAN = (
    "Re-run the same analysis (`%async_scan` / `async-expert scan`): the memory file lists each "
    "finding that is gone as *fixed*."
)


# ---------------------------------------------------------------------------
# Reading reports defensively
# ---------------------------------------------------------------------------


def report_findings(report: Any) -> list[Finding]:
    """The findings of a report as a list of :class:`Finding`.

    Accepts a :class:`~async_expert_ext.model.ScanReport` (``findings`` list), a
    ``LoopReport`` (``finding_list``; its ``findings`` is a DataFrame), a plain
    sequence of findings, or None (no findings).
    """
    if report is None:
        return []
    if isinstance(report, (list, tuple)):
        return [f for f in report if isinstance(f, Finding)]
    found = getattr(report, "finding_list", None)
    if isinstance(found, (list, tuple)):
        return list(found)
    found = getattr(report, "findings", None)
    if isinstance(found, (list, tuple)):
        return list(found)
    return []


def report_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """``{"critical": n, "warning": n, "info": n}`` for ``findings``."""
    out = {"critical": 0, "warning": 0, "info": 0}
    for f in findings:
        out[f.severity.value] += 1
    return out


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def runtime_headline(report: Any) -> dict[str, Any] | None:
    """The headline measures of a runtime report, or None for a static one.

    Reads ``blocking_records``, ``lag_records`` and ``task_records`` of a
    ``LoopReport`` (see the column tables in :mod:`async_expert_ext.model`) with
    ``.get`` so that missing columns do not break it; falls back to the
    ``extra["blocked_ms"]`` of runtime findings when there are no blocking records.

    Returns:
        ``{"worst_block_ms": float ms, "worst_block_at": "path:line",
        "worst_block_snippet": str, "worst_block_function": str, "blocking_events": int,
        "max_lag_ms": float ms, "leaked_tasks": int, "leaked": ["name (coro) created at path:line", ...],
        "seconds": float s, "timed_out": bool, "exception": str}``, or None when the
        report carries none of these records.
    """
    if report is None:
        return None
    blocking = getattr(report, "blocking_records", None)
    lag = getattr(report, "lag_records", None)
    tasks = getattr(report, "task_records", None)
    if blocking is None and lag is None and tasks is None:
        return None
    blocking = [b for b in (blocking or []) if isinstance(b, Mapping)]
    lag = [r for r in (lag or []) if isinstance(r, Mapping)]
    tasks = [t for t in (tasks or []) if isinstance(t, Mapping)]
    worst = max(blocking, key=lambda b: _num(b.get("duration_ms")) or 0.0, default=None)
    out: dict[str, Any] = {
        "worst_block_ms": 0.0,
        "worst_block_at": "",
        "worst_block_snippet": "",
        "worst_block_function": "",
        "blocking_events": len(blocking),
    }
    if worst is not None:
        location = str(worst.get("location") or "")
        if not location and worst.get("path"):
            location = f"{worst.get('path')}:{worst.get('line') or 0}"
        out.update(
            worst_block_ms=round(_num(worst.get("duration_ms")) or 0.0, 1),
            worst_block_at=location,
            worst_block_snippet=str(worst.get("snippet") or "").strip(),
            worst_block_function=str(worst.get("function") or ""),
        )
    else:
        runtime_blocks = [
            f for f in report_findings(report) if _num((f.extra or {}).get("blocked_ms")) is not None
        ]
        if runtime_blocks:
            top = max(runtime_blocks, key=lambda f: _num(f.extra.get("blocked_ms")) or 0.0)
            out.update(
                worst_block_ms=round(_num(top.extra.get("blocked_ms")) or 0.0, 1),
                worst_block_at=top.location,
                worst_block_snippet=top.snippet.strip(),
                worst_block_function=top.symbol,
            )
    max_lag = max((_num(r.get("lag_ms")) or 0.0 for r in lag), default=0.0)
    leaked = [t for t in tasks if str(t.get("state") or "") == "pending"]
    out["max_lag_ms"] = round(max_lag, 1)
    out["leaked_tasks"] = len(leaked)
    out["leaked"] = [
        f"{t.get('name') or '?'} ({t.get('coro') or '?'}) created at {t.get('created_at') or '?'}" for t in leaked[:10]
    ]
    out["seconds"] = round(_num(getattr(report, "seconds", 0.0)) or 0.0, 3)
    out["timed_out"] = bool(getattr(report, "timed_out", False))
    out["exception"] = str(getattr(report, "exception", "") or "")
    return out


# ---------------------------------------------------------------------------
# Markdown helpers
# ---------------------------------------------------------------------------


def code_span(text: str) -> str:
    """``text`` as one inline code span (newlines collapsed; backticks inside handled)."""
    text = " ".join(str(text).split())
    if not text:
        return "``"
    if "`" not in text:
        return f"`{text}`"
    fence = "``"
    while fence in text:
        fence += "`"
    return f"{fence} {text} {fence}"


def table_cell(text: str) -> str:
    """``text`` safe inside a markdown table cell: one line, ``|`` escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


Notes = Callable[[Finding], str] | Mapping[str, str] | None


def _note(notes: Notes, f: Finding) -> str:
    if notes is None:
        return ""
    if callable(notes):
        return notes(f) or ""
    return notes.get(f.fingerprint, "")


def _finding_item(f: Finding, notes: Notes, *, show_fix: bool = True) -> list[str]:
    where = f"`{f.location}`"
    if f.symbol:
        where += f" in `{f.symbol}`"
    tag = _note(notes, f)
    head = f"- **{f.code}** {f.kind} at {where}: {_one_line(f.message)}"
    if tag:
        head += f" *({tag})*"
    lines = [head]
    if f.snippet.strip():
        lines.append(f"  - line: {code_span(f.snippet.strip())}")
    for step in f.call_chain[:6]:
        lines.append(f"  - via {code_span(step)}")
    if show_fix and f.fix:
        lines.append(f"  - fix: {_one_line(f.fix)}")
    return lines


def _fence(code: str, lang: str = "python") -> str:
    fence = "```"
    while fence in code:
        fence += "`"
    return f"{fence}{lang}\n{code.rstrip()}\n{fence}"


# ---------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------


def _critical(findings: Sequence[Finding], notes: Notes, limit: int) -> str:
    crit = [f for f in findings if f.severity is Severity.CRITICAL]
    if not crit:
        return "None."
    lines: list[str] = []
    for f in crit[:limit]:
        lines.extend(_finding_item(f, notes))
    if len(crit) > limit:
        lines.append(f"- ... and {len(crit) - limit} more critical finding(s).")
    return "\n".join(lines)


def _patterns(findings: Sequence[Finding]) -> str:
    if not findings:
        return "No async problems found."
    by_kind: dict[str, list[Finding]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    rows = ["| kind | count | worst | where | fix |", "|---|---:|---|---|---|"]
    ordered = sorted(by_kind.items(), key=lambda kv: (-max(f.severity.rank for f in kv[1]), -len(kv[1]), kv[0]))
    for kind, group in ordered:
        worst = max(group, key=lambda f: f.severity.rank).severity.value
        places = sorted({f.location for f in group})
        where = ", ".join(places[:3]) + (f" (+{len(places) - 3})" if len(places) > 3 else "")
        fix = next((f.fix for f in group if f.fix), "")
        rows.append(
            f"| {table_cell(kind)} | {len(group)} | {worst} | {table_cell(where)} | {table_cell(fix)} |"
        )
    return "\n".join(rows)


def _fastapi(findings: Sequence[Finding], notes: Notes, limit: int, recommendations: Sequence[str] = ()) -> str:
    picked = [f for f in findings if is_fastapi_finding(f)]
    lines: list[str] = [f"- {_one_line(r)}" for r in list(recommendations)[:limit] if r]  # from a load run
    for f in picked[:limit]:
        lines.extend(_finding_item(f, notes))
    if len(picked) > limit:
        lines.append(f"- ... and {len(picked) - limit} more.")
    return "\n".join(lines)


def _verification(findings: Sequence[Finding], headline: Mapping[str, Any] | None) -> str:
    steps: list[str] = []
    seen: set[str] = set()
    for f in sorted(findings, key=lambda f: (-f.severity.rank, f.kind)):
        if f.kind in seen:
            continue
        seen.add(f.kind)
        check = VERIFICATION.get(f.kind)
        if check:
            steps.append(f"**{f.kind}**: {check[0]} (source: {check[1]})")
    if headline and (headline.get("worst_block_ms") or headline.get("leaked_tasks")):
        steps.append(
            "Re-run `%%loop_profile` on the same code: the worst blocking time and the leaked-task count "
            "should drop (compare with the measures below)."
        )
    steps.append(_RESCAN)
    return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))


def _runtime(headline: Mapping[str, Any]) -> str:
    lines = []
    if headline.get("worst_block_at") or headline.get("worst_block_ms"):
        where = f"`{headline.get('worst_block_at') or '?'}`"
        if headline.get("worst_block_function"):
            where += f" in `{headline['worst_block_function']}`"
        if headline.get("worst_block_snippet"):
            where += f" {code_span(headline['worst_block_snippet'])}"
        lines.append(
            f"- worst blocking line: {where}, blocked the loop for {headline.get('worst_block_ms', 0.0):.1f} ms "
            f"({headline.get('blocking_events', 0)} blocking event(s) in all)"
        )
    else:
        lines.append("- worst blocking line: none (no stall past the threshold)")
    lines.append(f"- max loop lag: {headline.get('max_lag_ms', 0.0):.1f} ms")
    leaked = headline.get("leaked_tasks", 0)
    lines.append(f"- leaked tasks: {leaked}")
    for t in list(headline.get("leaked") or [])[:10]:
        lines.append(f"  - {code_span(t)}")
    if headline.get("seconds"):
        lines.append(f"- wall time: {headline['seconds']:.3f} s")
    if headline.get("timed_out"):
        lines.append("- the run timed out and was cancelled")
    if headline.get("exception"):
        lines.append(f"- the profiled code raised {code_span(headline['exception'])}")
    return "\n".join(lines)


def _examples(findings: Sequence[Finding]) -> str:
    blocks: list[str] = []
    seen: set[str] = set()
    for f in sorted(findings, key=lambda f: (-f.severity.rank, f.kind)):
        if f.kind in seen or not f.fix_example.strip():
            continue
        seen.add(f.kind)
        blocks.append(f"**{f.kind}** ({f.code})\n\n{_fence(f.fix_example)}")
    return "\n\n".join(blocks)


def render_parts(
    report: Any,
    *,
    parts: Sequence[str] = tuple(PARTS),
    notes: Notes = None,
    max_findings: int = 50,
    headline: Mapping[str, Any] | None = None,
    recommendations: Sequence[str] | None = None,
) -> dict[str, str]:
    """The body of each part as markdown, keyed by part id (see :data:`PARTS`).

    Parts with nothing to say are left out, except ``critical``, ``patterns``
    and ``verification``, which always say something.

    Args:
        report: a ScanReport, a LoopReport or a sequence of findings.
        parts: which part ids to render, in this order.
        notes: a per-finding tag shown after the message, e.g. ``"new"`` or
            ``"seen before, first 2026-11-02"``: a mapping fingerprint -> text or a
            callable ``Finding -> str``.
        max_findings: the most findings listed in one part.
        headline: runtime measures to show instead of computing them with
            :func:`runtime_headline`.
        recommendations: sentences for the FastAPI part written from a load run
            (default: the report's ``recommendations``, set by
            :class:`async_expert_ext.loadprobe.LoadReport`).

    Raises:
        ValueError: for an unknown part id.
    """
    for p in parts:
        if p not in PARTS:
            raise ValueError(f"unknown markdown part {p!r}; use one of: {', '.join(PARTS)}")
    findings = report_findings(report)
    if headline is None:
        headline = runtime_headline(report)
    out: dict[str, str] = {}
    for p in parts:
        if p == "critical":
            out[p] = _critical(findings, notes, max_findings)
        elif p == "patterns":
            out[p] = _patterns(findings)
        elif p == "fastapi":
            if recommendations is None:
                recommendations = [] if isinstance(report, (list, tuple)) else list(getattr(report, "recommendations", None) or [])
            body = _fastapi(findings, notes, max_findings, recommendations)
            if body:
                out[p] = body
        elif p == "verification":
            out[p] = _verification(findings, headline)
        elif p == "runtime":
            if headline is not None:
                out[p] = _runtime(headline)
        elif p == "examples":
            body = _examples(findings)
            if body:
                out[p] = body
    return out


def render_markdown(
    report: Any,
    *,
    title: str | None = None,
    level: int = 2,
    parts: Sequence[str] = tuple(PARTS),
    notes: Notes = None,
    max_findings: int = 50,
    headline: Mapping[str, Any] | None = None,
) -> str:
    """A markdown document with a heading per part.

    Args:
        report: a ScanReport, a LoopReport or a sequence of findings.
        title: an optional top heading (at ``level``); parts are one level below it.
            Without a title, parts are headings at ``level``.
        level: the heading level (1-5) of the title.
        parts, notes, max_findings, headline: as in :func:`render_parts`.

    Returns:
        Markdown text ending with a newline.
    """
    level = max(1, min(int(level), 5))
    bodies = render_parts(report, parts=parts, notes=notes, max_findings=max_findings, headline=headline)
    chunks: list[str] = []
    part_level = level
    if title:
        chunks.append(f"{'#' * level} {_one_line(title)}")
        part_level = level + 1
    for pid, body in bodies.items():
        chunks.append(f"{'#' * part_level} {PARTS[pid]}\n\n{body}")
    return "\n\n".join(chunks) + "\n"
