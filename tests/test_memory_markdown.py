"""render/markdown.py: the five report parts used by the memory file."""
from __future__ import annotations

import pytest

from async_expert_ext.model import Finding, LoopReport, ScanReport
from async_expert_ext.render.markdown import (
    PARTS,
    VERIFICATION,
    code_span,
    render_markdown,
    render_parts,
    table_cell,
)


def _f(code: str, kind: str, severity: str, line: int, **kw) -> Finding:
    base = dict(
        code=code, kind=kind, severity=severity, message=f"{kind} here", path="app.py", line=line,
        symbol="handler", snippet="x = 1", fix=f"fix for {kind}", fix_example=f"# before\nbad_{kind}()\n\n# after\ngood()",
    )
    base.update(kw)
    return Finding(**base)


REPORT = ScanReport(
    findings=[
        _f("AEX101", "blocking-call-in-async", "critical", 5, snippet="time.sleep(1)"),
        _f("AEX101", "blocking-call-in-async", "critical", 9, snippet="time.sleep(2)"),
        _f("AEX1501", "sync-endpoint-threadpool", "warning", 20, section="fastapi", symbol="list_users"),
        _f("AEX802", "async-without-await", "info", 30, fix_example=""),
    ],
    files_scanned=["app.py"],
    target="app.py",
)


def test_five_parts_in_order_with_content() -> None:
    md = render_markdown(REPORT, title="Review of app.py")
    heads = [line for line in md.splitlines() if line.startswith(("## ", "### "))]
    assert heads == [
        "## Review of app.py",
        "### Critical issues",
        "### Async pattern analysis",
        "### FastAPI performance recommendations",
        "### Verification plan",
        "### Best-practice code (before/after)",
    ]
    crit = md.split("### Critical issues")[1].split("###")[0]
    assert "**AEX101** blocking-call-in-async at `app.py:5` in `handler`" in crit
    assert "`app.py:9`" in crit and "app.py:20" not in crit  # only critical ones
    patterns = md.split("### Async pattern analysis")[1].split("###")[0]
    assert "| blocking-call-in-async | 2 | critical | app.py:5, app.py:9 | fix for blocking-call-in-async |" in patterns
    assert "| async-without-await | 1 | info |" in patterns
    fastapi = md.split("### FastAPI performance recommendations")[1].split("###")[0]
    assert "**AEX1501** sync-endpoint-threadpool at `app.py:20` in `list_users`" in fastapi
    verify = md.split("### Verification plan")[1].split("###")[0]
    assert f"**blocking-call-in-async**: {VERIFICATION['blocking-call-in-async'][0]}" in verify
    assert f"**sync-endpoint-threadpool**: {VERIFICATION['sync-endpoint-threadpool'][0]}" in verify
    assert verify.strip().splitlines()[-1].startswith("3. Re-run the same analysis")
    examples = md.split("### Best-practice code (before/after)")[1]
    assert "```python\n# before\nbad_blocking-call-in-async()" in examples
    assert "async-without-await" not in examples  # no fix_example


def test_no_fastapi_part_without_fastapi_findings_and_empty_report() -> None:
    bodies = render_parts(ScanReport())
    assert list(bodies) == ["critical", "patterns", "verification"]
    assert bodies["critical"] == "None."
    assert bodies["patterns"] == "No async problems found."
    assert bodies["verification"].startswith("1. Re-run the same analysis")


def test_notes_tag_findings_and_limit() -> None:
    many = ScanReport(findings=[_f("AEX101", "blocking-call-in-async", "critical", i) for i in range(1, 301)])
    md = render_markdown(many, notes=lambda f: "new" if f.line == 1 else "seen before, first 2026-11-01", max_findings=10)
    crit = md.split("## Critical issues")[1].split("##")[0]
    assert "`app.py:1` in `handler`: blocking-call-in-async here *(new)*" in crit
    assert "`app.py:2` in `handler`: blocking-call-in-async here *(seen before, first 2026-11-01)*" in crit
    assert "- ... and 290 more critical finding(s)." in crit
    assert "| blocking-call-in-async | 300 | critical | app.py:1, app.py:10, app.py:100 (+297) |" in md


def test_loop_report_adds_runtime_measures() -> None:
    report = LoopReport(
        finding_list=[_f("AEX912", "leaked-task", "warning", 7, source="runtime")],
        blocking_records=[{"duration_ms": 812.25, "location": "In[2]:4", "snippet": "time.sleep(0.8)", "function": "main"}],
        lag_records=[{"t_s": 0.5, "lag_ms": 805.0}],
        task_records=[{"name": "Task-3", "coro": "poll", "created_at": "In[2]:7", "state": "pending"}],
    )
    md = render_markdown(report)
    runtime = md.split("## Runtime measures")[1].split("##")[0]
    assert "- worst blocking line: `In[2]:4` in `main` `time.sleep(0.8)`, blocked the loop for 812.2 ms" in runtime
    assert "- max loop lag: 805.0 ms" in runtime
    assert "- leaked tasks: 1\n  - `Task-3 (poll) created at In[2]:7`" in runtime
    assert "**leaked-task**" in md.split("## Verification plan")[1]


def test_helpers_and_errors() -> None:
    assert code_span("a `b` c") == "`` a `b` c ``"
    assert code_span("x\n  y") == "`x y`"
    assert table_cell("a | b\nc") == "a \\| b c"
    with pytest.raises(ValueError, match="unknown markdown part 'summary'"):
        render_parts(REPORT, parts=["summary"])
    assert set(PARTS) == {"critical", "patterns", "fastapi", "verification", "runtime", "examples"}
    for kind, (check, source) in VERIFICATION.items():
        assert check and source.startswith("https://"), kind


def test_fastapi_part_of_the_memory_entry_names_endpoint_findings() -> None:
    """The memory file's FastAPI part picks the same findings as the report's: a
    blocking call the FastAPI refiner placed in an endpoint is one of them."""
    from async_expert_ext.render.markdown import render_parts
    from async_expert_ext.scan.runner import scan_source

    src = "import time\nfrom fastapi import FastAPI\napp = FastAPI()\n@app.get('/report')\nasync def report():\n    time.sleep(1)\n"
    report = scan_source(src, path="app.py", notebook=False, module="app")
    text = render_parts(report, parts=["fastapi"])["fastapi"]
    assert "app.py:6" in text and "No FastAPI" not in text
