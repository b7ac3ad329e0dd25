"""The report widget in a real JupyterLab, driven in Debian's chromium (headless).

Starts JupyterLab on 127.0.0.1 (free port, random token, a temporary root with
one notebook), opens the notebook with Playwright, runs all cells and checks:

- ``%%async_scan`` shows the findings table with one row per finding (a critical
  blocking call and a warning fire-and-forget task);
- filtering to ``critical`` leaves only the critical row;
- selecting a row shows that finding's fix in the detail pane;
- a ``%%loop_profile`` cell that blocks shows the loop tabs (when the magic exists).

Screenshots go to ``test-artifacts/browser/`` (gitignored). Never downloads a
browser: ``/usr/bin/chromium`` from Debian (``apt-get install -y chromium``).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--disable-dev-shm-usage",
]

SCAN_CELL = """%%async_scan --no-memory
import asyncio, time

async def audit():
    await asyncio.sleep(1)

async def handler():
    time.sleep(0.5)
    asyncio.create_task(audit())
"""

LOOP_CELL = """%%loop_profile --no-memory
import asyncio, time

async def blocker():
    time.sleep(0.3)

await asyncio.gather(blocker(), asyncio.sleep(0.05))
"""


def _loop_magic_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("async_expert_ext.magics.profile") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(cells: list[str]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture
def jupyterlab(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    root = tmp_path / "root"
    root.mkdir()
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        (tmp_path / sub).mkdir()
        env[name] = str(tmp_path / sub)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    env["ASYNC_EXPERT_CACHE_DIR"] = str(tmp_path / "cache")
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.extension_manager=readonly",
        ] + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        shutil.copy(tmp_path / "jupyterlab.log", ARTIFACTS / "jupyterlab.log") if ARTIFACTS.exists() else None


def _open(page, base: str, token: str, name: str) -> None:
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    _wait_for_kernel(page)
    no_news = page.locator(".jp-toast-button", has_text="No")
    if no_news.count():
        no_news.first.click()


def _tab(view, title: str):
    """The ipywidgets Tab header whose label starts with ``title``."""
    return view.locator(".widget-tab .lm-TabBar-tab", has_text=title).first


def _toggle(view, label: str) -> None:
    """Click a ToggleButtons option and wait until the frontend shows it active."""
    import re

    from playwright.sync_api import expect

    button = view.locator("button.widget-toggle-button", has_text=label).first
    button.scroll_into_view_if_needed()
    button.click()
    expect(button).to_have_class(re.compile(r"mod-active"), timeout=30_000)


def _wait_for_kernel(page, timeout: float = 90.0) -> None:
    """Accept the "Select Kernel" dialog if JupyterLab shows it, then wait until the
    status bar says the kernel is connected and idle."""
    deadline = time.monotonic() + timeout
    status = page.locator(".jp-StatusBar-Widget", has_text="| Idle")
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and dialog.first.is_visible():
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
        elif status.count():
            return
        page.wait_for_timeout(500)
    raise AssertionError("the notebook's kernel did not become idle")


def _run_all(page, timeout: float = 60.0) -> None:
    """Run > Run All Cells, again if the first request was dropped (kernel not yet connected)."""
    first_prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        for _ in range(30):
            if any(ch.isdigit() or ch == "*" for ch in first_prompt.inner_text()):
                return
            page.wait_for_timeout(500)
    raise AssertionError("Run All Cells did not start the cells")


def test_report_widget_in_jupyterlab(jupyterlab):
    from playwright.sync_api import expect, sync_playwright

    base, token, root = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cells = ["%load_ext async_expert_ext", SCAN_CELL]
    if _loop_magic_available():
        cells.append(LOOP_CELL)  # the magic shows its report view itself
    (root / "report.ipynb").write_text(json.dumps(_notebook(cells)))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            _open(page, base, token, "report.ipynb")
            _run_all(page)

            # --- the scan report widget ---
            # every cell's output first, so no later output shifts the layout under a click
            views = 2 if _loop_magic_available() else 1
            expect(page.locator(".aex-report-view")).to_have_count(views, timeout=120_000)
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=60_000)
            view = page.locator(".aex-report-view").first
            view.scroll_into_view_if_needed()
            expect(view).to_be_visible(timeout=30_000)
            _tab(view, "Findings").click()
            rows = view.locator(".aex-table select option")
            expect(rows.first).to_be_attached(timeout=30_000)
            texts = [t.replace("\u00a0", " ") for t in rows.all_inner_texts()]
            total = len(texts)
            # the blocking call (line 8 of the cell, the magic line being 1) and the dropped task (line 9)
            assert any(t.startswith("critical") and "AEX101" in t and "In[2]:8" in t for t in texts), texts
            assert any(t.startswith("warning") and "AEX210" in t and "In[2]:9" in t for t in texts), texts
            critical = [t for t in texts if t.startswith("critical")]
            assert 0 < len(critical) < total, texts
            view.screenshot(path=str(ARTIFACTS / "01_findings.png"))

            # filter to critical: only the blocking call stays
            _toggle(view, "critical")
            expect(rows).to_have_count(len(critical), timeout=30_000)
            filtered = [t.replace("\u00a0", " ") for t in rows.all_inner_texts()]
            assert all(t.startswith("critical") for t in filtered), filtered
            assert any("AEX101" in t for t in filtered), filtered
            view.screenshot(path=str(ARTIFACTS / "02_filtered_critical.png"))

            # back to all, select the warning row: the detail pane shows its fix
            _toggle(view, "(all)")
            expect(rows).to_have_count(total, timeout=30_000)
            warning_index = next(i for i, t in enumerate(rows.all_inner_texts()) if "AEX210" in t)
            view.locator(".aex-table select").select_option(index=warning_index)
            detail = view.locator(".aex-detail-pane")
            expect(detail).to_contain_text("Fix:", timeout=30_000)
            expect(detail).to_contain_text("fire-and-forget-task")
            expect(detail).to_contain_text("Keep a strong reference")
            expect(detail.locator(".hit")).to_contain_text("asyncio.create_task(audit())")
            view.screenshot(path=str(ARTIFACTS / "03_selected_fix.png"))

            # the Summary tab lists the five parts
            _tab(view, "Summary").click()
            for title in ("Critical issues", "Async pattern analysis", "FastAPI performance recommendations",
                          "Verification plan", "Best-practice implementation"):
                expect(view).to_contain_text(title)
            view.screenshot(path=str(ARTIFACTS / "04_summary.png"))

            if _loop_magic_available():
                loop_view = page.locator(".aex-report-view").last
                loop_view.scroll_into_view_if_needed()
                expect(loop_view).to_be_visible(timeout=90_000)
                _tab(loop_view, "Loop lag").click()
                blocks = loop_view.locator(".aex-blocks select option")
                expect(blocks.first).to_be_visible(timeout=30_000)
                events = [t.replace("\u00a0", " ") for t in blocks.all_inner_texts()]
                # the blocking line of the cell: time.sleep(0.3) on line 5 (the magic line is 1)
                sleep_index = next((i for i, t in enumerate(events) if "In[3]:5" in t and "time.sleep(0.3)" in t), None)
                assert sleep_index is not None, events
                loop_view.locator(".aex-blocks select").select_option(index=sleep_index)
                block_detail = loop_view.locator(".aex-detail-pane", has_text="the loop was blocked")
                expect(block_detail).to_contain_text("Stack", timeout=30_000)
                expect(block_detail).to_contain_text("blocker")
                expect(loop_view.locator("img.aex-lag-image")).to_be_visible(timeout=30_000)
                loop_view.screenshot(path=str(ARTIFACTS / "05_loop_lag.png"))
                _tab(loop_view, "Tasks").click()
                expect(loop_view).to_contain_text("blocker", timeout=30_000)
                expect(loop_view.locator("img.aex-timeline")).to_be_visible(timeout=30_000)
                loop_view.screenshot(path=str(ARTIFACTS / "06_loop_tasks.png"))
                _tab(loop_view, "Profile").click()
                frame = loop_view.locator("iframe").first
                expect(frame).to_be_visible(timeout=30_000)
                # the pyinstrument page runs inside the sandboxed iframe and names the blocking function
                expect(loop_view.frame_locator("iframe").first.locator("body")).to_contain_text("blocker", timeout=30_000)
                loop_view.screenshot(path=str(ARTIFACTS / "07_loop_profile.png"))
            page.screenshot(path=str(ARTIFACTS / "00_notebook.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            (ARTIFACTS / "failure.html").write_text(page.content())
            raise
        finally:
            browser.close()


def test_large_reports_render_in_browser(jupyterlab):
    """5,000 findings and 10,000 tasks: time from running the cell to the first
    page of rows on screen, and of a filter click (printed and saved to
    test-artifacts/browser/timings.json; speed targets live in bench/, not here)."""
    from playwright.sync_api import expect, sync_playwright

    base, token, root = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cells = [
        "from async_expert_ext.render import _samples, display_report\n"
        "scan = _samples.scan_report(5000)\nloop = _samples.loop_report(10000)",
        "display_report(scan)",
        "display_report(loop)",
    ]
    (root / "large.ipynb").write_text(json.dumps(_notebook(cells)))
    timings: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            _open(page, base, token, "large.ipynb")
            cells_loc = page.locator(".jp-Notebook .jp-Cell")
            cells_loc.nth(0).click()
            page.keyboard.press("Shift+Enter")
            expect(cells_loc.nth(0).locator(".jp-InputPrompt")).to_contain_text("1", timeout=60_000)

            t0 = time.perf_counter()
            page.keyboard.press("Shift+Enter")  # the 5,000-finding report
            view = page.locator(".aex-report-view").first
            _tab(view, "Findings (5000)").click()
            expect(view.locator(".aex-table select option")).to_have_count(50, timeout=60_000)
            timings["5000 findings: run cell to first page shown (s)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            _toggle(view, "critical")
            expect(view).to_contain_text("2000 of 5000 row(s)", timeout=30_000)
            timings["5000 findings: filter to critical (s)"] = time.perf_counter() - t0
            view.screenshot(path=str(ARTIFACTS / "10_5000_findings.png"))

            cells_loc.nth(2).locator(".jp-InputPrompt").click()  # focus left the notebook for the widget
            t0 = time.perf_counter()
            page.keyboard.press("Shift+Enter")  # the 10,000-task report
            loop_view = page.locator(".aex-report-view").nth(1)
            expect(_tab(loop_view, "Tasks (10000)")).to_be_visible(timeout=60_000)
            timings["10000 tasks: run cell to report view shown (s)"] = time.perf_counter() - t0
            _tab(loop_view, "Tasks (10000)").click()
            expect(loop_view.locator("img.aex-timeline")).to_be_visible(timeout=60_000)
            expect(loop_view.locator("table.aex-tasks tbody tr")).to_have_count(50, timeout=60_000)
            timings["10000 tasks: run cell to Tasks tab with timeline and first page (s)"] = time.perf_counter() - t0
            loop_view.screenshot(path=str(ARTIFACTS / "11_10000_tasks.png"))
        finally:
            browser.close()
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2))
    print(json.dumps(timings, indent=2))


def test_exported_html_reads_without_a_kernel(tmp_path):
    """nbconvert's HTML export of an executed notebook saved without widget state
    (JupyterLab's default) falls back to the static report: findings, five parts and both plots, which
    chromium decodes from their data URIs."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from playwright.sync_api import expect, sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nb = nbformat.from_dict(_notebook([
        "%load_ext async_expert_ext",
        SCAN_CELL,
        "from async_expert_ext.render import _samples, display_report\ndisplay_report(_samples.loop_report(200, blocks=2))",
    ]))
    env_cache = str(tmp_path / "cache")
    os.environ.setdefault("ASYNC_EXPERT_CACHE_DIR", env_cache)
    # JupyterLab saves no widget state by default; nbconvert then shows the text/html fallback
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    body, _ = HTMLExporter().from_notebook_node(nb)
    out = ARTIFACTS / "export.html"
    out.write_text(body)
    assert "In[2]:8" in body and "AEX101" in body and "AEX210" in body
    assert "Best-practice implementation" in body
    assert body.count("data:image/png;base64,") >= 2
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(out.as_uri())
            report = page.locator(".aex-report").first
            expect(report).to_contain_text("Critical issues", timeout=30_000)
            expect(report.locator("table.aex-findings")).to_contain_text("AEX101")
            for alt in ("loop lag over time", "task timeline"):
                img = page.locator(f"img[alt='{alt}']").first
                img.scroll_into_view_if_needed()
                assert img.evaluate("i => i.complete && i.naturalWidth") > 100, alt
            # a finding's details open without JavaScript
            page.locator("table.aex-findings details summary").first.click()
            expect(page.locator("table.aex-findings details[open]").first).to_contain_text("Fix:")
            page.screenshot(path=str(ARTIFACTS / "20_export.png"), full_page=False)
            page.locator("img[alt='task timeline']").first.screenshot(path=str(ARTIFACTS / "21_export_timeline.png"))
        finally:
            browser.close()
