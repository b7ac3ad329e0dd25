"""Corpus recall of the runtime profiler: for every case whose expected.json finding has
``runtime: true`` and a kind the loop instruments cover, ``async-expert profile CASE.py``
(the program's main() awaited under the instruments) reports that kind at one of its lines.

A finding counts when it is a runtime finding, or a static finding the run confirmed
(``extra["confirmed"]``, which needs runtime evidence at that line).
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest
from corpus_util import CORPUS, corpus_expected

#: kinds observed by the instruments in async_expert_ext/loop (ours and the other instruments')
RUNTIME_KINDS = {
    "blocking-call-in-async",
    "cpu-bound-in-async",
    "never-awaited",
    "task-exception-never-retrieved",
    "leaked-task",
    "fire-and-forget-task",
    "event-loop-already-running",
    "missing-timeout",
    "cancelled-error-swallowed",
}

CASES = [
    pytest.param(name, i, f["kind"], tuple(f["lines"]), id=f"{name}:{f['kind']}:{f['lines'][0]}")
    for name, case in sorted(corpus_expected().items())
    for i, f in enumerate(case["findings"])
    if f["runtime"] and f["kind"] in RUNTIME_KINDS
]


@functools.cache
def profile_case(name: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "async_expert_ext", "profile", name, "--no-profile", "--no-memory", "--format", "json", "--exit-zero"],
        cwd=CORPUS,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name, index, kind, lines", CASES)
def test_runtime_reports_kind_at_line(name: str, index: int, kind: str, lines: tuple[int, ...]) -> None:
    data = profile_case(name)
    observed = [
        (f["kind"], f["line"])
        for f in data["findings"]
        if f["source"] == "runtime" or f.get("extra", {}).get("confirmed")
    ]
    assert any(k == kind and line in lines for k, line in observed), (kind, lines, observed)


def test_corpus_has_runtime_cases_for_every_kind_we_cover():
    kinds = {c.values[2] for c in CASES}
    assert kinds == RUNTIME_KINDS
