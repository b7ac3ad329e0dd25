"""The on-disk cache (per-file results + one whole-scan manifest) and the process
pool: a warm or pooled scan gives exactly the cold serial result, edits and
setting changes are seen, and a broken cache never breaks a scan."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.scan import runner
from async_expert_ext.scan.runner import scan_paths

HELPER = "import time\n\ndef wait_{i}():\n    time.sleep(1)\n"
CALLER = "from .h{i} import wait_{i}\n\nasync def call_{i}():\n    wait_{i}()\n    await call_{i}()\n"


def dump(report) -> str:  # noqa: ANN001
    return json.dumps({"findings": [f.to_dict() for f in report.findings], "errors": report.errors, "files": report.files_scanned}, sort_keys=True)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("ASYNC_EXPERT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A package of 24 modules: 12 blocking helpers and 12 coroutines calling them
    across files, plus one syntax error and one binary file."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for i in range(12):
        (pkg / f"h{i}.py").write_text(HELPER.format(i=i))
        (pkg / f"c{i}.py").write_text(CALLER.format(i=i))
    (pkg / "broken.py").write_text("def f(:\n")
    (pkg / "blob.py").write_bytes(b"\x00\x00")
    return pkg


class Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real = runner.analyse_unit

        def counting(unit, *a, **kw):  # noqa: ANN001, ANN002, ANN003
            self.calls.append(os.path.basename(unit.path))
            return real(unit, *a, **kw)

        monkeypatch.setattr(runner, "analyse_unit", counting)


def test_warm_scan_equals_cold_and_walks_nothing(tree: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cold = scan_paths([str(tree)], Settings(cache=False, jobs=1))
    assert sorted((os.path.basename(f.path), f.kind, f.line) for f in cold.findings if f.kind == "blocking-call-in-async") == sorted(
        (f"c{i}.py", "blocking-call-in-async", 4) for i in range(12)
    )
    assert any(f.kind == "syntax-error" and f.path.endswith("broken.py") for f in cold.findings)
    assert len(cold.errors) == 1 and "blob.py" in cold.errors[0]
    first = scan_paths([str(tree)], Settings(jobs=1))
    assert dump(first) == dump(cold)
    assert list(cache.glob("manifests/*.pickle"))
    counter = Counter(monkeypatch)
    warm = scan_paths([str(tree)], Settings(jobs=1))
    assert counter.calls == []
    assert dump(warm) == dump(cold)
    assert warm.sources == cold.sources


def test_edit_one_file_reanalyses_only_that_file(tree: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan_paths([str(tree)], Settings(jobs=1))
    (tree / "h3.py").write_text("def wait_3():\n    return 3\n")  # no longer blocks
    counter = Counter(monkeypatch)
    after = scan_paths([str(tree)], Settings(jobs=1))
    assert counter.calls == ["h3.py"]
    lines = {os.path.basename(f.path) for f in after.findings if f.kind == "blocking-call-in-async"}
    assert "c3.py" not in lines and "c4.py" in lines
    assert dump(after) == dump(scan_paths([str(tree)], Settings(cache=False, jobs=1)))


def test_added_file_and_changed_settings_invalidate(tree: Path, cache: Path) -> None:
    base = scan_paths([str(tree)], Settings(jobs=1))
    (tree / "extra.py").write_text("import mylib\n\nasync def go():\n    mylib.fetch_sync()\n    await go()\n")
    added = scan_paths([str(tree)], Settings(jobs=1))
    assert len(added.files_scanned) == len(base.files_scanned) + 1
    assert not any(f.path.endswith("extra.py") and f.kind == "blocking-call-in-async" for f in added.findings)
    extra = scan_paths([str(tree)], Settings(jobs=1, extra_blocking=("mylib.fetch_sync",)))
    assert [(f.code, f.line) for f in extra.findings if f.path.endswith("extra.py")] == [("AEX111", 4)]
    # select / ignore / severity give the right subset from the same cache
    only = scan_paths([str(tree)], Settings(jobs=1, select=("AEX000",)))
    assert {f.code for f in only.findings} == {"AEX000"}
    crit = scan_paths([str(tree)], Settings(jobs=1, min_severity="critical"))  # type: ignore[arg-type]
    assert crit.findings and all(f.severity.value == "critical" for f in crit.findings)


def test_corrupt_cache_files_are_ignored(tree: Path, cache: Path) -> None:
    cold = scan_paths([str(tree)], Settings(cache=False, jobs=1))
    scan_paths([str(tree)], Settings(jobs=1))
    files = [p for p in cache.rglob("*.pickle")]
    assert len(files) > 20
    for i, p in enumerate(files):
        p.write_bytes(b"" if i % 3 == 0 else b"\x80\x05garbage" if i % 3 == 1 else b"not a pickle at all")
    assert dump(scan_paths([str(tree)], Settings(jobs=1))) == dump(cold)
    # and the damaged entries were rewritten: the next scan is warm again
    assert dump(scan_paths([str(tree)], Settings(jobs=1))) == dump(cold)


def test_unwritable_cache_dir_still_scans(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ASYNC_EXPERT_CACHE_DIR", str(blocker / "cache"))
    cold = scan_paths([str(tree)], Settings(cache=False, jobs=1))
    assert dump(scan_paths([str(tree)], Settings(jobs=1))) == dump(cold)


def test_no_cache_setting_reads_and_writes_nothing(tree: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan_paths([str(tree)], Settings(cache=False, jobs=1))
    assert not cache.exists()
    scan_paths([str(tree)], Settings(jobs=1))
    counter = Counter(monkeypatch)
    scan_paths([str(tree)], Settings(cache=False, jobs=1))
    assert len(counter.calls) == 26  # every readable file walked again: __init__, broken, 12 + 12


def test_pool_gives_the_serial_result(tree: Path, cache: Path) -> None:
    serial = scan_paths([str(tree)], Settings(cache=False, jobs=1))
    pooled = scan_paths([str(tree)], Settings(cache=False, jobs=2))
    assert dump(pooled) == dump(serial)
    # a pool over cache misses only: fill half of the cache first
    for i in range(6):
        scan_paths([str(tree / f"h{i}.py"), str(tree / f"c{i}.py")], Settings(jobs=1))
    mixed = scan_paths([str(tree)], Settings(jobs=2))
    assert dump(mixed) == dump(serial)


def test_pool_on_a_real_package_matches_serial(cache: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("starlette")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("starlette is not installed")
    root = list(spec.submodule_search_locations)[0]
    serial = scan_paths([root], Settings(cache=False, jobs=1))
    pooled = scan_paths([root], Settings(cache=False, jobs=2))
    assert len(serial.files_scanned) > 30
    assert dump(pooled) == dump(serial)


def test_pool_forks_only_in_a_single_threaded_process() -> None:
    """A Jupyter kernel runs threads (heartbeat, IOPub): forking it can deadlock the
    child, so the worker pool spawns there, and only for big trees."""
    import threading

    from async_expert_ext.scan.runner import POOL_THRESHOLD_FORK, POOL_THRESHOLD_SPAWN, _pool_context

    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        ctx, threshold = _pool_context()
        assert ctx.get_start_method() == "spawn" and threshold == POOL_THRESHOLD_SPAWN
    finally:
        stop.set()
        t.join()
    if threading.active_count() == 1:
        ctx, threshold = _pool_context()
        assert ctx.get_start_method() == "fork" and threshold == POOL_THRESHOLD_FORK


def test_warm_scan_of_an_unchanged_tree_reads_no_source(tree: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stat index: sizes and mtimes unchanged -> one small file is read, the
    sources only when a renderer asks for one."""
    cold = scan_paths([str(tree)], Settings(cache=False, jobs=1))
    scan_paths([str(tree)], Settings(jobs=1))
    assert list(cache.glob("stat-index/*.pickle"))
    reads: list[str] = []
    real_read = runner.read_plan

    def counting_read(plan):  # noqa: ANN001, ANN202
        for unit in real_read(plan):
            reads.append(os.path.basename(unit.path))
            yield unit

    monkeypatch.setattr(runner, "read_plan", counting_read)
    warm = scan_paths([str(tree)], Settings(jobs=1))
    assert reads == []
    assert dump(warm) == dump(cold)
    helper = next(p for p in warm.files_scanned if p.endswith("h3.py"))
    assert warm.sources[helper] == HELPER.format(i=3)
    assert dict(warm.sources) == cold.sources
    # a touched file (new mtime, same content) falls back to the content-keyed caches
    os.utime(tree / "h3.py", ns=(1, 1))
    counter = Counter(monkeypatch)
    touched = scan_paths([str(tree)], Settings(jobs=1))
    assert len(reads) == len(cold.files_scanned) + 1  # every file read again (the binary one too)
    assert counter.calls == []  # ... but nothing re-walked: the contents are the same
    assert dump(touched) == dump(cold)
