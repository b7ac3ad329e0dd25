"""The public names of the package are pinned (as httpx pins its __all__)."""
from __future__ import annotations

import subprocess
import sys

import async_expert_ext


def test_all_is_pinned() -> None:
    assert sorted(async_expert_ext.__all__) == sorted(
        [
            "__version__",
            "load_ipython_extension",
            "unload_ipython_extension",
            "scan_code",
            "profile",
            "Finding",
            "ScanReport",
            "LoopReport",
            "Severity",
        ]
    )
    for name in async_expert_ext.__all__:
        assert getattr(async_expert_ext, name) is not None


def test_scan_code_works_after_the_scan_package_is_imported(tmp_path) -> None:
    import async_expert_ext.scan.runner  # noqa: F401  (the subpackage shadows a function named `scan`)

    src = "import time\nasync def f():\n    time.sleep(1)\n"
    report = async_expert_ext.scan_code(src, cache=False, select=["AEX1"])
    assert [(f.code, f.line) for f in report.findings] == [("AEX101", 3)]
    (tmp_path / "m.py").write_text(src)
    report = async_expert_ext.scan_code(str(tmp_path / "m.py"), cache=False, select=["AEX1"])
    assert [(f.code, f.line) for f in report.findings] == [("AEX101", 3)]


def test_cli_scan_does_not_import_heavy_modules(tmp_path) -> None:
    (tmp_path / "m.py").write_text("import time\nasync def f():\n    time.sleep(1)\n")
    code = (
        "import sys\n"
        "from async_expert_ext.cli import main\n"
        f"rc = main(['scan', '--no-cache', '--no-memory', '--format', 'json', {str(tmp_path / 'm.py')!r}])\n"
        "heavy = sorted(m for m in ('pandas', 'ipywidgets', 'IPython', 'matplotlib', 'traitlets') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "HEAVY []" in proc.stderr, proc.stderr
