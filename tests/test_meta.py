"""Meta-tests: every rule is registered, documented (docs/rules.md in sync) and tested."""
from __future__ import annotations

import re
from pathlib import Path

from async_expert_ext.docs import DEFAULT_PATH, render_rules_md
from async_expert_ext.model import KINDS, Section, Severity
from async_expert_ext.scan.registry import all_rules

TESTS = Path(__file__).parent


def test_every_rule_has_complete_metadata() -> None:
    rules = all_rules()
    assert len(rules) >= 20
    for code, cls in rules.items():
        assert re.fullmatch(r"AEX\d{3,4}", code), code
        assert cls.kind in KINDS, code
        assert isinstance(cls.severity, Severity), code
        assert isinstance(cls.section, Section), code
        for attr in ("message", "explanation", "fix", "fix_example"):
            assert getattr(cls, attr).strip(), f"{code} has no {attr}"
        assert "# before" in cls.fix_example and "# after" in cls.fix_example, f"{code}: fix_example needs before/after"
        assert cls.references and all(r.startswith("https://") for r in cls.references), code


def test_docs_rules_md_is_in_sync() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render_rules_md(), "run: python -m async_expert_ext.docs"


def test_every_rule_is_tested() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.glob("test_*.py") if p.name != "test_meta.py")
    untested = [code for code in all_rules() if code not in text]
    assert not untested, f"rules without a test naming their code: {untested}"
