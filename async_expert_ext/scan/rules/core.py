"""Rules that belong to the scanner itself rather than to a bug family."""
from __future__ import annotations

from ...model import Confidence, Section, Severity
from ..registry import Rule, rule


@rule
class SyntaxErrorRule(Rule):
    """Reported by the runner, not by a hook: the file does not parse."""

    code = "AEX000"
    kind = "syntax-error"
    severity = Severity.WARNING
    section = Section.ERROR_HANDLING
    confidence = Confidence.HIGH
    message = "syntax error; the rest of this file was not scanned"
    explanation = (
        "The file could not be parsed, so nothing in it was checked. The scan went on with the other files."
    )
    fix = "Fix the syntax error (the location points at it) and scan again."
    fix_example = "# before\nasync def f(:\n    ...\n# after\nasync def f():\n    ..."
    references = ("https://docs.python.org/3/reference/grammar.html",)
