"""``async-expert scan``: flags, exit codes, JSON and SARIF output, settings.

Most tests call :func:`async_expert_ext.cli.main` in-process (capsys); the ones
about the process itself (stderr lines, imports, ``python -m``) run a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from async_expert_ext.cli import main
from async_expert_ext.commands import scan as scan_cmd

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"

BAD = textwrap.dedent(
    """\
    import os
    import time

    import requests


    def helper():
        time.sleep(1)


    async def handler():
        helper()
        time.sleep(0.5)
        requests.get("https://example.org")
        os.path.exists("/tmp")
    """
)
CLEAN = textwrap.dedent(
    """\
    import asyncio


    async def handler():
        await asyncio.sleep(1)
        return 1
    """
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_proc(*argv: str, cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "async_expert_ext", *argv], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with one buggy and one clean module, as the working directory."""
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "clean.py").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def json_findings(out: str) -> list[tuple[str, str, int]]:
    data = json.loads(out)
    return sorted((f["code"], f["kind"], f["line"]) for f in data["findings"])


# -- exit codes -------------------------------------------------------------------


def test_findings_exit_1_and_text_lists_them(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "scan", "bad.py", "--no-memory")
    assert code == 1
    assert "bad.py:13 [AEX101 blocking-call-in-async]" in out
    assert "bad.py:14 [AEX102 blocking-call-in-async]" in out
    assert "bad.py:12 [AEX120 blocking-call-in-async]" in out
    assert err == ""


def test_clean_file_exit_0(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "scan", "clean.py")
    assert code == 0
    assert "No async problems found." in out


def test_exit_zero_with_findings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "scan", "bad.py", "--exit-zero", "--format", "json")
    assert code == 0
    assert ("AEX101", "blocking-call-in-async", 13) in json_findings(out)


def test_missing_path_exit_2_one_line(tmp_path: Path) -> None:
    proc = run_proc("scan", str(tmp_path / "nope.py"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "nope.py" in lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "x.py", "--format", "xml"],
        ["scan", "x.py", "--jobs", "many"],
        ["scan", "x.py", "--severity", "loud"],
        ["scan", "x.py", "--no-such-flag"],
        ["scan"],
    ],
)
def test_bad_flags_exit_2_one_line(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "x.py").write_text(CLEAN)
    proc = run_proc(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error" in lines[0]


def test_unknown_module_exit_2(tmp_path: Path) -> None:
    proc = run_proc("scan", "no_such_pkg_xyz.sub", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["async-expert: error: no such file, folder or module: no_such_pkg_xyz.sub"]


def test_invalid_pyproject_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text("[tool.async_expert]\nno_such_key = 1\n")
    code, out, err = run_cli(capsys, "scan", "bad.py")
    assert code == 2
    assert "no_such_key" in err and len(err.strip().splitlines()) == 1


# -- JSON -------------------------------------------------------------------------


def test_json_is_exactly_one_object(project: Path) -> None:
    proc = run_proc("scan", "bad.py", "clean.py", "--format", "json", cwd=project)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)  # the whole stdout is one JSON document
    assert set(data) >= {"findings", "files_scanned", "errors", "seconds"}
    assert data["files_scanned"] == 2
    assert data["errors"] == []
    assert isinstance(data["seconds"], float) and 0 <= data["seconds"] < 60
    by_line = {(f["kind"], f["line"]) for f in data["findings"]}
    assert ("blocking-call-in-async", 13) in by_line
    assert all(f["path"] == "bad.py" for f in data["findings"])
    f0 = next(f for f in data["findings"] if f["line"] == 12)
    assert f0["code"] == "AEX120"
    assert f0["call_chain"] and "bad.py:8" in f0["call_chain"][-1]
    assert f0["fix"] and f0["fix_example"] and f0["references"]


def test_python_m_is_the_same_command(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = run_proc("scan", "bad.py", "--format", "json", "--no-cache", cwd=project)
    code, out, _ = run_cli(capsys, "scan", "bad.py", "--format", "json", "--no-cache")
    assert proc.returncode == code == 1
    assert json_findings(proc.stdout) == json_findings(out)


def test_scan_does_not_import_pandas_or_ipython(project: Path) -> None:
    code = (
        "import sys\n"
        "from async_expert_ext.cli import main\n"
        "rc = main(['scan', 'bad.py', '--format', 'sarif', '--exit-zero', '--no-memory'])\n"
        "heavy = sorted(m for m in ('pandas', 'IPython', 'ipywidgets', 'numpy') if m in sys.modules)\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "[]"


# -- filters and settings -------------------------------------------------------------


def test_select_ignore_and_severity(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "scan", "bad.py", "--format", "json", "--select", "AEX101,AEX105")
    assert json_findings(out) == [("AEX101", "blocking-call-in-async", 13), ("AEX105", "blocking-call-in-async", 15)]
    _, out, _ = run_cli(capsys, "scan", "bad.py", "--format", "json", "--ignore", "AEX101", "--ignore", "AEX120")
    codes = {c for c, _, _ in json_findings(out)}
    assert "AEX101" not in codes and "AEX120" not in codes and "AEX102" in codes
    _, out, _ = run_cli(capsys, "scan", "bad.py", "--format", "json", "--severity", "critical")
    sev = {f["severity"] for f in json.loads(out)["findings"]}
    assert sev == {"critical"}
    assert ("AEX105", "blocking-call-in-async", 15) not in json_findings(out)


def test_ignore_by_kind_leaves_it_clean(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "sleepy.py").write_text("import asyncio, time\n\nasync def f():\n    await asyncio.sleep(0)\n    time.sleep(1)\n")
    code, out, _ = run_cli(capsys, "scan", "sleepy.py", "--format", "json")
    assert code == 1 and json_findings(out) == [("AEX101", "blocking-call-in-async", 5)]
    code, out, _ = run_cli(capsys, "scan", "sleepy.py", "--ignore", "blocking-call-in-async")
    assert code == 0
    assert "No async problems found." in out


def test_pyproject_settings_apply_under_flags(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [tool.async_expert]
            ignore = ["AEX102"]
            extra_blocking = ["mylib.fetch_sync"]
            """
        )
    )
    (project / "uses_mylib.py").write_text(
        "import mylib\n\nasync def go():\n    mylib.fetch_sync('x')\n    mylib.other()\n"
    )
    _, out, _ = run_cli(capsys, "scan", "bad.py", "uses_mylib.py", "--format", "json")
    found = json_findings(out)
    assert ("AEX102", "blocking-call-in-async", 14) not in found  # ignored by pyproject
    assert ("AEX111", "blocking-call-in-async", 4) in found  # extra_blocking from pyproject
    assert not any(line == 5 for _, _, line in found if _ == "AEX111")
    # a flag adds to the pyproject list; --select overrides it
    _, out, _ = run_cli(capsys, "scan", "uses_mylib.py", "--format", "json", "--extra-blocking", "mylib.other", "--select", "AEX111")
    assert json_findings(out) == [("AEX111", "blocking-call-in-async", 4), ("AEX111", "blocking-call-in-async", 5)]


def test_settings_from_args_precedence(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.async_expert]\nseverity = "warning"\nexclude = ["gen/*"]\n')
    parser = __import__("argparse").ArgumentParser()
    scan_cmd.configure(parser)
    s = scan_cmd.settings_from_args(parser.parse_args(["x"]), start=str(project))
    assert s.min_severity.value == "warning" and s.exclude == ("gen/*",) and s.cache is True
    s = scan_cmd.settings_from_args(parser.parse_args(["x", "--severity", "info", "--exclude", "old/*", "--no-cache", "-j", "1"]), start=str(project))
    assert s.min_severity.value == "info" and s.exclude == ("gen/*", "old/*") and s.cache is False and s.jobs == 1


# -- targets ------------------------------------------------------------------------------


def test_folder_scan_skips_venv_build_hidden_and_excluded(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for sub in (".venv/lib", "build", ".hidden", "node_modules", "gen", "pkg"):
        (project / sub).mkdir(parents=True, exist_ok=True)
        (project / sub / "m.py").write_text(BAD)
    code, out, _ = run_cli(capsys, "scan", ".", "--format", "json", "--exclude", "gen")
    data = json.loads(out)
    paths = {f["path"] for f in data["findings"]}
    assert paths == {"bad.py", os.path.join("pkg", "m.py")}
    assert data["files_scanned"] == 3  # bad.py, clean.py, pkg/m.py
    code, out, _ = run_cli(capsys, "scan", ".", "--format", "json", "--exclude", "pkg/*", "--exclude", "bad.py", "--exclude", "gen")
    assert json.loads(out)["findings"] == []
    assert code == 0


def test_dotted_module_target(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "mypkg_aex"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "svc.py").write_text(BAD)
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = run_proc("scan", "mypkg_aex.svc", "--format", "json", cwd=work, env={"PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 1, proc.stderr
    found = json_findings(proc.stdout)
    assert ("AEX101", "blocking-call-in-async", 13) in found
    # the whole package by name; the module is located, never imported
    (pkg / "__init__.py").write_text("raise SystemExit('imported!')\n")
    proc = run_proc("scan", "mypkg_aex", "--format", "json", cwd=work, env={"PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["files_scanned"] == 2


def test_notebook_target(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "# title", "metadata": {}},
            {"cell_type": "code", "source": ["%load_ext autoreload\n", "import time\n"], "metadata": {}, "outputs": [], "execution_count": 1},
            {"cell_type": "code", "source": "async def f():\n    time.sleep(1)\n    await f()\n", "metadata": {}, "outputs": [], "execution_count": 2},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (project / "nb.ipynb").write_text(json.dumps(nb))
    code, out, _ = run_cli(capsys, "scan", "nb.ipynb", "--format", "json")
    data = json.loads(out)
    assert code == 1
    assert [(f["path"], f["code"], f["line"]) for f in data["findings"]] == [("nb.ipynb[cell 2]", "AEX101", 2)]
    assert data["files_scanned"] == 2


# -- SARIF ----------------------------------------------------------------------------------


def _validate(doc: dict) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(doc, schema, cls=jsonschema.Draft4Validator, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_sarif_validates_and_carries_rules(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "broken.py").write_text("def f(:\n    pass\n")
    (project / "blob.py").write_bytes(b"\x00\x01binary")
    code, out, _ = run_cli(capsys, "scan", "bad.py", "broken.py", "blob.py", "--format", "sarif")
    assert code == 1
    doc = json.loads(out)
    _validate(doc)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    from async_expert_ext.scan.registry import all_rules

    assert [r["id"] for r in rules] == sorted(all_rules())
    for r in rules:
        assert r["help"]["text"] and r["help"]["markdown"]
        assert r["helpUri"].startswith("https://")
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
    results = {(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in run["results"]}
    assert ("AEX101", 13) in results and ("AEX000", 1) in results
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert by_rule["AEX101"]["level"] == "error"
    assert by_rule["AEX105"]["level"] == "note"
    assert rules[by_rule["AEX101"]["ruleIndex"]]["id"] == "AEX101"
    loc = by_rule["AEX101"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "bad.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"]["startColumn"] == 5
    chain = by_rule["AEX120"]["relatedLocations"]
    assert chain[-1]["physicalLocation"]["region"]["startLine"] == 8
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 1 and "blob.py" in notes[0]["message"]["text"] and "binary" in notes[0]["message"]["text"]


def test_sarif_columns_are_code_points_and_uris_escaped(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "dir with space").mkdir()
    (project / "dir with space" / "ü.py").write_text("import time\nasync def f():\n    x = 'é'; time.sleep(1)\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "scan", "dir with space", "--format", "sarif")
    doc = json.loads(out)
    _validate(doc)
    res = doc["runs"][0]["results"][0]
    phys = res["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == "dir%20with%20space/%C3%BC.py"
    # "    x = 'é'; " is 13 code points (14 UTF-8 bytes): the call starts at column 14
    assert phys["region"]["startColumn"] == 14


def test_sarif_absolute_paths_and_clean_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "a" / "bad.py"
    src.parent.mkdir()
    src.write_text(BAD)
    work = tmp_path / "b"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, _ = run_cli(capsys, "scan", str(src), "--format", "sarif", "--select", "AEX101")
    doc = json.loads(out)
    _validate(doc)
    uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri == {"uri": src.as_uri()}
    (tmp_path / "b" / "ok.py").write_text(CLEAN)
    code, out, _ = run_cli(capsys, "scan", "ok.py", "--format", "sarif")
    assert code == 0
    doc = json.loads(out)
    _validate(doc)
    assert doc["runs"][0]["results"] == []


# -- cache, jobs, memory ------------------------------------------------------------------------


def test_no_cache_writes_nothing(project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path_factory.mktemp("cli-cache")
    monkeypatch.setenv("ASYNC_EXPERT_CACHE_DIR", str(cache))
    run_cli(capsys, "scan", "bad.py", "--no-cache")
    assert not any(cache.rglob("*"))
    run_cli(capsys, "scan", "bad.py")
    assert any(p.is_file() for p in cache.rglob("*"))


def test_jobs_flag_gives_identical_results(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(12):
        (project / f"m{i}.py").write_text(BAD if i % 2 else CLEAN)
    _, serial, _ = run_cli(capsys, "scan", ".", "--format", "json", "--no-cache", "--jobs", "1")
    _, pooled, _ = run_cli(capsys, "scan", ".", "--format", "json", "--no-cache", "--jobs", "2")
    a, b = json.loads(serial), json.loads(pooled)
    assert a["findings"] == b["findings"] and a["files_scanned"] == b["files_scanned"] == 14


def test_memory_hook(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan hands its report to memory.record_analysis (unless --no-memory),
    shows its one-line summary on stderr, and survives a broken memory module."""
    import async_expert_ext.memory as memory

    calls: list[dict] = []

    class Recall:
        warnings: list[str] = []

        def summary(self) -> str:
            return "memory: recorded"

    def record_analysis(report, *, tool=None, target=None, path=None, settings=None, **kw):  # noqa: ANN001, ANN003 - memory.py's shape
        calls.append({"findings": len(report.findings), "tool": tool, "path": path, **kw})
        return Recall()

    monkeypatch.setattr(memory, "record_analysis", record_analysis)
    code, out, err = run_cli(capsys, "scan", "bad.py", "--memory", "notes.md", "--format", "json")
    assert code == 1 and json.loads(out)["findings"]
    assert len(calls) == 1 and calls[0]["path"] == "notes.md" and calls[0]["findings"] >= 3
    assert calls[0]["tool"] == "async-expert scan"
    assert err.strip() == "async-expert: memory: recorded"
    calls.clear()
    code, _, err = run_cli(capsys, "scan", "bad.py", "--no-memory")
    assert calls == [] and err == ""

    def broken(report, **kw):  # noqa: ANN001, ANN003
        raise OSError("disk full")

    monkeypatch.setattr(memory, "record_analysis", broken)
    code, out, err = run_cli(capsys, "scan", "bad.py", "--format", "json")
    assert code == 1 and json.loads(out)["findings"]
    assert "memory file not updated: disk full" in err


@pytest.mark.parametrize("flag,value", [("--select", "nonsense"), ("--ignore", "AEX1O1"), ("--select", "AEX1,blocking-call-in-asnyc")])
def test_unknown_select_or_ignore_value_is_a_usage_error(tmp_path: Path, flag: str, value: str) -> None:
    """A typo in --select must not turn a scan into a clean pass (exit 0)."""
    (tmp_path / "m.py").write_text("import time\nasync def f():\n    time.sleep(1)\n")
    proc = run_proc("scan", "--no-memory", flag, value, str(tmp_path / "m.py"))
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.strip().count("\n") == 0 and "matches no rule code" in proc.stderr
