"""Every renderer over the same reports: empty, one finding, thousands, loop reports.

Renderers: text, static HTML, markdown (memory engineer's), styled frame and the
widget view. Each must show what the report holds (the rule code and location
of a finding, the blocking line of a loop report), not just run.
"""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from async_expert_ext.model import Finding, LoopReport, ScanReport
from async_expert_ext.render import _samples, frame, html, sections, text
from async_expert_ext.scan.runner import scan_source

ONE_SOURCE = "import time\n\nasync def handler():\n    time.sleep(1)\n"


def _real_loop_report() -> LoopReport:
    from async_expert_ext.loop.session import profile

    async def blocker() -> None:
        time.sleep(0.12)  # noqa: ASYNC251 - the blocking line under test

    async def main() -> None:
        await asyncio.gather(blocker(), asyncio.sleep(0.02))

    async def run() -> LoopReport:
        return await profile(main(), profile=False)

    return asyncio.run(run())


def _reports() -> dict[str, object]:
    return {
        "empty": ScanReport(target="nothing"),
        "one": scan_source(ONE_SOURCE, path="app.py"),
        "thousands": _samples.scan_report(3000),
        "loop": _samples.loop_report(300, blocks=2),
    }


REPORTS = _reports()


def _widget_text(report: object) -> str:
    from async_expert_ext.render.widget import ReportView

    view = ReportView(report)
    view.render_all()
    parts = [view.header.value, view.summary.value, view.head.value]
    parts += [label for label, _ in view.table.options]
    if view.table.options:
        view.select(0)
        parts.append(view.detail.value)
    if view.loop:
        parts.append(view.task_table.value)
        parts += [label for label, _ in view.blocks.options]
        assert bytes(view.timeline.value).startswith(b"\x89PNG")
        assert bytes(view.lag_image.value).startswith(b"\x89PNG")
    return "\n".join(parts).replace("\u00a0", " ")


def _markdown(report: object) -> str:
    markdown = pytest.importorskip("async_expert_ext.render.markdown")
    return markdown.render_markdown(report)


RENDERERS = {
    "text": text.render,
    "html": html.render,
    "markdown": _markdown,
    "frame": frame.render,
    "widget": _widget_text,
}


@pytest.mark.parametrize("renderer", list(RENDERERS))
@pytest.mark.parametrize("name", list(REPORTS))
def test_every_renderer_shows_the_report(renderer: str, name: str) -> None:
    report = REPORTS[name]
    out = RENDERERS[renderer](report)
    assert isinstance(out, str) and out
    if name == "empty":
        assert "AEX" not in out
    elif name == "one":
        f = report.findings[0]
        assert (f.code, f.kind, f.line) == ("AEX101", "blocking-call-in-async", 4)
        assert "AEX101" in out
        assert "app.py" in out
    elif name == "thousands":
        # critical first: the first critical finding is in every output
        first = report.findings[0]
        assert first.severity.value == "critical"
        assert first.message.replace("`", "") in out.replace("`", "").replace("&#x27;", "'") or first.code in out
    elif name == "loop":
        assert "AEX901" in out
        if renderer in ("text", "html", "widget"):
            assert "In[3]:6" in out  # the first blocking event's line


@pytest.mark.parametrize("renderer", ["text", "html", "widget"])
def test_renderers_on_a_real_loop_profile(renderer: str) -> None:
    report = _real_loop_report()
    blocks = [b for b in report.blocking_records if str(b.get("function", "")).endswith("blocker")]
    assert blocks, report.blocking_records
    out = RENDERERS[renderer](report)
    assert f"test_render.py:{blocks[0]['line']}" in out
    assert "time.sleep(0.12)" in out


# -- sections --------------------------------------------------------------


def test_sections_five_parts_in_order_with_kind_specific_content() -> None:
    report = _samples.scan_report(10)
    parts = sections.build_sections(report)
    assert [t for t, _ in parts] == list(sections.SECTION_TITLES)
    critical, analysis, fastapi, verify, practice = (items for _, items in parts)
    assert all(i.severity == "critical" for i in critical)
    assert any("app/module_0000.py:8" in i.text and "AEX101" in i.text for i in critical)
    assert [i.kind for i in analysis] == ["blocking-call-in-async", "cancelled-error-swallowed", "fire-and-forget-task", "sync-endpoint-threadpool"]
    assert fastapi[0].kind == "sync-endpoint-threadpool" and "async def" in fastapi[0].text
    assert {i.kind for i in verify if i.kind} == {i.kind for i in analysis}
    blocking_plan = next(i for i in verify if i.kind == "blocking-call-in-async")
    assert "%%loop_profile" in blocking_plan.text and "pytest.mark.asyncio" in blocking_plan.code
    assert any(i.kind == "sync-endpoint-threadpool" and "gather" in i.code for i in verify)  # a load test
    cancelled = next(i for i in practice if i.kind == "cancelled-error-swallowed")
    assert "# before" in cancelled.code and "raise" in cancelled.code


def test_sections_of_empty_report_say_so() -> None:
    parts = dict(sections.build_sections(ScanReport()))
    assert parts["Critical issues"][0].text == "No critical issues found."
    assert parts["FastAPI performance recommendations"][0].text.startswith("No FastAPI")


def test_sections_cap_long_lists() -> None:
    parts = dict(sections.build_sections(_samples.scan_report(500), max_items=10))
    crit = parts["Critical issues"]
    assert len(crit) == 11 and crit[-1].text.startswith("... and 190 more")


def test_loop_sections_name_the_blocking_line() -> None:
    parts = dict(sections.build_sections(_samples.loop_report(100, blocks=2)))
    analysis = " ".join(i.text for i in parts["Async pattern analysis"])
    assert "blocked 2 time(s)" in analysis and "In[3]:7" in analysis  # worst of the two
    assert "100 task(s) observed" in analysis


def test_excerpt_highlights_the_line() -> None:
    report = scan_source(ONE_SOURCE, path="app.py")
    lines = sections.excerpt(report.sources, report.findings[0], context=2)
    assert [(n, hit) for n, _t, hit in lines] == [(2, False), (3, False), (4, True)]
    assert lines[-1][1].strip() == "time.sleep(1)"


def test_badges_from_extra() -> None:
    f = Finding(code="AEX101", kind="blocking-call-in-async", severity="critical", message="m",
                extra={"confirmed": True, "blocked_count": 3, "total_blocked_s": 0.61, "seen_before": "2026-11-20"})
    assert sections.finding_badges(f) == [
        ("confirmed at runtime", "blocked 3 time(s); 0.61 s in total"),
        ("seen before", "2026-11-20"),
    ]
    assert sections.finding_badges(f.replace(extra={"memory": "new"})) == [("new", "not in the memory file")]


# -- text / html -----------------------------------------------------------


def test_text_caps_and_counts() -> None:
    out = text.render(_samples.scan_report(300), max_findings=20)
    assert "... and 280 more" in out
    assert out.splitlines()[0].startswith("async-expert scan of app: 30 file(s), 120 critical, 120 warning, 60 info")


def test_html_escapes_and_embeds_plots() -> None:
    f = Finding(code="AEX101", kind="blocking-call-in-async", severity="critical", message="<script>alert(1)</script>", path="a.py", line=1)
    out = html.render(ScanReport(findings=[f]))
    assert "<script>alert" not in out and "&lt;script&gt;" in out
    loop = html.render(_samples.loop_report(50))
    assert loop.count("src='data:image/png;base64,") == 2  # lag plot and task timeline
    assert "<script" not in loop  # static: no JavaScript needed


def test_html_finding_detail_has_fix_excerpt_and_chain() -> None:
    report = _samples.scan_report(6)
    f = next(x for x in report.findings if x.call_chain)
    out = html.finding_detail(f, report.sources)
    assert "<span class='hit'>" in out and f"{f.line:>2} &gt;" in out
    assert "Fix:" in out and "# before" in out and "Call chain" in out
    assert all(r in out for r in f.references)


# -- frame -----------------------------------------------------------------


def test_frame_columns_documented_and_styled() -> None:
    from async_expert_ext.model import FINDING_COLUMNS, TASK_COLUMNS

    d = frame.describe("tasks")
    assert list(d["column"]) == list(TASK_COLUMNS)
    assert d.loc[d["column"] == "duration_ms", "meaning"].item().endswith("NaN while pending")
    assert all(frame.COLUMN_DOCS["findings"].get(c) for c in FINDING_COLUMNS)
    styled = frame.style(frame.findings_frame(_samples.scan_report(5))).to_html()
    assert re.search(r"color: #b00020;\s*font-weight: bold", styled)  # critical cells
    tasks = frame.style(_samples.loop_report(20).tasks).to_html()
    assert "background-color: #c62828" in tasks  # failed task


# -- widget ----------------------------------------------------------------


def test_widget_filters_sort_paginate_and_detail() -> None:
    from async_expert_ext.render.widget import ReportView

    report = _samples.scan_report(500)
    view = ReportView(report)
    assert len(view.table.options) == 50 and view.page_label.value.startswith("page 1 / 10")
    view.severity.value = "warning"
    assert all(f.severity.value == "warning" for f in view.rows) and len(view.rows) == 200
    view.kind.value = "cancelled-error-swallowed"
    assert {f.kind for f in view.rows} == {"cancelled-error-swallowed"} and len(view.rows) == 100
    view.file.value = "app/module_0003.py"
    assert len(view.rows) == 10 and {(f.path, f.kind) for f in view.rows} == {("app/module_0003.py", "cancelled-error-swallowed")}
    view.file.value = "(all)"
    view.search.value = "(#13)"
    assert [f.message for f in view.rows] == ["`CancelledError` is caught and not re-raised (#13)"]
    f = view.select(0)
    assert "Re-raise `CancelledError`".replace("`", "") in view.detail.value.replace("<code>", "").replace("</code>", "")
    assert "<span class='hit'>17 &gt;" in view.detail.value  # the except line of SAMPLE_SOURCE
    assert f.line == 17
    view.search.value = ""
    view.kind.value = "(all)"
    view.severity.value = "(all)"
    view.sort_by.value = "file"
    view.descending.value = True
    assert view.visible_rows()[0].path == "app/module_0049.py"
    view._turn(+1)
    assert view.page == 1 and view.visible_rows()[0].path == "app/module_0044.py"
    view._turn(-5)
    assert view.page == 0 and view.prev_button.disabled


def test_widget_shows_confirmed_and_seen_before() -> None:
    from async_expert_ext.render.widget import ReportView

    view = ReportView(_samples.scan_report(14))
    view.search.value = "(#0)"
    view.select(0)
    assert "confirmed at runtime" in view.detail.value and "seen before" in view.detail.value


def test_widget_loop_tabs() -> None:
    from async_expert_ext.render.widget import ReportView

    report = _samples.loop_report(400, blocks=3)
    view = ReportView(report)
    assert view.tab_titles == ["Summary", "Findings (4)", "Tasks (400)", "Loop lag (3 blocks)"]
    assert bytes(view.timeline.value) == b""  # drawn only when the tab opens
    view.tabs.selected_index = 2
    assert bytes(view.timeline.value).startswith(b"\x89PNG")
    view.task_state.value = "failed"
    assert view.task_table.value.count("ValueError: boom") == 40
    view.blocks.value = 2
    assert "300 ms" in view.block_detail.value and "handler (In[3]:8)" in view.block_detail.value


def test_widget_profile_tab_embeds_pyinstrument() -> None:
    from pyinstrument import Profiler

    from async_expert_ext.render.widget import ReportView

    profiler = Profiler()
    profiler.start()
    sum(i * i for i in range(20000))
    profiler.stop()
    report = _samples.loop_report(10)
    report.profile = profiler.last_session
    view = ReportView(report)
    assert view.tab_titles[-1] == "Profile"
    view.tabs.selected_index = len(view.tab_titles) - 1
    box = view.tabs.children[-1]
    assert box.value.startswith("<iframe srcdoc=") and "pyinstrument" in box.value


def test_mime_bundle_has_widget_html_and_text() -> None:
    from async_expert_ext.render import mime_bundle

    bundle, view = mime_bundle(scan_source(ONE_SOURCE, path="app.py"), widget=True)
    assert set(bundle) == {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.widget.model_id
    assert "app.py:4" in bundle["text/plain"] and "app.py:4" in bundle["text/html"]
    bundle, view = mime_bundle(ScanReport(), widget=False)
    assert view is None and set(bundle) == {"text/plain", "text/html"}


# -- progress --------------------------------------------------------------


class _FakeBar:
    made: list[_FakeBar] = []

    def __init__(self, total: int, desc: str, unit: str, leave: bool) -> None:
        self.total, self.n, self.closed = total, 0, False
        _FakeBar.made.append(self)

    def update(self, n: int) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def test_progress_only_for_big_scans(tmp_path) -> None:
    from async_expert_ext.render.progress import make_progress
    from async_expert_ext.scan.runner import scan_paths

    _FakeBar.made.clear()
    for i in range(40):
        (tmp_path / f"m{i}.py").write_text("import time\nasync def f():\n    time.sleep(1)\n")
    report = scan_paths([str(tmp_path)], progress=make_progress(factory=_FakeBar))
    assert len(report.files_scanned) == 40
    assert len(_FakeBar.made) == 1 and _FakeBar.made[0].n == 40 and _FakeBar.made[0].closed
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.py").write_text("x = 1\n")
    scan_paths([str(small)], progress=make_progress(factory=_FakeBar))
    assert len(_FakeBar.made) == 1  # no bar for one file


class _Recall:
    """The memory file's Recall interface: status_of(finding) -> str."""

    def __init__(self, seen: dict[str, str]) -> None:
        self.seen = seen

    def status_of(self, f: Finding) -> str:
        return f"seen before (first {self.seen[f.fingerprint]})" if f.fingerprint in self.seen else "new"


def test_memory_recall_marks_findings_in_every_renderer() -> None:
    from async_expert_ext.render import mime_bundle

    report = scan_source(ONE_SOURCE + "\nasync def other():\n    time.sleep(2)\n", path="app.py")
    first, second = (f for f in report.findings if f.code == "AEX101")
    recall = _Recall({first.fingerprint: "2026-11-20"})
    bundle, view = mime_bundle(report, widget=True, memory=recall)
    assert "seen before: first 2026-11-20" in bundle["text/plain"]
    assert "new: not in the memory file" in bundle["text/plain"]
    assert "seen before: first 2026-11-20" in bundle["text/html"]
    view.select([f.line for f in view.visible_rows()].index(first.line))
    assert "seen before: first 2026-11-20" in view.detail.value
    view.select([f.line for f in view.visible_rows()].index(second.line))
    assert "new: not in the memory file" in view.detail.value


def test_confirmed_badge_uses_the_join_cost_text() -> None:
    f = Finding(code="AEX101", kind="blocking-call-in-async", severity="critical", message="m",
                extra={"confirmed": True, "runtime": "blocked the loop 3 times for 0.61 s in total", "blocked_ms": 610.0})
    assert sections.finding_badges(f) == [("confirmed at runtime", "blocked the loop 3 times for 0.61 s in total")]
    runtime_only = f.replace(extra={"static": "not flagged by the static scan"})
    assert sections.finding_badges(runtime_only) == [("runtime only", "not flagged by the static scan")]


def test_widget_locks_callbacks_and_logs_tabs() -> None:
    from async_expert_ext.render.widget import ReportView

    report = _samples.loop_report(20)
    report.lock_records = [
        {"primitive": "Lock", "name": "In[3]:2", "task": f"Task-{i}", "location": "In[3]:7", "start_s": 0.1 * i,
         "wait_ms": float(10 * i), "hold_ms": 5.0, "holder": "Task-1"}
        for i in range(1, 61)
    ]
    report.log_records = [{"t_s": 0.5, "source": "exception-handler", "level": "ERROR", "logger": "asyncio",
                           "message": "Task exception was never retrieved", "location": "In[3]:9"}]
    view = ReportView(report)
    assert view.tab_titles[4:] == ["Locks (60)", "Callbacks & logs (0/1)"]
    locks = view.tabs.children[4].children[1].value
    assert locks.index("Task-60") < locks.index("Task-59")  # longest wait first
    assert "Task-10<" not in locks  # page 2
    assert "Task exception was never retrieved" in view.tabs.children[5].children[3].children[1].value


def test_static_outputs_list_lock_waits_and_logs() -> None:
    report = _samples.loop_report(10)
    report.lock_records = [{"primitive": "Lock", "name": "In[3]:2", "task": "Task-7", "location": "In[3]:7",
                            "start_s": 0.1, "wait_ms": 412.0, "hold_ms": 5.0, "holder": "Task-1"}]
    report.log_records = [{"t_s": 0.5, "source": "exception-handler", "level": "ERROR", "logger": "asyncio",
                           "message": "Task exception was never retrieved", "location": "In[3]:9"}]
    plain = text.render(report)
    assert "412 ms  Lock created at In[3]:2: Task-7 waited at In[3]:7, held by Task-1" in plain
    assert "ERROR exception-handler In[3]:9: Task exception was never retrieved" in plain
    page = html.render(report, plots=False)
    assert "<h4>Lock and queue waits (1)</h4>" in page and "<td>412</td>" in page
    assert "<h4>Logs (1)</h4>" in page


def test_text_stacks_show_the_users_frames_and_fold_library_ones() -> None:
    import sysconfig

    from async_expert_ext.render.text import user_frames

    stdlib = sysconfig.get_paths()["stdlib"]
    stack = [
        "_run_module_as_main (<frozen runpy>:198)",
        f"Handle._run ({stdlib}/asyncio/events.py:80)",
        "blocker (In[3]:5)",
        "helper (/srv/app/helpers.py:3)",
    ]
    assert user_frames(stack) == ["... 2 library frame(s)", "blocker (In[3]:5)", "helper (/srv/app/helpers.py:3)"]


def test_fastapi_part_lists_endpoint_findings_of_the_core_rules() -> None:
    """A blocking call in an `async def` endpoint is a core finding with route context:
    the FastAPI recommendations part names the route instead of saying there is nothing."""
    from async_expert_ext.render.sections import build_sections
    from async_expert_ext.scan.runner import scan_source

    src = "import time\nfrom fastapi import FastAPI\napp = FastAPI()\n@app.get('/report')\nasync def report():\n    time.sleep(1)\n"
    report = scan_source(src, path="app.py", notebook=False, module="app")
    parts = dict(build_sections(report))
    fastapi = [i.text for i in parts["FastAPI performance recommendations"]]
    assert fastapi and fastapi[0].startswith("`GET /report` (endpoint): ")


def test_scanned_text_counts_files_and_cells() -> None:
    from async_expert_ext.model import ScanReport

    assert ScanReport(files_scanned=["a.py", "b.py"]).scanned_text() == "2 file(s)"
    assert ScanReport(files_scanned=["In[1]", "In[2]"]).scanned_text() == "2 cell(s)"
    assert ScanReport(files_scanned=["a.py", "nb.ipynb[cell 3]"]).scanned_text() == "1 file(s) and 1 cell(s)"
    assert ScanReport().scanned_text() == "0 file(s)"


def test_verification_plan_uses_the_profiled_threshold() -> None:
    from async_expert_ext.model import Finding, LoopReport
    from async_expert_ext.render.sections import build_sections

    f = Finding(code="AEX901", kind="blocking-call-in-async", severity="critical", message="m", source="runtime")
    plan = dict(build_sections(LoopReport(finding_list=[f], settings={"threshold_ms": 30.0})))["Verification plan"]
    assert "--threshold 30`" in plan[0].text and "--threshold 50" not in plan[0].text
    plan = dict(build_sections(LoopReport(finding_list=[f])))["Verification plan"]
    assert "--threshold 50`" in plan[0].text


def test_pattern_analysis_explains_each_rule_of_a_kind() -> None:
    """A kind groups several rules (a thread sleep and a DB call): the analysis gives
    each one's own explanation, not the first finding's for all."""
    from async_expert_ext.render.sections import build_sections
    from async_expert_ext.scan.runner import scan_source

    src = "import time, sqlite3\nasync def f(c: sqlite3.Connection):\n    c.execute('x')\n    time.sleep(1)\n"
    report = scan_source(src, path="m.py", notebook=False, module="m")
    item = next(i for i in dict(build_sections(report))["Async pattern analysis"] if i.kind == "blocking-call-in-async")
    assert any(d.startswith("time.sleep() suspends the whole thread") for d in item.details)
    assert any(d.startswith("A synchronous DB driver") for d in item.details)


def test_also_static_badge() -> None:
    from async_expert_ext.model import Finding
    from async_expert_ext.render import sections

    f = Finding(code="AEX911", kind="task-exception-never-retrieved", severity="critical", message="m", source="runtime",
                extra={"static": "the static scan flagged this line as fire-and-forget-task (AEX210)"})
    assert sections.finding_badges(f) == [("also static", "the static scan flagged this line as fire-and-forget-task (AEX210)")]
