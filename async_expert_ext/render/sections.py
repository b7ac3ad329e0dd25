"""The report's five parts, as plain data every renderer can format.

:func:`build_sections` turns a :class:`~async_expert_ext.model.ScanReport` or a
``LoopReport`` into the five parts of the report, in this order:

1. Critical issues
2. Async pattern analysis
3. FastAPI performance recommendations
4. Verification plan (which tests or load checks prove each fix)
5. Best-practice implementation (before/after code per finding kind present)

Each part is ``(title, items)`` where ``items`` is a list of :class:`Item`. The
text, HTML, markdown and widget renderers only format these items, so the five
parts read the same everywhere. This module is pure (standard library only).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import KINDS, Finding, Section, Severity

__all__ = [
    "FASTAPI_KINDS",
    "SECTION_TITLES",
    "VERIFICATION",
    "Item",
    "build_sections",
    "counts_by_kind",
    "counts_by_severity",
    "excerpt",
    "finding_badges",
    "memory_status",
    "findings_of",
    "is_loop_report",
]

#: The five parts, in the order the report shows them.
SECTION_TITLES: tuple[str, ...] = (
    "Critical issues",
    "Async pattern analysis",
    "FastAPI performance recommendations",
    "Verification plan",
    "Best-practice implementation",
)

#: Kinds that belong to the FastAPI/Starlette part even when their section differs.
FASTAPI_KINDS = frozenset({"sync-endpoint-threadpool", "basehttpmiddleware", "slow-endpoint", "fastapi-pattern"})


def is_fastapi_finding(f: Finding) -> bool:
    """True for findings of the report's "FastAPI performance recommendations" part:
    the FastAPI family, its kinds, and core findings the FastAPI refiner placed in an
    endpoint, dependency, middleware or background task (``extra["fastapi"]``)."""
    return f.section is Section.FASTAPI or f.kind in FASTAPI_KINDS or bool(f.extra.get("fastapi"))

_PYTEST_BLOCK = """\
# pytest-asyncio: the loop must stay responsive while the handler runs
import asyncio, time
import pytest

@pytest.mark.asyncio
async def test_handler_does_not_block_the_loop():
    lags = []
    async def heartbeat():
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t0 - 0.01)
    beat = asyncio.create_task(heartbeat())
    await handler()          # the fixed coroutine
    beat.cancel()
    assert max(lags, default=0) < 0.05   # no block over 50 ms"""

_LOAD_TEST = """\
# load check: N concurrent requests must finish in about one request's time
import asyncio, time, httpx

async def load(app, n=50):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        t0 = time.perf_counter()
        rs = await asyncio.gather(*(c.get("/endpoint") for _ in range(n)))
        return time.perf_counter() - t0, [r.status_code for r in rs]"""

_PYTEST_TASKS = """\
# pytest-asyncio: no task may outlive the code under test
import asyncio
import pytest

@pytest.mark.asyncio
async def test_no_leaked_tasks():
    before = asyncio.all_tasks()
    await run_code_under_test()
    await asyncio.sleep(0)
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leaked, leaked"""

_PYTEST_FORGOTTEN = """\
# pytest-asyncio: background work started by the code must finish even after a collection
import asyncio, gc
import pytest

@pytest.mark.asyncio
async def test_background_work_survives_gc():
    await run_code_under_test()     # starts the background task
    gc.collect()                    # a task nobody references may be destroyed here
    await asyncio.sleep(0.1)
    assert background_work_done()"""

_PYTEST_UNRETRIEVED = """\
# pytest-asyncio: a failing background task must not fail silently
import asyncio, gc
import pytest

@pytest.mark.asyncio
async def test_task_failures_are_seen():
    loop = asyncio.get_running_loop()
    unseen = []
    loop.set_exception_handler(lambda loop, ctx: unseen.append(ctx.get("exception")))
    await run_code_under_test(make_it_fail=True)
    await asyncio.sleep(0)
    gc.collect()                    # asyncio reports unretrieved exceptions when the task is collected
    assert not unseen, unseen"""

_PYTEST_CANCEL = """\
# pytest-asyncio: cancellation must propagate
import asyncio
import pytest

@pytest.mark.asyncio
async def test_cancellation_propagates():
    task = asyncio.create_task(worker())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task"""

#: Per kind: how to prove the fix, and an optional code sample. Recipes name a
#: pytest-asyncio test, a load test, or a ``%%loop_profile`` re-run; the checks
#: follow the asyncio development guide
#: (https://docs.python.org/3/library/asyncio-dev.html).
VERIFICATION: dict[str, tuple[str, str]] = {
    "blocking-call-in-async": (
        "Re-run the cell under `%%loop_profile --threshold 50`: no blocking event may point at the line. "
        "Add a pytest-asyncio test with a heartbeat task that asserts loop lag stays under 50 ms.",
        _PYTEST_BLOCK,
    ),
    "cpu-bound-in-async": (
        "Re-run under `%%loop_profile`: the profile must show the work in an executor thread or process, "
        "and loop lag stays under the threshold. Load test: p99 latency of a cheap endpoint must not rise "
        "while the heavy one runs.",
        _PYTEST_BLOCK,
    ),
    "sync-endpoint-threadpool": (
        "Load test with more concurrent requests than threadpool workers (40 by default in Starlette): "
        "total time must stay close to one request's time.",
        _LOAD_TEST,
    ),
    "slow-endpoint": (
        "Load test two endpoints at once: the fast one's latency must not follow the slow one's.",
        _LOAD_TEST,
    ),
    "basehttpmiddleware": (
        "A pytest-asyncio test through httpx.ASGITransport: the contextvar set in the endpoint is visible "
        "after the middleware, and a streaming response streams (first chunk before the last is produced).",
        "",
    ),
    "busy-wait": (
        "Watch CPU while the code waits: close to 0% once it waits on an `asyncio.Event` instead of polling.",
        "",
    ),
    "fastapi-pattern": (
        "Load test the endpoint before and after the change with the same concurrency and compare p50/p99.",
        _LOAD_TEST,
    ),
    "never-awaited": (
        "Run the tests with `-W error::RuntimeWarning` so a never-awaited coroutine fails the test; "
        "`%%loop_profile` must report no never-awaited coroutine.",
        "",
    ),
    "fire-and-forget-task": (
        "A pytest-asyncio test that runs the code, then `gc.collect()`, and asserts the background work "
        "completed; `%%loop_profile` must list the task as done, not pending or vanished.",
        _PYTEST_FORGOTTEN,
    ),
    "task-exception-never-retrieved": (
        "A pytest-asyncio test that makes the task fail and asserts the error is logged or re-raised; "
        "`%%loop_profile` must report no failed task whose exception went unretrieved.",
        _PYTEST_UNRETRIEVED,
    ),
    "leaked-task": (
        "A pytest-asyncio test comparing `asyncio.all_tasks()` before and after; `%%loop_profile` must "
        "report no task pending at the end.",
        _PYTEST_TASKS,
    ),
    "cancelled-error-swallowed": (
        "A pytest-asyncio test that cancels the task and expects `CancelledError` from awaiting it.",
        _PYTEST_CANCEL,
    ),
    "lock-held-across-await": (
        "Re-run under `%%loop_profile`: lock wait times must drop; a load test of concurrent callers "
        "must scale instead of serialising.",
        "",
    ),
    "lock-not-released": (
        "A pytest-asyncio test that raises inside the critical section and then acquires the lock again "
        "with `asyncio.timeout(1)`.",
        "",
    ),
    "sync-lock-in-async": (
        "Re-run under `%%loop_profile`: no blocking event in `threading.Lock.acquire`; a test with two "
        "concurrent tasks must not deadlock (wrap it in `asyncio.timeout`).",
        "",
    ),
    "deadlock": (
        "A pytest-asyncio test wrapping the scenario in `asyncio.timeout(5)`; `%%loop_profile --timeout 5` "
        "must finish with no task waiting on a lock.",
        "",
    ),
    "gather-partial-failure": (
        "A pytest-asyncio test where one child fails: assert the siblings were cancelled (TaskGroup) "
        "and no task is left pending.",
        _PYTEST_TASKS,
    ),
    "missing-timeout": (
        "A pytest-asyncio test against a server that never answers: the call must raise `TimeoutError` "
        "within the configured timeout.",
        "",
    ),
    "event-loop-already-running": (
        "Re-run the cell with top-level `await`: it must finish without "
        "'Cannot run the event loop while another loop is running'.",
        "",
    ),
    "unclosed-session": (
        "Run the tests with `-W error::ResourceWarning` (and `PYTHONASYNCIODEBUG=1` in CI): no "
        "'Unclosed client session' warning.",
        "",
    ),
    "threadsafe-misuse": (
        "Re-run under `%%loop_profile`: no threadsafe-misuse event; a test that calls the code from a "
        "worker thread must pass with `loop.set_debug(True)`.",
        "",
    ),
    "executor-exhaustion": (
        "Load test with more concurrent calls than executor workers; `%%loop_profile` must show queued "
        "work waiting less than the threshold.",
        _LOAD_TEST,
    ),
    "async-generator-not-closed": (
        "A pytest-asyncio test that breaks out of the iteration early and asserts the generator's "
        "`finally` ran (use `contextlib.aclosing`).",
        "",
    ),
    "cross-loop-resource": (
        "Run the test suite with a fresh event loop per test (pytest-asyncio's default function scope): "
        "no 'attached to a different loop' error.",
        "",
    ),
}

_DEFAULT_VERIFY = (
    "Re-run `%%async_scan` on the fixed code (the finding must be gone) and the cell under "
    "`%%loop_profile` (no new runtime finding).",
    "",
)


@dataclass(frozen=True)
class Item:
    """One entry of a report part.

    Attributes:
        text: one line of plain text (may contain `backticks` for inline code).
        code: an optional Python code block (before/after code, a test).
        severity: ``"critical"``/``"warning"``/``"info"`` when the item is about
            findings of that severity, else ``""``.
        details: further lines (locations, measures), shown as sub-bullets.
        kind: the finding kind the item is about, ``""`` for general items.
    """

    text: str
    code: str = ""
    severity: str = ""
    details: tuple[str, ...] = field(default_factory=tuple)
    kind: str = ""


def is_loop_report(report: Any) -> bool:
    """True for a runtime ``LoopReport`` (it has ``task_records``), False for a
    :class:`~async_expert_ext.model.ScanReport`."""
    return hasattr(report, "task_records")


def findings_of(report: Any) -> list[Finding]:
    """The findings of a report as a list of :class:`Finding`, critical first.

    Accepts a ScanReport (``.findings`` is a list) or a LoopReport (a list in
    ``.finding_list``/``._findings``, or a ``.findings`` DataFrame whose rows are
    :meth:`Finding.to_dict` dicts).
    """
    for name in ("finding_list", "findings_list", "_findings"):
        value = getattr(report, name, None)
        if isinstance(value, (list, tuple)):
            return sorted(value, key=Finding.sort_key)
    value = getattr(report, "findings", None)
    if value is None:
        return []
    if callable(value) and not hasattr(value, "to_dict"):
        value = value()
    if isinstance(value, (list, tuple)):
        return sorted((v if isinstance(v, Finding) else Finding.from_dict(v) for v in value), key=Finding.sort_key)
    if hasattr(value, "to_dict"):  # a DataFrame
        rows = value.to_dict("records")
        return sorted((Finding.from_dict(r) for r in rows), key=Finding.sort_key)
    return []


def counts_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    """``{"critical": n, "warning": n, "info": n}``."""
    out = {"critical": 0, "warning": 0, "info": 0}
    for f in findings:
        out[f.severity.value] += 1
    return out


def counts_by_kind(findings: Iterable[Finding]) -> list[tuple[str, dict[str, int]]]:
    """Per kind, the counts by severity; worst and most frequent kinds first."""
    table: dict[str, dict[str, int]] = {}
    for f in findings:
        table.setdefault(f.kind, {"critical": 0, "warning": 0, "info": 0})[f.severity.value] += 1
    return sorted(
        table.items(),
        key=lambda kv: (-kv[1]["critical"], -kv[1]["warning"], -sum(kv[1].values()), kv[0]),
    )


def excerpt(sources: Mapping[str, str] | None, finding: Finding, context: int = 3) -> list[tuple[int, str, bool]]:
    """The code around a finding: ``[(line_number, text, is_offending_line), ...]``.

    Uses ``sources[finding.path]`` (``ScanReport.sources``) when present, else the
    finding's ``snippet`` alone. Line numbers are 1-based; returns ``[]`` when
    neither is known.
    """
    text = (sources or {}).get(finding.path)
    if text is not None and finding.line > 0:
        lines = text.splitlines()
        if finding.line <= len(lines):
            start = max(1, finding.line - context)
            stop = min(len(lines), max(finding.end_line, finding.line) + context)
            last = max(finding.end_line, finding.line)
            return [(n, lines[n - 1], finding.line <= n <= last) for n in range(start, stop + 1)]
    if finding.snippet:
        return [(finding.line, finding.snippet, True)]
    return []


def _truthy_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return ""


def finding_badges(finding: Finding, memory_status: str = "") -> list[tuple[str, str]]:
    """Runtime confirmation and memory notes of a finding.

    Args:
        finding: the finding; its :attr:`Finding.extra` is read.
        memory_status: the memory file's verdict for it, as given by
            ``async_expert_ext.memory``'s ``Recall.status_of(finding)``:
            ``"new"`` or ``"seen before (first YYYY-MM-DD)"`` ("" when unknown).

    Returns:
        ``[(label, detail), ...]`` with labels ``"confirmed at runtime"``,
        ``"runtime only"``, ``"seen before"`` and ``"new"``. Keys of ``extra`` read
        (``loop/join.py`` writes the first three): ``confirmed`` (True), ``runtime``
        (the measured cost, "blocked the loop 3 times for 0.61 s in total"),
        ``static`` ("not flagged by the static scan" on a runtime-only finding),
        the measures ``blocked_ms``/``blocked_count``/``total_blocked_s``, and
        ``seen_before``/``memory`` (a memory status stored on the finding).
    """
    extra = finding.extra or {}
    out: list[tuple[str, str]] = []
    confirmed = extra.get("confirmed", extra.get("confirmed_at_runtime"))
    if confirmed:
        bits = [_truthy_text(confirmed), _truthy_text(extra.get("runtime"))]
        if "blocked_count" in extra:
            bits.append(f"blocked {extra['blocked_count']} time(s)")
        if "total_blocked_s" in extra:
            bits.append(f"{float(extra['total_blocked_s']):.2f} s in total")
        elif "blocked_ms" in extra and not extra.get("runtime"):
            bits.append(f"{float(extra['blocked_ms']):.0f} ms")
        out.append(("confirmed at runtime", "; ".join(b for b in bits if b)))
    static = str(extra.get("static", ""))
    if extra.get("runtime_only") or static.startswith("not flagged"):
        out.append(("runtime only", static or "no static finding matches this runtime observation"))
    elif static.startswith("the static scan flagged"):
        out.append(("also static", static))
    seen = extra.get("seen_before")
    status = (memory_status or str(extra.get("memory", ""))).strip()
    low = status.lower()
    if seen or low.startswith("seen"):
        if seen and seen is not True:
            detail = _truthy_text(seen)
        else:
            detail = status[len("seen before"):].strip(" ()") if low.startswith("seen before") else ""
        out.append(("seen before", detail))
    elif low == "new" or seen is False:
        out.append(("new", "not in the memory file"))
    return out


def memory_status(memory: Any, finding: Finding) -> str:
    """``memory.status_of(finding)`` (a memory ``Recall``), or "" without one or on error."""
    if memory is None or not hasattr(memory, "status_of"):
        return ""
    try:
        return str(memory.status_of(finding) or "")
    except Exception:  # a memory problem must not break the report
        return ""


def _where(findings: Sequence[Finding], limit: int = 5) -> str:
    locs = [f.location for f in findings[:limit]]
    more = f" (+{len(findings) - limit} more)" if len(findings) > limit else ""
    return ", ".join(locs) + more


def _loop_facts(report: Any) -> list[Item]:
    """Runtime facts for the analysis part: tasks by state, blocking, lag, locks."""
    s = report.summary()
    threshold = float((getattr(report, "settings", {}) or {}).get("threshold_ms", 50.0))
    items: list[Item] = []
    if s["tasks"]:
        states = ", ".join(f"{n} {st}" for st, n in sorted(s["tasks_by_state"].items(), key=lambda kv: -kv[1]))
        items.append(Item(f"{s['tasks']} task(s) observed: {states}."))
    if s["blocking_events"]:
        items.append(
            Item(
                f"The event loop was blocked {s['blocking_events']} time(s) past {threshold:.0f} ms, "
                f"{s['blocked_ms']:.0f} ms in total; worst {s['worst_block_ms']:.0f} ms at "
                f"`{s['worst_block_at'] or '?'}`.",
                severity="critical",
                kind="blocking-call-in-async",
            )
        )
    lags = sorted(float(r.get("lag_ms") or 0.0) for r in report.lag_records)
    if lags:
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        items.append(
            Item(
                f"Loop lag over {len(lags)} heartbeat samples: median {lags[len(lags) // 2]:.1f} ms, "
                f"p99 {p99:.1f} ms, max {lags[-1]:.1f} ms (threshold {threshold:.0f} ms)."
            )
        )
    if s["slow_callbacks"]:
        items.append(Item(f"{s['slow_callbacks']} slow callback(s) ran longer than the threshold."))
    waits = [float(r.get("wait_ms") or 0.0) for r in report.lock_records]
    if waits:
        items.append(Item(f"{len(waits)} wait(s) on asyncio primitives, {sum(waits):.0f} ms in total, worst {max(waits):.0f} ms."))
    if report.exception:
        items.append(Item(f"The profiled code raised {report.exception}.", severity="critical"))
    if report.timed_out:
        items.append(Item("The timeout fired: the work was cancelled; pending tasks are listed.", severity="warning"))
    return items


def build_sections(report: Any, *, max_items: int = 25, memory: Any = None) -> list[tuple[str, list[Item]]]:
    """The five parts of a report, in order (see :data:`SECTION_TITLES`).

    Args:
        report: a ScanReport or a LoopReport.
        max_items: cap on per-finding items in a part; the rest are summarised
            in one "... and N more" item.
        memory: the memory file's ``Recall`` (``status_of(finding)``), to mark
            critical findings "seen before" / "new"; optional.

    Returns:
        ``[(title, [Item, ...]), ...]``, five entries; a part with nothing to say
        holds one item saying so.
    """
    findings = findings_of(report)
    loop = is_loop_report(report)
    by_kind: dict[str, list[Finding]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    kinds_order = [k for k, _ in counts_by_kind(findings)]

    # 1. Critical issues
    critical = [f for f in findings if f.severity is Severity.CRITICAL]
    crit_items = [
        Item(
            f"`{f.location}` {f.code} {f.kind}: {f.message}",
            severity="critical",
            details=tuple(d for d in (f"fix: {f.fix}" if f.fix else "",) if d)
            + tuple(f"{label}: {detail}" if detail else label for label, detail in finding_badges(f, memory_status(memory, f))),
            kind=f.kind,
        )
        for f in critical[:max_items]
    ]
    if len(critical) > max_items:
        crit_items.append(Item(f"... and {len(critical) - max_items} more critical finding(s).", severity="critical"))
    if not crit_items:
        crit_items = [Item("No critical issues found.")]

    # 2. Async pattern analysis
    analysis: list[Item] = []
    if loop:
        analysis.extend(_loop_facts(report))
    for kind in kinds_order:
        group = by_kind[kind]
        worst = group[0].severity.value
        c = counts_by_severity(group)
        sev = ", ".join(f"{n} {s}" for s, n in c.items() if n)
        desc = KINDS.get(kind, "")
        analysis.append(
            Item(
                f"{kind} ({sev}){': ' + desc if desc else ''}.",
                severity=worst,
                # each rule's own explanation (a kind groups several rules: sleep, DB, HTTP ...)
                details=(f"at {_where(group)}",) + tuple(dict.fromkeys(f.explanation for f in group if f.explanation))[:3],
                kind=kind,
            )
        )
    if not analysis:
        analysis = [Item("No async problems found.")]

    # 3. FastAPI performance recommendations
    # FastAPI-family findings, and core findings the FastAPI refiner placed in an
    # endpoint, dependency, middleware or background task (extra["fastapi"])
    fastapi = [f for f in findings if is_fastapi_finding(f)]
    fa_items: list[Item] = []
    seen: set[tuple[str, str]] = set()
    for f in fastapi:
        ctx = f.extra.get("fastapi") or {}
        route = " ".join(x for x in (",".join(ctx.get("methods") or ()), str(ctx.get("route") or "")) if x)
        where = f"`{route}` ({ctx.get('role', 'endpoint')}): " if route and f.section is not Section.FASTAPI else ""
        key = (f.kind, where + (f.fix or f.message))
        if key in seen:
            continue
        seen.add(key)
        same = [g for g in fastapi if (g.kind, g.fix or g.message) == (f.kind, f.fix or f.message)]
        fa_items.append(
            Item(
                f"{where}{f.fix or f.message}",
                severity=f.severity.value,
                details=(f"{f.kind} at {_where(same)}",) + tuple(f.references[:2]),
                kind=f.kind,
            )
        )
        if len(fa_items) >= max_items:
            break
    # recommendations written from a load run of the app (async_expert_ext.loadprobe.LoadReport)
    recs = [str(r) for r in (getattr(report, "recommendations", None) or []) if r]
    fa_items[:0] = [Item(r) for r in recs[:max_items]]
    if not fa_items:
        fa_items = [Item("No FastAPI or Starlette findings in this report.")]

    # 4. Verification plan
    verify: list[Item] = []
    # the threshold this report was profiled with (loop reports), else the default 50 ms
    threshold = (getattr(report, "settings", None) or {}).get("threshold_ms") or 50
    for kind in kinds_order:
        text, code = VERIFICATION.get(kind, _DEFAULT_VERIFY)
        if threshold != 50:
            text = text.replace("--threshold 50", f"--threshold {threshold:g}").replace("under 50 ms", f"under {threshold:g} ms")
        verify.append(Item(f"{kind}: {text}", code=code, severity=by_kind[kind][0].severity.value, kind=kind))
    if verify:
        verify.append(
            Item(
                "After all fixes: re-run `%%async_scan` (no finding left at the fixed lines) and the cell or "
                "workload under `%%loop_profile` (no blocking event, no leaked or failed task)."
            )
        )
    else:
        verify = [Item("Nothing to verify: no findings.")]

    # 5. Best-practice implementation
    practice: list[Item] = []
    for kind in kinds_order:
        group = by_kind[kind]
        example = next((f for f in group if f.fix_example), None)
        lead = example or group[0]
        practice.append(
            Item(
                f"{kind}: {lead.fix or KINDS.get(kind, '')}",
                code=example.fix_example if example else "",
                severity=group[0].severity.value,
                details=tuple(lead.references[:3]),
                kind=kind,
            )
        )
    if not practice:
        practice = [Item("No changes needed.")]

    return list(zip(SECTION_TITLES, (crit_items, analysis, fa_items, verify, practice)))
