"""pandas views of reports: DataFrames with documented columns, and styled views.

The frames themselves come from the model (``ScanReport.to_frame()``,
``LoopReport.findings/.tasks/.blocking/.lag/.locks``); this module documents
their columns (:data:`COLUMN_DOCS`, :func:`describe`) and colours them
(:func:`style`): findings by severity, tasks by end state, blocking events and
lag by how far past the threshold they are. Only this module imports pandas.
"""
from __future__ import annotations

from typing import Any

from ..model import (
    BLOCKING_COLUMNS,
    FINDING_COLUMNS,
    LAG_COLUMNS,
    LOCK_COLUMNS,
    TASK_COLUMNS,
)
from .html import SEVERITY_BACKGROUNDS, SEVERITY_COLORS
from .plots import STATE_COLORS
from .sections import findings_of, is_loop_report

__all__ = ["COLUMN_DOCS", "TABLES", "describe", "findings_frame", "frames", "render", "style"]

#: Per table, per column: a one-line meaning with its unit.
COLUMN_DOCS: dict[str, dict[str, str]] = {
    "findings": {
        "code": "rule id, e.g. AEX101 (static) or AEX9xx (runtime)",
        "kind": "problem kind, a key of async_expert_ext.model.KINDS",
        "severity": "ordered categorical: info < warning < critical",
        "section": "report part: critical-issues, async-patterns, fastapi, error-handling, concurrency",
        "path": "file path or cell label (In[5])",
        "line": "1-based line number, 0 when unknown",
        "col": "0-based column offset",
        "end_line": "last line of the offending node",
        "symbol": "enclosing function or class, '' at module level",
        "message": "one-line description of this occurrence",
        "explanation": "why it hurts",
        "fix": "what to do instead",
        "fix_example": "before/after code",
        "references": "tuple of documentation URLs",
        "confidence": "high / medium / low",
        "call_chain": "tuple of 'qualname (path:line)' frames down to the blocking call",
        "source": "static or runtime",
        "snippet": "the offending source line",
        "fingerprint": "stable id across edits (kind, path, symbol, normalised line)",
    },
    "tasks": {
        "task_id": "per-report counter in creation order",
        "name": "Task.get_name()",
        "coro": "the coroutine's __qualname__",
        "created_at": "user frame that created the task, 'path:line'",
        "created_path": "path or cell label of created_at",
        "created_line": "line of created_at, 0 when unknown",
        "start_s": "creation time, seconds since the profile started",
        "end_s": "completion time, seconds; NaN while pending",
        "duration_ms": "lifetime in milliseconds; NaN while pending",
        "state": "done | failed | cancelled | pending (at the end of the profile)",
        "exception": "'Type: message' of a failed task, else ''",
        "exception_retrieved": "whether anyone retrieved the exception; <NA> without one",
        "await_stack": "tuple of 'qualname (path:line)', innermost last, for pending tasks",
    },
    "blocking": {
        "start_s": "when the heartbeat became late, seconds since the start",
        "duration_ms": "how long the loop ran no callbacks, milliseconds",
        "location": "'path:line' of the user line that dominated the stack samples",
        "path": "path or cell label of location",
        "line": "line of location",
        "function": "qualname of the function holding that line",
        "snippet": "source text of that line",
        "samples": "stack samples taken during the stall",
        "share": "fraction 0-1 of samples with that line on the stack",
        "task": "task running at the time, '' for a plain callback",
        "stack": "tuple of 'qualname (path:line)', outermost first",
    },
    "lag": {
        "t_s": "seconds since the profile started",
        "lag_ms": "how late the heartbeat ran, milliseconds (0 = on time)",
    },
    "locks": {
        "primitive": "Lock | Semaphore | BoundedSemaphore | Event | Condition | Queue",
        "name": "where the primitive was created, 'path:line'",
        "task": "the waiting task",
        "location": "where it waited, 'path:line'",
        "start_s": "when the wait began, seconds since the start",
        "wait_ms": "time spent waiting, milliseconds; NaN if still waiting",
        "hold_ms": "time the lock was then held, milliseconds; NaN when not a lock",
        "holder": "the task holding the lock while this one waited",
    },
}

#: dtype tables from the model, by table name.
TABLES: dict[str, dict[str, str]] = {
    "findings": FINDING_COLUMNS,
    "tasks": TASK_COLUMNS,
    "blocking": BLOCKING_COLUMNS,
    "lag": LAG_COLUMNS,
    "locks": LOCK_COLUMNS,
}


def describe(table: str) -> Any:
    """The documentation of one table's columns as a DataFrame.

    Args:
        table: ``"findings"``, ``"tasks"``, ``"blocking"``, ``"lag"`` or ``"locks"``.

    Returns:
        DataFrame with string columns ``column``, ``dtype``, ``meaning``; one row per column.

    Raises:
        KeyError: for an unknown table name.
    """
    import pandas as pd

    dtypes = TABLES[table]
    docs = COLUMN_DOCS[table]
    return pd.DataFrame(
        {"column": list(dtypes), "dtype": list(dtypes.values()), "meaning": [docs.get(c, "") for c in dtypes]}
    ).astype("string")


def findings_frame(report: Any) -> Any:
    """One row per finding of a ScanReport or LoopReport (columns: :data:`FINDING_COLUMNS`)."""
    from ..model import findings_frame as _ff

    return _ff(findings_of(report))


def frames(report: Any) -> dict[str, Any]:
    """All the report's DataFrames by table name: ``findings`` always; ``tasks``,
    ``blocking``, ``lag`` and ``locks`` for loop reports."""
    out = {"findings": findings_frame(report)}
    if is_loop_report(report):
        out.update(tasks=report.tasks, blocking=report.blocking, lag=report.lag, locks=report.locks)
    return out


def style(frame: Any, *, threshold_ms: float = 50.0, max_rows: int = 500) -> Any:
    """A pandas Styler colouring a report frame.

    - ``severity``: the row tinted by severity, the cell bold in its colour;
    - ``state`` (tasks): the cell coloured by end state (done green, failed red,
      cancelled orange, pending purple);
    - ``duration_ms`` / ``lag_ms`` / ``wait_ms``: red when at or past ``threshold_ms``.

    Args:
        frame: a DataFrame from :func:`frames` (or a slice of one).
        threshold_ms: the blocking threshold in milliseconds (default 50 ms, the
            profiler's default ``--threshold``).
        max_rows: rows rendered (pandas Styler renders every row it is given).

    Returns:
        ``pandas.io.formats.style.Styler`` over the first ``max_rows`` rows.
    """
    view = frame.head(max_rows)
    styler = view.style
    if "severity" in view.columns:
        def _row(row: Any) -> list[str]:
            bg = SEVERITY_BACKGROUNDS.get(str(row["severity"]), "")
            return [f"background-color: {bg}" if bg else "" for _ in row]

        styler = styler.apply(_row, axis=1)
        styler = styler.map(
            lambda v: f"color: {SEVERITY_COLORS.get(str(v), '')}; font-weight: bold" if str(v) in SEVERITY_COLORS else "",
            subset=["severity"],
        )
    if "state" in view.columns:
        styler = styler.map(
            lambda v: f"color: white; background-color: {STATE_COLORS[str(v)]}" if str(v) in STATE_COLORS else "",
            subset=["state"],
        )
    for col in ("duration_ms", "lag_ms", "wait_ms"):
        if col in view.columns and ("severity" not in view.columns):
            if col == "duration_ms" and "state" in view.columns:
                continue  # a task's lifetime is not a stall
            styler = styler.map(
                lambda v: "color: #b00020; font-weight: bold" if isinstance(v, (int, float)) and v >= threshold_ms else "",
                subset=[col],
            )
    hide = [c for c in ("explanation", "fix_example", "references", "call_chain", "fingerprint", "snippet") if c in view.columns]
    if hide:
        styler = styler.hide(hide, axis="columns")
    return styler


def render(report: Any, *, max_rows: int = 500) -> str:
    """The styled findings frame (and task/blocking frames of loop reports) as HTML."""
    threshold = float((getattr(report, "settings", None) or {}).get("threshold_ms", 50.0))
    parts = []
    for name, df in frames(report).items():
        if len(df) == 0 and name != "findings":
            continue
        parts.append(f"<h4>{name} ({len(df)} rows)</h4>")
        parts.append(style(df, threshold_ms=threshold, max_rows=max_rows).to_html())
    return "".join(parts)
