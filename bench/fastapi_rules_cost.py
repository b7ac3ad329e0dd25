"""Cost of the FastAPI/Starlette rule family (AEX15xx) on a scan (prints ratios; no assertions).

Scans the installed fastapi, starlette and httpx packages (every file imports the
framework or is linked with files that do, so the family's collection runs on all
of them) twice per round, with the family enabled and with ``ignore=["AEX15"]``,
interleaved over several rounds; the best time of each is kept to damp the noise
of a shared machine; times are CPU seconds of the process. Cache off, one process.

Run: ``python bench/fastapi_rules_cost.py [--rounds N]``.
"""
from __future__ import annotations

import argparse
import os
import time

import fastapi
import httpx
import starlette

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = [os.path.dirname(m.__file__) for m in (fastapi, starlette, httpx)]
    best = {"with AEX15xx": float("inf"), "without": float("inf")}
    files = 0
    for _ in range(args.rounds):
        for label, ignore in (("with AEX15xx", ()), ("without", ("AEX15",))):
            t0 = time.process_time()  # CPU seconds of this process: less sensitive to a busy machine
            report = scan_paths(paths, Settings(cache=False, jobs=1, ignore=ignore))
            best[label] = min(best[label], time.process_time() - t0)
            files = len(report.files_scanned)
    print(f"{files} files, best of {args.rounds} rounds (CPU seconds):")
    for label, secs in best.items():
        print(f"  {label:<14} {secs:7.3f}")
    print(f"ratio with/without: {best['with AEX15xx'] / best['without']:.2f}x")


if __name__ == "__main__":
    main()
