"""``async-expert profile``: JSON on stdout only, the program's output on stderr, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "async_expert_ext", "profile", *args, "--no-memory"], cwd=cwd, capture_output=True, text=True, timeout=120)


PROGRAM = textwrap.dedent(
    """\
    import asyncio
    import time

    print("program output")


    async def main():
        await asyncio.sleep(0.01)
        time.sleep(0.12)
        return 1


    async def clean():
        await asyncio.sleep(0.01)


    def not_async():
        pass


    if __name__ == "__main__":
        raise SystemExit("must not run as __main__")
    """
)


def test_json_holds_only_the_report(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    proc = cli("prog.py", "--format", "json", "--no-profile", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"findings", "tasks", "blocking"}
    assert "program output" in proc.stderr and "program output" not in proc.stdout
    blocking = [f for f in data["findings"] if f["kind"] == "blocking-call-in-async"]
    assert blocking and blocking[0]["line"] == 9 and blocking[0]["path"] == "prog.py"
    assert blocking[0]["extra"]["confirmed"] is True
    assert data["blocking"][0]["line"] == 9 and data["blocking"][0]["duration_ms"] >= 100


def test_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "clean.py").write_text("import asyncio\n\nasync def main():\n    await asyncio.sleep(0.01)\n")
    assert cli("clean.py", "--no-profile", cwd=tmp_path).returncode == 0
    # the static findings of the profiled file are reported (unconfirmed) even when main() is clean
    assert cli("prog.py", "--entry", "clean", "--no-profile", cwd=tmp_path).returncode == 1
    assert cli("prog.py", "--exit-zero", "--no-profile", cwd=tmp_path).returncode == 0
    for args in (("missing.py",), ("prog.py", "--entry", "nope"), ("prog.py", "--entry", "not_async"), ("prog.py", "--threshold", "0")):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) <= 2


def test_text_report_and_timeout(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import asyncio\n\nasync def main():\n    reader = asyncio.StreamReader()\n    await reader.read(1)\n"
    )
    proc = cli("slow.py", "--timeout", "0.3", "--no-profile", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "missing-timeout" in proc.stdout and "slow.py:5" in proc.stdout
    assert "timed out after 0.3 s" in proc.stdout


def test_a_file_inside_a_package_is_imported_with_its_package(tmp_path: Path) -> None:
    """Relative and absolute imports of sibling modules work; the blocking line in the
    sibling is found."""
    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("import time\n\ndef slow():\n    time.sleep(0.15)\n")
    (pkg / "app.py").write_text(
        "import asyncio\nfrom .helpers import slow\nfrom shop.helpers import slow as again\n\n"
        "async def main():\n    await asyncio.sleep(0)\n    slow()\n"
    )
    proc = cli("--format", "json", "--no-profile", "--exit-zero", "shop/app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = [(f["kind"], f["path"], f["line"]) for f in json.loads(proc.stdout)["findings"]]
    assert ("blocking-call-in-async", "shop/helpers.py", 4) in found


def test_an_import_error_of_the_program_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import nonexistent_module_xyz\n\nasync def main():\n    pass\n")
    proc = cli("bad.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["async-expert: error: importing bad.py failed: ModuleNotFoundError: No module named 'nonexistent_module_xyz'"]
