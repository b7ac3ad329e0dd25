"""The static scanner against the corpus of real, publicly reported async bugs.

For every expected finding with ``static`` of ``strong`` or ``interprocedural``,
a finding of that kind must be reported at one of its lines; ``weak`` ones must
be reported too (as a hint); ``clean_lines`` must never be reported as blocking.
"""
from __future__ import annotations

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_paths

from corpus_util import CORPUS, corpus_expected

EXPECTED = corpus_expected()

CASES = [
    pytest.param(name, i, exp, id=f"{name.split('_')[0]}-{exp['kind']}-{exp['lines'][0]}")
    for name, spec in sorted(EXPECTED.items())
    for i, exp in enumerate(spec["findings"])
    if exp["static"] in ("strong", "interprocedural", "weak")
]

_reports: dict = {}


def _scan(name: str):
    if name not in _reports:
        _reports[name] = scan_paths([str(CORPUS / name)], Settings(cache=False))
    return _reports[name]


@pytest.mark.parametrize("name,index,exp", CASES)
def test_corpus_finding_reported(name: str, index: int, exp: dict) -> None:
    report = _scan(name)
    got = [(f.kind, f.line) for f in report.findings]
    hits = [f for f in report.findings if f.kind == exp["kind"] and f.line in exp["lines"]]
    assert hits, f"{name}: expected {exp['kind']} at {exp['lines']} ({exp['static']}); got {got}"
    assert all(f.fix and f.explanation for f in hits)


@pytest.mark.parametrize("name", sorted(n for n, s in EXPECTED.items() if s["clean_lines"]))
def test_corpus_clean_lines_not_blocking(name: str) -> None:
    report = _scan(name)
    clean = set(EXPECTED[name]["clean_lines"])
    bad = [f for f in report.findings if f.kind == "blocking-call-in-async" and f.line in clean]
    assert not bad, f"{name}: correct code reported as blocking: {[(f.code, f.line) for f in bad]}"


def test_corpus_every_file_scans_without_errors() -> None:
    report = scan_paths([str(CORPUS)], Settings(cache=False))
    assert len(report.files_scanned) == len(EXPECTED)
    assert report.errors == []
    assert not [f for f in report.findings if f.kind == "syntax-error"]
