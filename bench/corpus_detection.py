"""Detection on the bug corpus (tests/corpus): async-expert vs flake8-async, ruff and mypy.

Run: ``python bench/corpus_detection.py [--no-runtime]`` (about 1-2 minutes; the
runtime column runs each case's ``main()`` under ``async-expert profile``).

For every expected finding of ``tests/corpus/expected.json`` (each one a bug from a
public report; the file header names it) the table says who reports it:

- **async-expert scan** counts a hit only when a finding of the *expected kind* is
  reported at one of the expected lines (``kind`` + ``line``);
- **async-expert profile** (runtime) likewise, for expectations with ``runtime: true``,
  from ``async-expert profile --format json`` (static findings the run confirmed count);
- the peers do not share our vocabulary of kinds, so they are counted generously:
  any diagnostic at one of the expected lines is a hit:
  - ``flake8-async FILE`` (its own CLI, every ASYNC rule);
  - ``ruff check --select ASYNC,RUF006`` (ruff's flake8-async port plus
    asyncio-dangling-task);
  - ``mypy --ignore-missing-imports`` (any error code, e.g. ``unused-coroutine``).

Also prints the false alarms on ``clean_lines`` (correct code that must not be reported
as blocking). No assertions: this prints figures for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"


def _run(cmd: list[str], timeout: float = 300.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASYNC_EXPERT_MEMORY": ""}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tempfile.gettempdir())


def ours_static(files: list[Path]) -> dict[str, set[tuple[str, int]]]:
    proc = _run([sys.executable, "-m", "async_expert_ext", "scan", "--no-cache", "--no-memory", "--format", "json", "--exit-zero", *map(str, files)])
    data = json.loads(proc.stdout)
    out: dict[str, set[tuple[str, int]]] = {}
    for f in data["findings"]:
        out.setdefault(Path(f["path"]).name, set()).add((f["kind"], f["line"]))
    return out


def ours_runtime(file: Path) -> set[tuple[str, int]]:
    try:
        proc = _run([sys.executable, "-m", "async_expert_ext", "profile", "--no-memory", "--no-profile", "--format", "json", "--exit-zero", "--timeout", "20", str(file)], timeout=120)
        data = json.loads(proc.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return set()
    return {(f["kind"], f["line"]) for f in data.get("findings", []) if Path(f.get("path", "")).name == file.name}


_LINE = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+):(?:\d+:)?\s*(?:error:)?\s*(?P<msg>.*)$", re.M)


def peer_lines(cmd: list[str], files: list[Path]) -> dict[str, set[int]]:
    """Lines each peer reports, by file name (``path:line:...`` output)."""
    try:
        proc = _run([*cmd, *map(str, files)])
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out: dict[str, set[int]] = {}
    for m in _LINE.finditer(proc.stdout):
        out.setdefault(Path(m.group("path")).name, set()).add(int(m.group("line")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-runtime", action="store_true", help="skip the runtime column")
    args = parser.parse_args(argv)
    expected = json.loads((CORPUS / "expected.json").read_text())
    files = [CORPUS / name for name in sorted(expected)]
    started = time.perf_counter()
    static = ours_static(files)
    peers = {
        "flake8-async": peer_lines(["flake8-async"], files),
        "ruff": peer_lines(["ruff", "check", "--no-cache", "--select", "ASYNC,RUF006", "--output-format", "concise", "--exit-zero"], files),
        "mypy": peer_lines(["mypy", "--ignore-missing-imports", "--no-error-summary", "--show-error-codes", "--no-incremental", "--cache-dir", os.devnull], files),
    }
    runtime: dict[str, set[tuple[str, int]]] = {}
    if not args.no_runtime:
        for f in files:
            if any(e["runtime"] for e in expected[f.name]["findings"]):
                runtime[f.name] = ours_runtime(f)
    rows = []
    for name, spec in sorted(expected.items()):
        for exp in spec["findings"]:
            lines = set(exp["lines"])
            hit_static = any(k == exp["kind"] and ln in lines for k, ln in static.get(name, ()))
            hit_runtime = any(k == exp["kind"] and ln in lines for k, ln in runtime.get(name, ())) if exp["runtime"] and not args.no_runtime else None
            rows.append(
                {
                    "case": name.split("_")[0],
                    "kind": exp["kind"],
                    "lines": exp["lines"],
                    "static": exp["static"],
                    "runtime": exp["runtime"],
                    "ours": hit_static,
                    "ours_runtime": hit_runtime,
                    **{peer: bool(lines & got.get(name, set())) for peer, got in peers.items()},
                }
            )
    mark = {True: "yes", False: "-", None: " "}
    print(f"{'case':4} {'kind':32} {'lines':9} {'static':15} {'scan':5} {'profile':7} {'flake8-async':12} {'ruff':5} {'mypy':5}")
    for r in rows:
        print(
            f"{r['case']:4} {r['kind']:32} {','.join(map(str, r['lines'])):9} {r['static']:15} {mark[r['ours']]:5} "
            f"{mark[r['ours_runtime']]:7} {mark[r['flake8-async']]:12} {mark[r['ruff']]:5} {mark[r['mypy']]:5}"
        )
    total = len(rows)
    seeable = [r for r in rows if r["static"] != "none"]
    print()
    print(f"expected findings: {total} in {len(expected)} cases ({len(seeable)} visible to a static scan at all)")
    print(f"async-expert scan    : {sum(r['ours'] for r in rows)}/{total} (kind and line)")
    if not args.no_runtime:
        rt = [r for r in rows if r["runtime"]]
        print(f"async-expert profile : {sum(bool(r['ours_runtime']) for r in rt)}/{len(rt)} runtime-visible (kind and line)")
        both = sum(bool(r["ours"] or r["ours_runtime"]) for r in rows)
        print(f"async-expert, either : {both}/{total}")
    for peer in peers:
        print(f"{peer:21}: {sum(r[peer] for r in rows)}/{total} (any diagnostic at an expected line)")
    union = sum(r["ruff"] or r["mypy"] for r in rows)
    print(f"ruff + mypy together : {union}/{total}")
    clean_bad = []
    for name, spec in expected.items():
        for ln in spec["clean_lines"]:
            if ("blocking-call-in-async", ln) in static.get(name, set()):
                clean_bad.append(f"{name}:{ln}")
    print(f"false alarms on clean_lines (reported as blocking): {len(clean_bad)} {clean_bad}")
    print(f"(took {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
