"""Fuzz: generated programs never crash the scanner (after flake8-async's own
hypothesmith test, tests/test_flake8_async.py::test_does_not_crash_on_any_valid_code).

``hypothesmith.from_grammar()`` writes syntactically valid source from the Python
grammar; ``from_node()`` builds it from the AST (so it is more often also
semantically plausible: real ``async def``, ``await``, ``with``). Each program
goes through :func:`scan_source` as a module and as a notebook cell (top-level
``await`` allowed), and a batch goes through :func:`scan_paths` as files of one
package so that the linker runs over all of them. Example counts are capped to
keep the run well under a minute.
"""
from __future__ import annotations

import os
import tempfile
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
hypothesmith = pytest.importorskip("hypothesmith")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from async_expert_ext.config import Settings  # noqa: E402
from async_expert_ext.model import KINDS, ScanReport  # noqa: E402
from async_expert_ext.scan.runner import scan_paths, scan_source  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("AEX_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),  # shrinking generated programs takes minutes
)
NOCACHE = Settings(cache=False, jobs=1)


def _check(report: ScanReport, n_lines: int) -> None:
    for f in report.findings:
        assert f.kind in KINDS
        assert f.code.startswith("AEX")
        assert 0 <= f.line <= n_lines + 1, f
        assert f.message
    report.to_dict()  # serialisable


def _scan_both(source: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes and the like
        n = source.count("\n") + 1
        _check(scan_source(source, "<fuzz>", notebook=False, settings=NOCACHE), n)
        _check(scan_source(source, "<fuzz-cell>", notebook=True, settings=NOCACHE), n)


@pytest.mark.slow
@FUZZ
@given(hypothesmith.from_grammar())
def test_from_grammar_never_crashes(source: str) -> None:
    _scan_both(source)


@pytest.mark.slow
@FUZZ
@given(hypothesmith.from_node())
def test_from_node_never_crashes(source: str) -> None:
    _scan_both(source)


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("AEX_FUZZ_BATCHES", "4")), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, phases=(Phase.explicit, Phase.generate))
@given(hypothesmith.from_node(), st.lists(hypothesmith.from_grammar(), min_size=1, max_size=3))
def test_generated_package_through_scan_paths(first: str, more: list[str]) -> None:
    """Several generated modules in one package, linked as one program (files
    that do not compile become syntax-error findings; the rest are linked).
    hypothesmith's ``from_node`` may be drawn once per example, hence one of it
    and a list of ``from_grammar`` programs."""
    sources = [first, *more]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pkg = os.path.join(tmp, "fuzzpkg")
        os.mkdir(pkg)
        open(os.path.join(pkg, "__init__.py"), "w").close()
        for i, src in enumerate(sources):
            with open(os.path.join(pkg, f"m{i}.py"), "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(src)
        report = scan_paths([pkg], NOCACHE)
        assert len(report.files_scanned) + len(report.errors) == len(sources) + 1
        for f in report.findings:
            assert f.kind in KINDS


def test_deep_nesting_is_handled() -> None:
    """Pathological nesting: a RecursionError in the walk becomes a note, not a crash."""
    depth = 150
    src = "async def f():\n" + "".join("    " * (i + 1) + "if x:\n" for i in range(depth)) + "    " * (depth + 1) + "pass\n"
    report = scan_source(src, "deep.py", notebook=False, settings=NOCACHE)
    report.to_dict()
    expr = "x = " + "(" * 180 + "1" + ")" * 180 + "\n"
    scan_source(expr, "parens.py", notebook=False, settings=NOCACHE)
