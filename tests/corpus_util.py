"""The corpus under tests/corpus: a copy of the team's reproductions of real async bugs
(each file names the public report it reproduces) and their expected findings."""
from __future__ import annotations

import json
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def corpus_expected() -> dict:
    """expected.json: {file: {"findings": [{"kind", "lines", "static", "runtime"}], "clean_lines": [...]}}."""
    return json.loads((CORPUS / "expected.json").read_text())
