"""Bad input: syntax errors, PEP 263 encodings, BOM, binary / huge / unreadable
files, FIFOs, symlink loops and folder walking rules.

Every case goes through :func:`scan_paths` (the path the CLI and the magic use),
so the note in ``ScanReport.errors`` and the findings of the other files are
both checked: one bad file never stops the scan.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.errors import TargetNotFound
from async_expert_ext.scan import sources
from async_expert_ext.scan.runner import scan_paths
from async_expert_ext.scan.sources import decode_source, iter_python_files, module_name_for

BLOCKING = "import time\n\nasync def handler():\n    time.sleep(1)\n    await handler()\n"
NOCACHE = Settings(cache=False, jobs=1)


def kinds_lines(report) -> set[tuple[str, str, int]]:  # noqa: ANN001
    return {(os.path.basename(f.path), f.kind, f.line) for f in report.findings}


def test_syntax_error_is_a_finding_and_scan_goes_on(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import time\n\n\ndef f(:\n    pass\n")
    (tmp_path / "good.py").write_text(BLOCKING)
    report = scan_paths([str(tmp_path)], NOCACHE)
    found = kinds_lines(report)
    assert ("broken.py", "syntax-error", 4) in found
    assert ("good.py", "blocking-call-in-async", 4) in found
    f = next(f for f in report.findings if f.kind == "syntax-error")
    assert f.code == "AEX000" and f.col == 6 and "def f(:" in f.snippet
    assert len(report.files_scanned) == 2 and report.errors == []


def test_syntax_error_in_indentation_and_null_bytes_in_text(tmp_path: Path) -> None:
    (tmp_path / "indent.py").write_text("def f():\nreturn 1\n")
    report = scan_paths([str(tmp_path / "indent.py")], NOCACHE)
    assert [(f.kind, f.line) for f in report.findings] == [("syntax-error", 2)]


def test_pep263_latin1_cookie(tmp_path: Path) -> None:
    src = "# -*- coding: latin-1 -*-\nimport time\n\nasync def caf\u00e9():\n    s = 'd\u00e9j\u00e0'\n    time.sleep(1)\n"
    (tmp_path / "latin.py").write_bytes(src.encode("latin-1"))
    report = scan_paths([str(tmp_path / "latin.py")], NOCACHE)
    assert report.errors == []
    assert kinds_lines(report) >= {("latin.py", "blocking-call-in-async", 6)}
    f = next(f for f in report.findings if f.line == 6)
    assert f.symbol == "caf\u00e9"
    assert report.sources[f.path].splitlines()[4] == "    s = 'd\u00e9j\u00e0'"


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbf" + BLOCKING.replace("\n", "\r\n").encode())
    report = scan_paths([str(tmp_path / "bom.py")], NOCACHE)
    assert report.errors == []
    assert ("bom.py", "blocking-call-in-async", 4) in kinds_lines(report)
    assert not report.sources[report.findings[0].path].startswith("\ufeff")


def test_bad_cookie_and_bad_bytes_are_notes(tmp_path: Path) -> None:
    (tmp_path / "unknown.py").write_bytes(b"# coding: klingon\nx = 1\n")
    (tmp_path / "notutf8.py").write_bytes(b"x = '\xff\xfe'\n")
    (tmp_path / "good.py").write_text(BLOCKING)
    report = scan_paths([str(tmp_path)], NOCACHE)
    assert sorted(os.path.basename(e.split(":")[0]) for e in report.errors) == ["notutf8.py", "unknown.py"]
    assert all("cannot decode" in e for e in report.errors)
    assert ("good.py", "blocking-call-in-async", 4) in kinds_lines(report)


def test_decode_source_pep263_cases() -> None:
    assert decode_source("# coding=latin-1\nx = '\u00e9'\n".encode("latin-1")) == "# coding=latin-1\nx = '\u00e9'\n"
    assert decode_source(b"\xef\xbb\xbfx = 1\r\n") == "x = 1\n"
    # a cookie on line 2 counts, one on line 3 does not
    assert "\u00e9" in decode_source("#!/usr/bin/env python\n# vim: set fileencoding=latin-1 :\nx='\u00e9'\n".encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        decode_source("\n\n# coding: latin-1\nx='\u00e9'\n".encode("latin-1"))


def test_binary_file_skipped_with_note(tmp_path: Path) -> None:
    (tmp_path / "blob.py").write_bytes(b"x = 1\n\x00\x00\x01\x02")
    (tmp_path / "good.py").write_text(BLOCKING)
    report = scan_paths([str(tmp_path)], NOCACHE)
    assert [os.path.basename(p) for p in report.files_scanned] == ["good.py"]
    assert len(report.errors) == 1 and "blob.py" in report.errors[0] and "binary" in report.errors[0]


def test_huge_file_skipped_with_note(tmp_path: Path) -> None:
    big = tmp_path / "huge.py"
    with open(big, "w") as fh:
        fh.write("x = 1\n" * (sources.MAX_BYTES // 6 + 10))
    assert big.stat().st_size > sources.MAX_BYTES
    (tmp_path / "good.py").write_text(BLOCKING)
    report = scan_paths([str(tmp_path)], NOCACHE)
    assert [os.path.basename(p) for p in report.files_scanned] == ["good.py"]
    assert len(report.errors) == 1 and "huge.py" in report.errors[0] and "MiB" in report.errors[0]


def test_dangling_symlink_is_unreadable_note(tmp_path: Path) -> None:
    (tmp_path / "gone.py").symlink_to(tmp_path / "missing.py")
    (tmp_path / "good.py").write_text(BLOCKING)
    report = scan_paths([str(tmp_path)], NOCACHE)
    assert len(report.errors) == 1
    assert "gone.py" in report.errors[0] and "unreadable" in report.errors[0]
    assert ("good.py", "blocking-call-in-async", 4) in kinds_lines(report)


@pytest.mark.timeout(30)
def test_fifo_named_py_is_skipped_not_blocking(tmp_path: Path) -> None:
    """A FIFO has no writer here: opening it for reading would block forever."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "good.py").write_text(BLOCKING)
    report = scan_paths([str(tmp_path)], NOCACHE)
    assert len(report.errors) == 1 and "pipe.py" in report.errors[0] and "not a regular file" in report.errors[0]
    assert ("good.py", "blocking-call-in-async", 4) in kinds_lines(report)


def test_self_referencing_symlink_file(tmp_path: Path) -> None:
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")
    report = scan_paths([str(tmp_path)], NOCACHE)
    assert report.files_scanned == []
    assert len(report.errors) == 1 and "loop.py" in report.errors[0] and "unreadable" in report.errors[0]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_a_note(tmp_path: Path) -> None:  # pragma: no cover - runs for non-root users
    secret = tmp_path / "secret.py"
    secret.write_text(BLOCKING)
    secret.chmod(0)
    try:
        report = scan_paths([str(tmp_path)], NOCACHE)
    finally:
        secret.chmod(0o644)
    assert len(report.errors) == 1 and "unreadable" in report.errors[0]


def test_unreadable_file_as_another_user() -> None:
    """As root, chmod 000 does not stop reads: fork a child that drops to the
    ``nobody`` user (the package is already imported), so ``open()`` really fails
    with EACCES on a root-only file, and the child reports what the scan saw."""
    import json
    import shutil
    import tempfile

    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and hasattr(os, "fork")):
        pytest.skip("needs root and fork (non-root users: test_permission_denied_is_a_note)")
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    root = Path(tempfile.mkdtemp(prefix="aex-perm-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / "secret.py").write_text(BLOCKING)
        (root / "secret.py").chmod(0o600)
        (root / "good.py").write_text(BLOCKING)
        (root / "good.py").chmod(0o644)
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            status = 1
            try:
                os.close(rfd)
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                r = scan_paths([str(root)], NOCACHE)
                data = {"errors": r.errors, "files": r.files_scanned, "lines": [f.line for f in r.findings]}
                os.write(wfd, json.dumps(data).encode())
                status = 0
            except BaseException as exc:  # noqa: BLE001 - report anything to the parent
                os.write(wfd, json.dumps({"crash": repr(exc)}).encode())
            finally:
                os._exit(status)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as fh:
            raw = fh.read()
        os.waitpid(pid, 0)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    data = json.loads(raw)
    assert "crash" not in data, data
    assert len(data["errors"]) == 1
    assert "secret.py" in data["errors"][0] and "unreadable (Permission denied)" in data["errors"][0]
    assert [os.path.basename(f) for f in data["files"]] == ["good.py"]
    assert data["lines"] == [4]


def test_symlink_loop_in_folder_ends_and_scans_each_file_once(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text(BLOCKING)
    (pkg / "sub" / "b.py").write_text("x = 1\n")
    (pkg / "sub" / "back").symlink_to(pkg, target_is_directory=True)  # pkg/sub/back -> pkg
    (pkg / "self").symlink_to(pkg / "self")  # a symlink to itself
    files = list(iter_python_files(str(pkg)))
    assert sorted(os.path.relpath(f, pkg) for f in files) == ["a.py", os.path.join("sub", "b.py")]
    report = scan_paths([str(pkg)], NOCACHE)
    assert len(report.files_scanned) == 2
    assert ("a.py", "blocking-call-in-async", 4) in kinds_lines(report)


def test_folder_walk_skips_venv_build_hidden_caches_and_egg_info(tmp_path: Path) -> None:
    keep = ["app.py", "pkg/mod.py", "pkg/deep/x.py"]
    skip = [".venv/lib/site.py", "venv/a.py", "build/lib/app.py", "dist/x.py", ".git/hooks/h.py", ".hidden/h.py", "__pycache__/c.py", "node_modules/n.py", "proj.egg-info/e.py", ".tox/t.py"]
    for rel in keep + skip:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("not python")
    found = sorted(os.path.relpath(f, tmp_path).replace(os.sep, "/") for f in iter_python_files(str(tmp_path)))
    assert found == sorted(keep)


def test_exclude_globs(tmp_path: Path) -> None:
    for rel in ["app.py", "tests/test_app.py", "gen/api_pb2.py", "pkg/migrations/0001.py", "pkg/models.py"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x = 1\n")

    def walk(*patterns: str) -> list[str]:
        return sorted(os.path.relpath(f, tmp_path).replace(os.sep, "/") for f in iter_python_files(str(tmp_path), patterns))

    assert walk("tests") == ["app.py", "gen/api_pb2.py", "pkg/migrations/0001.py", "pkg/models.py"]
    assert walk("*_pb2.py", "migrations/*") == ["app.py", "pkg/models.py", "tests/test_app.py"]
    assert walk("pkg") == ["app.py", "gen/api_pb2.py", "tests/test_app.py"]
    report = scan_paths([str(tmp_path)], Settings(cache=False, jobs=1, exclude=("tests", "gen")))
    assert sorted(os.path.relpath(p, tmp_path).replace(os.sep, "/") for p in report.files_scanned) == ["app.py", "pkg/migrations/0001.py", "pkg/models.py"]


def test_missing_path_raises_target_not_found(tmp_path: Path) -> None:
    with pytest.raises(TargetNotFound, match="nope"):
        scan_paths([str(tmp_path / "nope")], NOCACHE)


def test_module_names_follow_init_files(tmp_path: Path) -> None:
    pkg = tmp_path / "top" / "inner"
    pkg.mkdir(parents=True)
    (tmp_path / "top" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("")
    (tmp_path / "loose.py").write_text("")
    assert module_name_for(pkg / "mod.py") == ("top.inner.mod", "top.inner")
    assert module_name_for(pkg / "__init__.py") == ("top.inner", "top.inner")
    assert module_name_for(tmp_path / "loose.py") == ("loose", "")
    # a new __init__.py is seen by the next scan (the per-folder memo is reset)
    (tmp_path / "__init__.py").write_text("")
    report = scan_paths([str(pkg / "mod.py")], NOCACHE)
    assert report.files_scanned
    assert module_name_for(pkg / "mod.py")[0].endswith(f"{tmp_path.name}.top.inner.mod")


def test_cross_file_helper_in_package(tmp_path: Path) -> None:
    """Folder scans link the package: a blocking helper in one module is reported
    at the coroutine's call site in another, with the chain."""
    pkg = tmp_path / "svc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("import time\n\ndef wait():\n    time.sleep(1)\n")
    (pkg / "api.py").write_text(textwrap.dedent("""\
        from .util import wait

        async def endpoint():
            wait()
        """))
    report = scan_paths([str(pkg)], NOCACHE)
    f = next(f for f in report.findings if os.path.basename(f.path) == "api.py")
    assert (f.kind, f.line) == ("blocking-call-in-async", 4)
    assert "util.py:4" in f.call_chain[-1]


def test_notebook_cells_linked_in_order_and_bad_notebook_noted(tmp_path: Path) -> None:
    import json

    nb = {"cells": [
        {"cell_type": "code", "source": "import time\n%matplotlib inline\n", "metadata": {}, "outputs": []},
        {"cell_type": "code", "source": "%%bash\necho hi\n", "metadata": {}, "outputs": []},
        {"cell_type": "code", "source": "async def f():\n    time.sleep(1)\n    await f()\n", "metadata": {}, "outputs": []},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    (tmp_path / "bad.ipynb").write_text("{not json")
    report = scan_paths([str(tmp_path / "nb.ipynb"), str(tmp_path / "bad.ipynb")], NOCACHE)
    assert [(f.path.rpartition(os.sep)[2], f.kind, f.line) for f in report.findings] == [("nb.ipynb[cell 3]", "blocking-call-in-async", 2)]
    assert len(report.errors) == 1 and "bad.ipynb" in report.errors[0] and "not a readable notebook" in report.errors[0]
