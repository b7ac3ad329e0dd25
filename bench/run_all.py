"""Run every benchmark side by side, in one run, and write docs/benchmarks.md.

Run: ``make bench`` (or ``python bench/run_all.py``; ``--quick`` for a shorter run
with fewer repeats). Each script prints its own ratios against a baseline measured
in the same run; this runner only collects their output, with the command that
produced it, the date and the machine, into docs/benchmarks.md. Nothing here
asserts a target: a slow or busy machine prints slow numbers.

Scripts:
- ``bench/scan_speed.py``: the scanner vs the parse-only floor, flake8-async and ruff
  (the installed aiohttp package and a whole site-packages folder);
- ``bench/corpus_detection.py``: detection on tests/corpus, ours vs flake8-async, ruff, mypy;
- ``bench/loop_overhead.py``: ``%%loop_profile`` overhead vs plain asyncio, debug mode
  and pyinstrument alone;
- ``bench/render_scale.py``: rendering 5,000 findings and 10,000 tasks;
- ``bench/fastapi_rules_cost.py``: the cost of the FastAPI rule family on a scan;
- the load probe on the corpus apps (``async-expert load`` on cases 02, 08, 09, 11).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"


def _steps(quick: bool) -> list[tuple[str, list[str]]]:
    py = sys.executable
    steps = [
        ("Detection on the bug corpus", [py, "bench/corpus_detection.py"]),
        ("Scanner speed", [py, "bench/scan_speed.py", *(["--repeat", "1"] if quick else [])]),
        ("%%loop_profile overhead", [py, "bench/loop_overhead.py", *(["--rounds", "2"] if quick else [])]),
        ("Rendering at scale", [py, "bench/render_scale.py"]),
        ("Cost of the FastAPI rule family", [py, "bench/fastapi_rules_cost.py"]),
    ]
    for case in ("02_fastapi_async_endpoint_blocking_sleep.py", "08_fastapi_sync_endpoints_starve_threadpool.py", "09_basehttpmiddleware_contextvar_lost.py", "11_streaming_response_blocking_generator.py"):
        steps.append(
            (
                f"Load probe on corpus {case[:2]}",
                [py, "-m", "async_expert_ext", "load", f"tests/corpus/{case}:app", "--no-memory", "--exit-zero"],
            )
        )
    return steps


def _supported(cmd: list[str], flag: str) -> bool:
    try:
        out = subprocess.run([cmd[0], cmd[1], "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (for a first look)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    env = {**os.environ, "ASYNC_EXPERT_MEMORY": "", "PYTHONUNBUFFERED": "1"}
    sections = []
    for title, cmd in _steps(args.quick):
        if len(cmd) > 2 and cmd[1].startswith("bench/"):
            # drop flags a script does not know (scripts evolve independently)
            kept = cmd[:2]
            rest = cmd[2:]
            while rest:
                flag, value = rest[0], rest[1:2]
                if _supported(cmd, flag):
                    kept += [flag, *value]
                rest = rest[2:]
            cmd = kept
        shown = " ".join(["python" if c == sys.executable else c for c in cmd])
        print(f"\n=== {title}: {shown}", flush=True)
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT, env=env)
            output = proc.stdout + (f"\n[stderr]\n{proc.stderr[-3000:]}" if proc.returncode not in (0, 1) else "")
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or "") if isinstance(exc.stdout, str) else ""
            output += "\n[timed out after 1800 s]"
        took = time.perf_counter() - started
        print(output, flush=True)
        sections.append((title, shown, output.rstrip(), took))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `make bench` (`python bench/run_all.py`) on {now}: Python {platform.python_version()},",
        f"{os.cpu_count()} cores, {platform.machine()}, load average {load:.1f} at the end of the run.",
        "Each section gives the command and its full output; every ratio in it was measured",
        "against a baseline in the same run. Wall-clock figures on a shared 2-core machine are",
        "noisy; the scripts print best-of-N and, where it matters, CPU-time ratios too.",
    ]
    for title, shown, output, took in sections:
        lines += ["", f"## {title}", "", f"`{shown}` ({took:.0f} s)", "", "```", output, "```"]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
