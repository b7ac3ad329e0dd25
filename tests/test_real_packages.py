"""Scan the installed starlette, httpx, anyio and aiohttp: real, large async code.

No crash; no notes (every ``.py`` file of these packages is readable UTF-8);
``files_scanned`` equals the number of ``.py`` files found by an independent
``os.walk``; every finding is well-formed and points at a real line of a scanned
file whose source text matches the finding's snippet; the pool and the serial
walk agree; a warm (cached) scan returns the same report.
"""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.model import KINDS
from async_expert_ext.scan.runner import scan_module, scan_paths
from async_expert_ext.scan.sources import SKIP_DIRS

PACKAGES = ["starlette", "httpx", "anyio", "aiohttp"]


def package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{name} is not installed")
    return list(spec.submodule_search_locations)[0]


def py_files(root: str) -> list[str]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info")]
        out.extend(os.path.join(folder, f) for f in files if f.endswith(".py"))
    return out


@pytest.mark.parametrize("name", PACKAGES)
def test_scan_installed_package(name: str) -> None:
    root = package_dir(name)
    expected = py_files(root)
    report = scan_paths([root], Settings(cache=False, jobs=1))
    assert report.errors == []
    assert len(report.files_scanned) == len(expected) > 5
    assert {os.path.realpath(os.path.abspath(p)) for p in report.files_scanned} == {os.path.realpath(p) for p in expected}
    assert not [f for f in report.findings if f.kind == "syntax-error"]
    for f in report.findings:
        assert f.kind in KINDS and f.code.startswith("AEX") and f.message and f.fix
        assert f.path in report.sources
        lines = report.sources[f.path].split("\n")
        assert 1 <= f.line <= len(lines)
        if f.snippet:
            assert lines[f.line - 1] == f.snippet, f
        for step in f.call_chain:
            assert "(" in step and ":" in step
    json.dumps(report.to_dict())


@pytest.mark.parametrize("name", ["starlette", "anyio"])
def test_module_name_scan_equals_folder_scan(name: str) -> None:
    by_name = scan_module(name, Settings(cache=False, jobs=1))
    by_path = scan_paths([package_dir(name)], Settings(cache=False, jobs=1))
    assert by_name.target == name
    assert [f.to_dict() for f in by_name.findings] == [f.to_dict() for f in by_path.findings]


@pytest.mark.slow
def test_pool_and_cache_agree_on_aiohttp(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("ASYNC_EXPERT_CACHE_DIR", str(tmp_path / "cache"))
    root = package_dir("aiohttp")
    serial = scan_paths([root], Settings(cache=False, jobs=1))
    pooled = scan_paths([root], Settings(cache=True, jobs=2))
    warm = scan_paths([root], Settings(cache=True, jobs=2))
    dump = lambda r: json.dumps([f.to_dict() for f in r.findings], sort_keys=True)  # noqa: E731
    assert dump(serial) == dump(pooled) == dump(warm)
    assert serial.files_scanned == pooled.files_scanned == warm.files_scanned
