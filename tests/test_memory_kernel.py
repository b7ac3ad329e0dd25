"""The memory file written and read by the magics in a real kernel (nbclient + ipykernel)."""
from __future__ import annotations

from pathlib import Path

import pytest

from async_expert_ext import memory as mem

from kernel_helpers import run_cells

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

APP = """\
import time
import requests

async def handler():
    time.sleep(1)
    return requests.get("https://user:hunter2@example.com")
"""

APP_FIXED = APP.replace("    time.sleep(1)\n", "")

SCAN = "%async_scan app.py --select blocking-call-in-async"


def test_async_scan_writes_the_notebook_projects_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the notebook's project: a pyproject.toml at its root, the notebook in a subfolder
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (nb_dir / "app.py").write_text(APP)
    monkeypatch.delenv(mem.ENV_VAR, raising=False)  # conftest points it at a tmp file
    cells = run_cells(
        [
            "%load_ext async_expert_ext",  # 0
            SCAN,  # 1: first entry
            f"import pathlib; pathlib.Path('app.py').write_text({APP_FIXED!r})",  # 2: fix time.sleep
            SCAN,  # 3: one fixed, one seen before
            SCAN,  # 4: unchanged -> one-line note
            "%async_memory",  # 5
            "%async_memory --stats",  # 6
            "%async_memory --kind never-awaited",  # 7
            "%async_memory --since 'not a date'",  # 8
            "%config AsyncExpert.memory_file = 'elsewhere.md'\n" + SCAN,  # 9
            "%async_scan app.py --no-memory --select blocking-call-in-async",  # 10
            "print('kernel alive', 1 + 1)",  # 11
        ],
        cwd=nb_dir,
    )
    for i in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11):
        assert cells[i].error is None, (i, cells[i].error)
    path = tmp_path / ".claude" / "sub_agents_memory.md"
    assert f"memory: wrote entry to {path}; 2 new, 0 seen before" in cells[1].stdout
    assert f"memory: wrote entry to {path}; 0 new, 1 seen before, 1 fixed since " in cells[3].stdout
    assert f"memory: re-checked, unchanged (noted in {path})" in cells[4].stdout
    _, entries, warns = mem.read_memory(path)
    assert warns == []
    assert [(e.tool, e.target, e.unchanged) for e in entries] == [
        ("%async_scan", "app.py", False),
        ("%async_scan", "app.py", False),
        ("%async_scan", "app.py", True),
    ]
    assert sorted(d["line"] for d in entries[0].findings) == [5, 6]
    assert [(d["kind"], d["line"], d["status"]) for d in entries[1].findings] == [("blocking-call-in-async", 5, "seen")]
    assert [(d["kind"], d["line"]) for d in entries[1].fixed] == [("blocking-call-in-async", 5)]
    text = path.read_text()
    assert "hunter2" not in text and "https://user:***@example.com" in text
    # %async_memory shows the entries (markdown and text)
    listing = cells[5].mime("text/plain")
    assert "3 memory entries" in listing and "(re-checked, unchanged)" in listing
    md = cells[5].bundles[-1]["text/markdown"]
    assert "| %async_scan | app.py | 1 | 0 | 0 | 0 | 1 | |" in md.replace("|  |", "| |")
    assert "blocking-call-in-async: in 3 entries" in cells[6].mime("text/plain")
    assert cells[7].mime("text/plain").startswith("0 memory entries")
    assert cells[8].error is not None and cells[8].error.ename == "UsageError" and "--since" in cells[8].error.evalue
    # %config AsyncExpert.memory_file wins over the default; --no-memory writes nothing
    other = nb_dir / "elsewhere.md"
    assert [e.tool for e in mem.read_memory(other)[1]] == ["%async_scan"]
    assert f"noted in {other}" in cells[9].stdout or f"wrote entry to {other}" in cells[9].stdout
    assert len(mem.read_memory(path)[1]) == 3
    assert "memory:" not in cells[10].stdout
    assert "kernel alive 2" in cells[11].stdout


def test_loop_profile_records_runtime_measures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.delenv(mem.ENV_VAR, raising=False)
    body = (
        "import asyncio, time\n"
        "async def forever():\n"
        "    await asyncio.sleep(3600)\n"
        "leak = asyncio.get_running_loop().create_task(forever())\n"
        "await asyncio.sleep(0.05)\n"
        "time.sleep(0.3)\n"
        "await asyncio.sleep(0.05)\n"
    )
    cells = run_cells(
        [
            "%load_ext async_expert_ext",
            "%%loop_profile --no-profile\n" + body,
            "%%loop_profile --no-profile --no-memory\nimport asyncio\nawait asyncio.sleep(0)\n",
            "leak.cancel()",
        ],
        cwd=tmp_path,
    )
    for c in cells:
        assert c.error is None, c.error
    path = tmp_path / ".claude" / "sub_agents_memory.md"
    assert f"memory: wrote entry to {path}" in cells[1].stdout
    assert "memory:" not in cells[2].stdout
    _, entries, warns = mem.read_memory(path)
    assert warns == [] and len(entries) == 1
    e = entries[0]
    assert e.tool == "%%loop_profile" and e.target.startswith("In[")
    r = e.runtime
    # the cell's line 7 (the %%loop_profile line is line 1): time.sleep(0.3)
    assert r["worst_block_at"].endswith(":7") and r["worst_block_snippet"] == "time.sleep(0.3)"
    assert r["worst_block_ms"] >= 250 and r["max_lag_ms"] >= 200
    assert r["leaked_tasks"] == 1
    text = path.read_text()
    assert "### Runtime measures" in text and "leaked tasks: 1" in text
