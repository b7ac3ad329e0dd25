"""The workshop notebooks (``notebooks/*.ipynb``) run top to bottom and show what they teach.

Each notebook is copied to a temporary folder (so its memory file, ``.claude/sub_agents_memory.md``,
lands there and not in the repository) and executed in a fresh kernel with nbclient. A cell may
raise only when it is tagged ``raises-exception`` (nbclient's convention, the same as
``jupyter nbconvert --execute``), so an unexpected error fails the test.

The checks read two things:

- what a user sees: the text of the cell outputs (``text/plain`` of the displayed reports and
  the printed lines), e.g. ``CRITICAL In[4]:8 [AEX101 blocking-call-in-async, confirmed]``;
- the JSON line printed by the last cell (tagged ``summary``): for each report the notebook
  keeps (``-o NAME``), its findings as ``[code, kind, path, line]`` and, for loop profiles,
  :meth:`~async_expert_ext.model.LoopReport.summary`.

Expected locations are never hard-coded: the cell label (``In[n]``) and the line are found
from the executed notebook by the source text they point at, so editing a notebook keeps
the test honest. Runtime numbers are compared before/after (the fix must help), never
against absolute timings.

The structural tests (outputs stripped, every notebook tested, an exercise with a hint
in each) need no kernel.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: The notebooks and the test checking each (every .ipynb must be listed).
EXPECTED = {
    "00_quickstart.ipynb",
    "01_blocking_the_loop.ipynb",
    "02_tasks_and_cancellation.ipynb",
    "03_locks_timeouts_and_deadlocks.ipynb",
    "04_fastapi.ipynb",
    "05_notebook_pitfalls.ipynb",
}


def _read(name: str) -> Any:
    import nbformat

    return nbformat.read(NOTEBOOKS / name, as_version=4)


# ---------------------------------------------------------------------------
# no kernel: the repository copies
# ---------------------------------------------------------------------------
def test_every_notebook_is_tested() -> None:
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_stripped(name: str) -> None:
    """Outputs are stripped in the repository: no outputs, no execution counts, no widget state."""
    import nbformat

    nb = _read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{name} cell {i} has outputs"
        assert cell.execution_count is None, f"{name} cell {i} has execution_count {cell.execution_count}"
    assert "widgets" not in nb.metadata, f"{name} stores widget state"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_has_exercise_and_summary(name: str) -> None:
    """Each notebook has an exercise whose answer is folded away, and the summary cell the
    kernel tests read (the last cell, tagged ``summary``)."""
    nb = _read(name)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Exercise" in markdown
    assert "<details>" in markdown and "</details>" in markdown
    last = nb.cells[-1]
    assert last.cell_type == "code" and "summary" in last.metadata.get("tags", [])
    assert any(c.source.strip() == "%load_ext async_expert_ext" for c in nb.cells[:3])


# ---------------------------------------------------------------------------
# kernel: execute and read
# ---------------------------------------------------------------------------
class Run:
    """An executed notebook: cell outputs, cell labels and the summary JSON."""

    def __init__(self, nb: Any, folder: Path) -> None:
        self.nb = nb
        self.folder = folder
        self.code = [c for c in nb.cells if c.cell_type == "code"]
        last = self.text(self.code[-1])
        line = next((ln for ln in last.splitlines() if ln.startswith("{")), None)
        assert line is not None, f"no summary JSON in the last cell: {last[:500]!r}"
        self.reports: dict[str, dict[str, Any]] = json.loads(line)

    @staticmethod
    def text(cell: Any) -> str:
        """Streams and the text/plain of every displayed output of ``cell``."""
        parts = []
        for out in cell.outputs:
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                parts.append(str(out.data.get("text/plain", "")))
                parts.append(str(out.data.get("text/markdown", "")))
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
        return "\n".join(parts)

    def cell(self, marker: str, nth: int = 0) -> Any:
        """The ``nth`` code cell whose source contains ``marker``."""
        found = [c for c in self.code if marker in c.source]
        assert len(found) > nth, f"no code cell #{nth} containing {marker!r}"
        return found[nth]

    def at(self, marker: str, nth: int = 0, *, line_marker: str | None = None) -> tuple[str, int]:
        """``("In[n]", line)`` of the line holding ``line_marker`` (default ``marker``) in
        the ``nth`` code cell containing ``marker``: the label the tool gives that line."""
        cell = self.cell(marker, nth)
        needle = line_marker or marker
        lines = cell.source.split("\n")
        idx = next(i for i, ln in enumerate(lines) if needle in ln)
        return f"In[{cell.execution_count}]", idx + 1

    def output(self, marker: str, nth: int = 0) -> str:
        return self.text(self.cell(marker, nth))

    def findings(self, report: str) -> list[tuple[str, str, str, int]]:
        return [tuple(f) for f in self.reports[report]["findings"]]  # type: ignore[misc]

    def summary(self, report: str) -> dict[str, Any]:
        out = self.reports[report]["summary"]
        assert out is not None, f"{report} is not a loop profile"
        return out


def _has(findings: Iterable[tuple[str, str, str, int]], code: str | None, kind: str, path: str, line: int) -> bool:
    """True when a finding of ``kind`` (and ``code`` unless None) is at ``path:line``;
    ``path`` matches a whole label or the end of a file path."""
    for c, k, p, ln in findings:
        if k == kind and (code is None or c == code) and ln == line and (p == path or p.endswith("/" + path)):
            return True
    return False


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in {text[:800]!r}"
    return float(m.group(1))


@pytest.fixture
def run_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Execute one notebook in a temp copy of notebooks/; return a :class:`Run`."""
    from kernel_helpers import KERNEL_NAME, ensure_kernelspec
    from nbclient import NotebookClient

    ensure_kernelspec()
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns(".claude", "__pycache__", ".ipynb_checkpoints"))
    # the notebooks use the default memory file (.claude/ under the project root, here the copy);
    # conftest points ASYNC_EXPERT_MEMORY elsewhere for the other tests
    monkeypatch.delenv("ASYNC_EXPERT_MEMORY", raising=False)
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")

    def run(name: str) -> Run:
        import nbformat

        nb = nbformat.read(folder / name, as_version=4)
        client = NotebookClient(
            nb,
            kernel_name=KERNEL_NAME,
            timeout=90,
            startup_timeout=60,
            allow_errors=False,  # only cells tagged raises-exception may fail
            resources={"metadata": {"path": str(folder)}},
        )
        repo_memory = (NOTEBOOKS / ".claude").exists()
        client.execute()
        # the memory file went to the copy, not to the repository's notebooks/
        assert (NOTEBOOKS / ".claude").exists() == repo_memory
        return Run(nb, folder)

    return run


@pytest.mark.kernel
def test_00_quickstart(run_notebook: Any) -> None:
    run = run_notebook("00_quickstart.ipynb")
    # 1. the installed starlette, scanned from source: Request.json's json.loads is reported
    import starlette.requests

    src = Path(starlette.requests.__file__).read_text().split("\n")
    json_line = next(i + 1 for i, ln in enumerate(src) if "json.loads(" in ln)
    assert _has(run.findings("starlette_scan"), "AEX803", "cpu-bound-in-async", "starlette/requests.py", json_line)
    assert f"starlette/requests.py:{json_line} [AEX803 cpu-bound-in-async]" in run.output("%async_scan starlette")
    # 2. the blocking endpoint, profiled: named at its line, confirmed by the static scan
    label, line = run.at("time.sleep(0.15)")
    assert _has(run.findings("before"), "AEX101", "blocking-call-in-async", label, line)
    shown = run.output("%%loop_profile -o before")
    assert f"CRITICAL {label}:{line} [AEX101 blocking-call-in-async, confirmed]" in shown
    before, after = run.summary("before"), run.summary("after")
    assert before["worst_block_at"] == f"{label}:{line}"
    assert before["blocked_ms"] > 300  # three 150 ms sleeps
    # the fix: no finding left, the loop stays free, pings answered faster
    assert not any(k == "blocking-call-in-async" for _, k, _, _ in run.findings("after"))
    assert after["blocked_ms"] < before["blocked_ms"] / 3
    slow_before = _number(r"slowest /ping: (\d+) ms", shown)
    slow_after = _number(r"slowest /ping: (\d+) ms", run.output("%%loop_profile -o after"))
    assert slow_after < slow_before
    # 3. the memory file: in the notebook's folder, read back by %async_memory
    memory = run.folder / ".claude" / "sub_agents_memory.md"
    assert memory.is_file()
    listing = run.output("%async_memory", 0)
    assert str(memory) in listing
    assert f"%%loop_profile · {before['target']}" in listing
    assert f"CRITICAL {label}:{line} blocking-call-in-async" in listing
    assert "blocking-call-in-async:" in run.output("%async_memory --stats")


@pytest.mark.kernel
def test_01_blocking_the_loop(run_notebook: Any) -> None:
    run = run_notebook("01_blocking_the_loop.ipynb")
    bug = "# 1. sleep"
    expected = [
        ("AEX101", "blocking-call-in-async", "time.sleep(0.1)"),
        ("AEX102", "blocking-call-in-async", "urllib.request.urlopen("),
        ("AEX104", "blocking-call-in-async", "with open(CONFIG_PATH)"),
        ("AEX130", "cpu-bound-in-async", "hashlib.pbkdf2_hmac("),
        ("AEX803", "cpu-bound-in-async", "return len(json.loads(raw))"),
    ]
    scan_text = run.output("%async_scan -o scan_before")
    for code, kind, text in expected:
        label, line = run.at(bug, line_marker=text)
        assert _has(run.findings("scan_before"), code, kind, label, line), (code, label, line)
        assert f"{label}:{line} [{code} {kind}]" in scan_text
    before, after = run.summary("before"), run.summary("after")
    label, _ = run.at(bug)
    # at runtime: stalls named inside the helpers' cell, static findings confirmed
    assert before["blocking_events"] >= 1 and before["blocked_ms"] > 300
    assert any(p == label and k in ("blocking-call-in-async", "cpu-bound-in-async") for _, k, p, _ in run.findings("before"))
    assert "confirmed" in run.output("%%loop_profile -o before")
    # the fix: nothing blocks, the loop lag collapses
    fix_label, _ = run.at("process_pool = concurrent.futures.ProcessPoolExecutor")
    assert not any(p in (label, fix_label) for _, _, p, _ in run.findings("after")), run.findings("after")
    assert after["blocked_ms"] < before["blocked_ms"] / 3
    assert after["max_lag_ms"] < before["max_lag_ms"] / 3
    # re-scan: every finding left is in the old cell, none in the fixed one
    assert {p for _, _, p, _ in run.findings("scan_after")} == {label}
    per_cell = run.output("%async_scan -q -o scan_after")
    assert label in per_cell and fix_label not in per_cell


@pytest.mark.kernel
def test_02_tasks_and_cancellation(run_notebook: Any) -> None:
    run = run_notebook("02_tasks_and_cancellation.ipynb")
    bug = "# fire-and-forget"
    email = run.at(bug, line_marker="asyncio.create_task(send_welcome_email")
    poller = run.at(bug, line_marker="asyncio.create_task(poll_inbox")
    except_line = run.at(bug, line_marker="except asyncio.CancelledError:")
    for where in (email, poller):
        assert _has(run.findings("scan_before"), "AEX210", "fire-and-forget-task", *where)
    before = run.findings("before")
    assert _has(before, "AEX911", "task-exception-never-retrieved", *email)
    assert _has(before, "AEX912", "leaked-task", *poller)
    assert _has(before, None, "cancelled-error-swallowed", *except_line)
    shown = run.output("%%loop_profile --cancel-leaked -o before")
    assert f"{email[0]}:{email[1]} [AEX911 task-exception-never-retrieved" in shown
    assert "ValueError: cannot deliver to bob@invalid" in shown
    assert "--cancel-leaked: cancelled 2 task(s)" in shown
    assert "indexer cancelled? False" in shown
    assert run.summary("before")["tasks_by_state"].get("failed") == 1
    # TaskGroup: the failure reaches the caller, nothing leaks, cancellation propagates
    assert run.findings("after") == []
    fixed = run.output("%%loop_profile -o after")
    assert "sign-up failed: cannot deliver to bob@invalid" in fixed
    assert "indexer cancelled? True" in fixed
    assert run.summary("after")["tasks_by_state"].get("pending", 0) == 0
    assert {p for _, _, p, _ in run.findings("scan_after")} == {email[0]}


@pytest.mark.kernel
def test_03_locks_timeouts_and_deadlocks(run_notebook: Any) -> None:
    run = run_notebook("03_locks_timeouts_and_deadlocks.ipynb")
    # 1. lock held across the slow refresh
    held = run.at("self.token = await self.fetch_token()", line_marker="async with self.lock:")
    assert _has(run.findings("contended"), "AEX930", "lock-held-across-await", *held)
    assert f"{held[0]}:{held[1]} [AEX930 lock-held-across-await" in run.output("%%loop_profile -o contended")
    assert run.findings("uncontended") == []
    slow = _number(r"the slowest waited (\d+) ms", run.output("%%loop_profile -o contended"))
    fast = _number(r"the slowest waited (\d+) ms", run.output("%%loop_profile -o uncontended"))
    assert slow >= 150 and fast < slow / 3
    # 2. threading lock, scanned without running (the %%async_scan line is line 1)
    tl = run.at("%%async_scan -o threading_scan", line_marker="with stats_lock:")
    assert _has(run.findings("threading_scan"), "AEX401", "sync-lock-in-async", *tl)
    assert f"{tl[0]}:{tl[1]} [AEX401 sync-lock-in-async]" in run.output("%%async_scan -o threading_scan")
    # 3. read without timeout: found when --timeout fires; the bounded read ends in time
    read = run.at("line = await reader.readline()")
    assert _has(run.findings("hung"), "AEX915", "missing-timeout", *read)
    assert run.summary("hung")["timed_out"] is True
    assert run.findings("bounded") == [] and run.summary("bounded")["timed_out"] is False
    assert "price: None" in run.output("%%loop_profile -o bounded")
    # 4. deadlock caught by --timeout, gone with a global lock order
    inner = run.at("async with account_locks[src]:", line_marker="async with account_locks[dst]:")
    assert _has(run.findings("deadlocked"), "AEX931", "deadlock", *inner)
    assert f"{inner[0]}:{inner[1]} [AEX931 deadlock" in run.output("%%loop_profile --timeout 2 -o deadlocked")
    assert run.summary("deadlocked")["timed_out"] is True
    assert run.findings("ordered") == [] and run.summary("ordered")["timed_out"] is False
    assert "{'A': 95, 'B': 105}" in run.output("%%loop_profile --timeout 2 -o ordered")


@pytest.mark.kernel
def test_04_fastapi(run_notebook: Any) -> None:
    run = run_notebook("04_fastapi.ipynb")
    src = (NOTEBOOKS / "workshop_app.py").read_text().split("\n")

    def line_of(text: str) -> int:
        return next(i + 1 for i, ln in enumerate(src) if text in ln)

    sleep, pbkdf2, client = line_of("time.sleep(0.1)"), line_of("hashlib.pbkdf2_hmac("), line_of("httpx.AsyncClient() as client")
    scan = run.findings("scan_before")
    assert _has(scan, "AEX101", "blocking-call-in-async", "workshop_app.py", sleep)
    assert _has(scan, "AEX130", "cpu-bound-in-async", "workshop_app.py", pbkdf2)
    assert _has(scan, "AEX1508", "fastapi-pattern", "workshop_app.py", client)
    shown = run.output("%async_scan app -o scan_before")
    assert f"workshop_app.py:{sleep} [AEX101 blocking-call-in-async] endpoint `GET /report`" in shown
    assert "endpoint `POST /login`" in shown
    routes = run.output("_async_app.frame()")
    assert "/report" in routes and "workshop_app.report" in routes
    # under load: the /report sleep is confirmed at runtime
    assert _has(run.findings("before"), "AEX101", "blocking-call-in-async", "workshop_app.py", sleep)
    assert f"workshop_app.py:{sleep} [AEX101 blocking-call-in-async, confirmed]" in run.output("%%loop_profile -o before")
    # the load probe: /health is a victim, and the culprit is one of the blocking endpoint lines
    probe = run.output("%async_load app")
    victims = [ln for ln in probe.splitlines() if ln.strip().startswith("GET /health slowed by")]
    assert victims and any(f"workshop_app.py:{n}" in victims[0] for n in (sleep, pbkdf2)), probe
    assert "slow-endpoint" in probe
    # the fixed app: clean scan, nothing at the endpoints' lines, /health answered faster
    assert run.findings("scan_after") == []
    assert "No async problems found." in run.output("%async_scan fixed_app -o scan_after")
    after = run.findings("after")
    assert not any(p.endswith("workshop_app.py") for _, _, p, _ in after)
    b, a = run.summary("before"), run.summary("after")
    assert a["blocked_ms"] < b["blocked_ms"] / 2
    worst_before = _number(r"worst (\d+) ms over", run.output("%%loop_profile -o before"))
    worst_after = _number(r"worst (\d+) ms over", run.output("%%loop_profile -o after"))
    assert worst_after < worst_before


@pytest.mark.kernel
def test_05_notebook_pitfalls(run_notebook: Any) -> None:
    run = run_notebook("05_notebook_pitfalls.ipynb")
    # asyncio.run() in a cell: the error, and the static finding at its line
    at_run = run.at("prices = asyncio.run(fetch_prices())")
    assert "asyncio.run() cannot be called from a running event loop" in run.output("prices = asyncio.run(fetch_prices())")
    assert _has(run.findings("scan_run"), "AEX601", "event-loop-already-running", *at_run)
    assert f"{at_run[0]}:{at_run[1]} [AEX601 event-loop-already-running]" in run.output("%async_scan -o scan_run")
    # top-level await works
    assert "'ACME': 12.5" in run.output("prices = await fetch_prices()")
    # a future of another loop: the error and the runtime finding at the await
    crossed = run.at("%%loop_profile -o crossed", line_marker='tick = await feed["first_tick"]')
    assert _has(run.findings("crossed"), "AEX961", "cross-loop-resource", *crossed)
    shown = run.output("%%loop_profile -o crossed")
    assert "attached to a different loop" in shown
    assert f"{crossed[0]}:{crossed[1]} [AEX961 cross-loop-resource" in shown
    assert not any(k == "cross-loop-resource" for _, k, _, _ in run.findings("same_loop"))
    assert "first tick: 12.5" in run.output("%%loop_profile -o same_loop")
    # legacy asyncio.run() inside a function: fails without --nest (found at its line), works with it
    legacy = run.at("def legacy_total", line_marker="asyncio.run(fetch_prices())")
    assert _has(run.findings("without_nest"), "AEX914", "event-loop-already-running", *legacy)
    assert run.findings("nested") == []
    nested = run.output("%%loop_profile --nest -o nested")
    assert "total: 19.75" in nested
    assert "--nest applied nest-asyncio2" in nested

