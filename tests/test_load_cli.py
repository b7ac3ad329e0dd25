"""``async-expert load FILE.py:app``: JSON on stdout only, the app's output on stderr, exit codes,
the memory file; and ``%async_load`` in a real kernel."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from corpus_util import CORPUS


def cli(*args: str, cwd: Path, memory: bool = False) -> subprocess.CompletedProcess:
    extra = () if memory else ("--no-memory",)
    return subprocess.run([sys.executable, "-m", "async_expert_ext", "load", *args, *extra], check=False, cwd=cwd, capture_output=True, text=True, timeout=180)


APP = textwrap.dedent(
    """\
    import asyncio
    import time

    from fastapi import FastAPI

    print("app output")
    app = FastAPI()


    @app.get("/report/{report_id}")
    async def build_report(report_id: int):
        time.sleep(0.2)
        return {"id": report_id}


    @app.get("/ping")
    async def ping():
        await asyncio.sleep(0)
        return {"ok": True}


    clean = FastAPI()


    @clean.get("/ping")
    async def clean_ping():
        return {"ok": True}


    not_an_app = 3
    """
)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "service.py").write_text(APP)
    return tmp_path


def test_json_findings_routes_and_exit_1(project: Path) -> None:
    r = cli("service.py:app", "--requests", "3", "--duration", "1.5", "--param", "report_id=9", "--format", "json", cwd=project)
    assert r.returncode == 1, r.stderr
    assert "app output" in r.stderr and "app output" not in r.stdout
    data = json.loads(r.stdout)
    routes = {(x["method"], x["path"]): x for x in data["routes"]}
    report = routes[("GET", "/report/{report_id}")]
    assert report["url"] == "/report/9"
    assert {"path", "method", "requests", "p50_ms", "p95_ms", "p99_ms", "errors"} <= set(report)
    assert report["requests"] == 3 and report["errors"] == 0
    kinds = {(f["kind"], f["line"]) for f in data["findings"]}
    assert ("blocking-call-in-async", 12) in kinds
    slow = [f for f in data["findings"] if f["kind"] == "slow-endpoint"]
    assert slow and slow[0]["extra"]["victim"] == "GET /ping" and slow[0]["extra"]["culprit_line"] == 12
    assert slow[0]["line"] == 17
    assert any("GET /report/{report_id}" in rec for rec in data["recommendations"])


def test_clean_app_exit_0_and_text_table(project: Path) -> None:
    r = cli("service.py:clean", "--requests", "5", "--duration", "1", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("async-expert load: service.py:clean")
    assert lines[1].split()[:4] == ["method", "path", "kind", "requests"]
    assert lines[2].split()[:4] == ["GET", "/ping", "async", "5"]
    assert "findings: 0 critical, 0 warning, 0 info" in r.stdout


def test_exit_zero_and_memory_file(project: Path) -> None:
    mem = project / "mem.md"
    r = cli("service.py:app", "--requests", "2", "--duration", "1", "--exit-zero", "--memory", str(mem), cwd=project, memory=True)
    assert r.returncode == 0, r.stderr
    text = mem.read_text()
    assert "async-expert load" in text and "service.py:app" in text
    assert "FastAPI performance recommendations" in text
    assert "GET /report/{report_id}" in text  # the recommendation written from this app


@pytest.mark.parametrize(
    "args, message",
    [
        (("missing.py:app",), "no such file"),
        (("service.py:nope",), "no attribute 'nope'"),
        (("service.py:not_an_app",), "not a FastAPI or Starlette app"),
        (("service.py:app", "--path", "/nowhere"), "no route matches /nowhere"),
        (("service.py:app", "--param", "oops"), "--param needs name=value"),
        (("service.py:app", "--requests", "0"), "must be > 0"),
        (("service.py:app", "--format", "xml"), "invalid choice"),
    ],
)
def test_usage_errors_exit_2(project: Path, args: tuple[str, ...], message: str) -> None:
    r = cli(*args, cwd=project)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 or "app output" in r.stderr
    assert r.stdout == ""


def test_corpus_08_cli(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "08_fastapi_sync_endpoints_starve_threadpool.py", tmp_path / "tiles.py")
    r = cli("tiles.py:app", "--requests", "45", "--duration", "1.5", "--format", "json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    assert data["threadpool"]["peak_borrowed"] == 40
    kinds = {(f["kind"], f["line"]) for f in data["findings"]}
    assert ("sync-endpoint-threadpool", 23) in kinds
    assert ("slow-endpoint", 28) in kinds


@pytest.mark.kernel
def test_async_load_magic_in_kernel(project: Path) -> None:
    from kernel_helpers import run_cells

    cells = run_cells(
        [
            "%load_ext async_expert_ext",
            ("import asyncio, time\n"
            "from fastapi import FastAPI\n"
            "app = FastAPI()\n"
            "@app.get('/block')\n"
            "async def block():\n"
            "    time.sleep(0.15)\n"
            "    return {}\n"
            "@app.get('/health')\n"
            "async def health():\n"
            "    return {'ok': True}\n"
            "client_made_here = 1"),
            "%async_load app --requests 3 --duration 1.5 -o rep --no-memory",
            ("print(sorted((r['path'], r['requests']) for r in rep.routes))\n"
            "print([(f.kind, f.path, f.line, f.extra.get('victim'), f.extra.get('culprit_line')) for f in rep.finding_list if f.kind in ('slow-endpoint', 'blocking-call-in-async')])\n"
            "print(_async_load is rep, client_made_here)"),
            "%async_load nothing_here",
            "%async_load client_made_here",
            "%async_load app --requests -1",
            "%async_load app --path /nowhere",
            "print('kernel alive')",
        ],
        cwd=project,
    )
    assert cells[2].error is None, cells[2]
    shown = cells[2].mime("text/plain")
    assert "async-expert load: app" in shown and "/health" in shown
    out = cells[3].stdout
    assert "('/block', 3)" in out and "('/health', 3)" in out
    assert "('blocking-call-in-async', 'In[2]', 6, None, None)" in out, out
    assert "('slow-endpoint', 'In[2]', 9, 'GET /health', 6)" in out, out
    assert "True 1" in out
    assert cells[4].error is not None and cells[4].error.ename == "UsageError" and "no variable 'nothing_here'" in cells[4].error.evalue
    assert cells[5].error is not None and "not a FastAPI or Starlette app" in cells[5].error.evalue
    assert cells[6].error is not None and "--requests must be > 0" in cells[6].error.evalue
    assert cells[7].error is not None and "no route matches /nowhere" in cells[7].error.evalue
    assert "kernel alive" in cells[8].stdout
