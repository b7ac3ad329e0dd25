"""Join static and runtime evidence.

The code a session ran (the cell, the CLI's file, and every file a runtime finding
points at) is scanned with :func:`async_expert_ext.scan.runner.scan_source`. A
static finding whose line the run observed is marked *confirmed*:
``extra["confirmed"] = True`` and ``extra["runtime"]`` holds the measured cost
(e.g. "blocked the loop 3 times for 0.61 s in total"). A runtime finding with no
static counterpart says so in its message and ``extra["static"]``.
"""
from __future__ import annotations

import linecache
from typing import TYPE_CHECKING

from ..model import Finding

if TYPE_CHECKING:  # pragma: no cover
    from .session import ProfileSession

__all__ = ["FAMILIES", "join_static"]

#: kinds that describe the same problem seen from the two sides
FAMILIES: dict[str, str] = {
    "blocking-call-in-async": "blocking",
    "cpu-bound-in-async": "blocking",
    "sync-lock-in-async": "blocking",
    "never-awaited": "never-awaited",
    "event-loop-already-running": "reentry",
    "missing-timeout": "timeout",
    "async-generator-not-closed": "agen",
    "cancelled-error-swallowed": "cancel",
}


def _family(kind: str) -> str:
    return FAMILIES.get(kind, kind)


def _lines(f: Finding) -> set[tuple[str, int]]:
    out = {(f.path, f.line)}
    for item in f.extra.get("lines_on_stack", ()) or ():
        try:
            out.add((str(item[0]), int(item[1])))
        except (TypeError, ValueError, IndexError):
            continue
    return out


def _scan(session: ProfileSession, label: str) -> list[Finding]:
    from ..scan.runner import scan_source

    text = session.static_source.get(label)
    if text is None:
        filename = session.files.get(label, label)
        text = "".join(linecache.getlines(filename))
    if not text.strip():
        return []
    notebook = label.startswith("In[") or label.startswith("<")
    return list(scan_source(text, path=label, notebook=notebook).findings)


def _cost(r: Finding) -> str:
    e = r.extra
    if "blocked_ms" in e:
        return f"blocked the loop {e.get('events', 1)} time(s) for {e['blocked_ms'] / 1000:.2f} s in total"
    if "count" in e:
        return f"observed {e['count']} time(s)"
    if "tasks" in e:
        return f"{e['tasks']} task(s) affected"
    return "observed at runtime"


def _blocking_totals(rs: list[Finding]) -> dict[str, float]:
    """Blocking events of several runtime findings at one line (e.g. some classified
    blocking, some cpu-bound) add up: total ``events``, ``blocked_ms`` and ``worst_ms``."""
    blocking = [r for r in rs if "blocked_ms" in r.extra]
    if not blocking:
        return {}
    return {
        "events": sum(int(r.extra.get("events", 1)) for r in blocking),
        "blocked_ms": sum(float(r.extra["blocked_ms"]) for r in blocking),
        "worst_ms": max(float(r.extra.get("worst_ms", 0.0)) for r in blocking),
    }


def _total_cost(rs: list[Finding]) -> str:
    totals = _blocking_totals(rs)
    parts = []
    if totals:
        parts.append(f"blocked the loop {totals['events']} time(s) for {totals['blocked_ms'] / 1000:.2f} s in total")
    parts += [_cost(r) for r in rs if "blocked_ms" not in r.extra]
    return "; ".join(dict.fromkeys(parts))


def join_static(session: ProfileSession, runtime: list[Finding]) -> list[Finding]:
    """Return the runtime findings joined with the static scan (see the module docstring)."""
    labels = set(session.static_source)
    for r in runtime:
        if r.path:
            labels.add(r.path)
            labels.update(p for p, _l in _lines(r))
    static: dict[str, list[Finding]] = {}
    for label in sorted(labels):
        try:
            static[label] = _scan(session, label)
        except Exception as exc:
            session.report.errors.append(f"static scan of {label} failed: {type(exc).__name__}: {exc}")
            static[label] = []
    confirmed: dict[int, list[Finding]] = {}
    kept: list[Finding] = []
    for r in runtime:
        matches: list[tuple[str, int]] = []
        where = _lines(r)
        for label, items in static.items():
            for i, st in enumerate(items):
                if _family(st.kind) != _family(r.kind):
                    continue
                hit = any(p == label and st.line <= ln <= max(st.end_line, st.line) for p, ln in where)
                if not hit and not r.path and r.kind == "never-awaited":
                    coro = str(r.extra.get("coroutine", "")).rsplit(".", 1)[-1]
                    hit = bool(coro) and (coro in st.message or coro in st.snippet)
                if hit:
                    matches.append((label, i))
                    confirmed.setdefault(id(st), []).append(r)
        if not matches:
            # the same line may be statically flagged under a related kind (a dropped task
            # that then failed): say so rather than "not flagged"
            other = next((st for label, items in static.items() for st in items if label == r.path and st.line == r.line), None)
            note = f"the static scan flagged this line as {other.kind} ({other.code})" if other else "not flagged by the static scan"
            kept.append(r.replace(extra={**r.extra, "static": note}))
        # else: the static finding it confirms carries its cost (and its call chain reaches
        # the runtime line): reporting the event a second time would count it twice
    out = list(kept)
    for label, items in static.items():
        for st in items:
            rs = confirmed.get(id(st))
            if rs:
                cost = _total_cost(rs)
                worst = max([st, *rs], key=lambda f: f.severity.rank).severity
                out.append(
                    st.replace(
                        severity=worst,
                        message=f"{st.message} (confirmed at runtime: {cost})",
                        extra={
                            **st.extra,
                            "confirmed": True,
                            "runtime": cost,
                            "runtime_codes": sorted({r.code for r in rs}),
                            **{k: v for r in rs for k, v in r.extra.items() if k in ("blocked_ms", "events", "worst_ms", "count", "tasks")},
                            **_blocking_totals(rs),
                        },
                    )
                )
            elif label in session.static_source:
                out.append(st.replace(extra={**st.extra, "confirmed": False}))
    return out
