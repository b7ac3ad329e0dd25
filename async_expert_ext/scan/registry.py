"""The rule registry: the one place where every static rule is declared.

A rule is a class with its metadata (code, kind, severity, message template,
explanation, fix, before/after example and references) and ``visit_<Node>`` /
``leave_<Node>`` hooks that the runner calls during its single walk of the tree::

    @rule
    class TimeSleep(Rule):
        code = "AEX101"
        kind = "blocking-call-in-async"
        ...
        def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
            if ctx.in_coroutine and ctx.resolve(node.func) == "time.sleep":
                self.report(ctx, node, name="time.sleep")

Rules can also hand work to the linker (:mod:`async_expert_ext.scan.link`) for
facts that are only known after every file of the scan is walked, through
:meth:`FileContext.defer` and a function registered with :func:`link_check`.

Rule families live one per module in :mod:`async_expert_ext.scan.rules`; importing
that package registers them all.
"""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from ..model import Confidence, Finding, Section, Severity

if TYPE_CHECKING:  # pragma: no cover
    from .context import FileContext
    from .link import Deferred, Program

__all__ = ["Rule", "rule", "link_check", "all_rules", "get_rule", "LINK_CHECKS", "REFINERS", "refiner", "apply_refiners"]

_RULES: dict[str, type[Rule]] = {}
#: link-time checks by name: ``f(deferred, program) -> Iterable[Finding]``.
LINK_CHECKS: dict[str, Callable[[Deferred, Program], Iterable[Finding]]] = {}
#: post-link refiners by name: ``f(findings, program, settings) -> list[Finding]``.
#: They annotate findings with program-wide context (e.g. the FastAPI route a
#: blocking call runs in) without adding duplicates; see :func:`refiner`.
REFINERS: dict[str, Callable[[list[Finding], Program, Any], list[Finding]]] = {}


class Rule:
    """Base class of static rules. Subclasses set the class attributes below and
    define ``visit_<NodeType>(self, node, ctx)`` / ``leave_<NodeType>(self, node, ctx)``
    and optionally ``finish(self, ctx)`` (called once after the walk of a file).

    One instance is made per scanned file, so rules may keep per-file state on ``self``.
    """

    code: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.WARNING
    section: ClassVar[Section] = Section.ASYNC_PATTERNS
    confidence: ClassVar[Confidence] = Confidence.HIGH
    #: one-line message; ``str.format`` template filled from ``report(**fields)``.
    message: ClassVar[str] = ""
    explanation: ClassVar[str] = ""
    fix: ClassVar[str] = ""
    fix_example: ClassVar[str] = ""
    references: ClassVar[tuple[str, ...]] = ()
    #: the pyproject/CLI name used in docs (defaults to the class name).
    name: ClassVar[str] = ""

    def __init__(self, severity: Severity | None = None) -> None:
        self.effective_severity = severity or self.severity

    # -- reporting ----------------------------------------------------------
    def make_finding(
        self,
        *,
        path: str,
        line: int,
        col: int = 0,
        end_line: int = 0,
        symbol: str = "",
        snippet: str = "",
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        call_chain: tuple[str, ...] = (),
        message: str | None = None,
        fix: str | None = None,
        extra: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Finding:
        """Build a :class:`Finding` from this rule's metadata and ``fields``
        (which fill the ``message`` template)."""
        text = message if message is not None else _format(self.message, fields)
        return Finding(
            code=self.code,
            kind=self.kind,
            severity=severity or getattr(self, "effective_severity", self.severity),
            section=self.section,
            path=path,
            line=line,
            col=col,
            end_line=end_line or line,
            symbol=symbol,
            message=text,
            explanation=self.explanation,
            fix=_format(fix if fix is not None else self.fix, fields),
            fix_example=self.fix_example,
            references=self.references,
            confidence=confidence or self.confidence,
            call_chain=call_chain,
            source="static",
            snippet=snippet,
            extra=extra or {},
        )

    def report(
        self,
        ctx: FileContext,
        node: ast.AST,
        *,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        call_chain: tuple[str, ...] = (),
        message: str | None = None,
        fix: str | None = None,
        **fields: Any,
    ) -> None:
        """Report a finding at ``node`` in the file being walked (noqa is applied by the context)."""
        ctx.add(
            self.make_finding(
                path=ctx.path,
                line=getattr(node, "lineno", 0),
                col=getattr(node, "col_offset", 0),
                end_line=getattr(node, "end_lineno", 0) or 0,
                symbol=ctx.symbol,
                snippet=ctx.line_text(getattr(node, "lineno", 0)),
                severity=severity,
                confidence=confidence,
                call_chain=call_chain,
                message=message,
                fix=fix,
                **fields,
            )
        )

    @classmethod
    def doc(cls) -> dict[str, Any]:
        """The rule's documentation fields, as shown in docs/rules.md."""
        return {
            "code": cls.code,
            "name": cls.name or cls.__name__,
            "kind": cls.kind,
            "severity": cls.severity.value,
            "section": cls.section.value,
            "confidence": cls.confidence.value,
            "message": cls.message,
            "explanation": cls.explanation,
            "fix": cls.fix,
            "fix_example": cls.fix_example,
            "references": list(cls.references),
        }


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _format(template: str, fields: dict[str, Any]) -> str:
    if not fields or "{" not in template:
        return template
    try:
        return template.format_map(_SafeDict(fields))
    except (ValueError, IndexError):
        return template


def rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator: register a rule. Codes must be unique.

    Raises:
        ValueError: when the code is empty or already registered, or the kind is unknown.
    """
    from ..model import KINDS

    if not cls.code:
        raise ValueError(f"rule {cls.__name__} has no code")
    if cls.code in _RULES and _RULES[cls.code] is not cls:
        raise ValueError(f"duplicate rule code {cls.code}: {cls.__name__} and {_RULES[cls.code].__name__}")
    if cls.kind not in KINDS:
        raise ValueError(f"rule {cls.code} has unknown kind {cls.kind!r}")
    if not cls.__doc__ or cls.__doc__ is Rule.__doc__:
        # the rule's documentation is its metadata (also rendered in docs/rules.md)
        refs = " ".join(cls.references)
        cls.__doc__ = f"{cls.code} ({cls.kind}, {cls.severity.value}): {cls.explanation}\n\nFix: {cls.fix}\n\nReferences: {refs}"
    _RULES[cls.code] = cls
    return cls


def link_check(name: str) -> Callable[[Callable[..., Iterable[Finding]]], Callable[..., Iterable[Finding]]]:
    """Register a link-time check under ``name`` (see :meth:`FileContext.defer`)."""

    def deco(fn: Callable[..., Iterable[Finding]]) -> Callable[..., Iterable[Finding]]:
        LINK_CHECKS[name] = fn
        return fn

    return deco


def refiner(name: str) -> Callable[[Callable[..., list[Finding]]], Callable[..., list[Finding]]]:
    """Register a post-link refiner under ``name``: ``f(findings, program, settings)``
    gets every finding of the scan (local and linked) and returns the list to keep,
    typically the same findings with some replaced by annotated copies
    (``Finding.replace``). Refiners run in registration order, before deduplication."""

    def deco(fn: Callable[..., list[Finding]]) -> Callable[..., list[Finding]]:
        REFINERS[name] = fn
        return fn

    return deco


def apply_refiners(findings: list[Finding], program: Program, settings: Any = None) -> list[Finding]:
    """Run every registered refiner over ``findings`` (see :func:`refiner`)."""
    _load()
    for fn in REFINERS.values():
        findings = list(fn(findings, program, settings))
    return findings


def _load() -> None:
    from . import rules  # noqa: F401  (imports every family, which registers them)


def all_rules() -> dict[str, type[Rule]]:
    """Every registered rule, by code, sorted by code."""
    _load()
    return dict(sorted(_RULES.items()))


def check_selectors(flag: str, keys: Iterable[str] | None) -> None:
    """Reject ``--select``/``--ignore`` values that match no rule code, code prefix,
    rule name or kind: a typo must not turn a scan into a silent pass.

    Raises:
        async_expert_ext.errors.UsageError: naming the first unknown value.
    """
    from ..errors import UsageError
    from ..model import KINDS

    rules = all_rules().values()
    for key in keys or ():
        if key in KINDS or key.upper().startswith("AEX9"):  # AEX9xx: runtime findings
            continue
        if any(r.code.startswith(key.upper()) or (r.name or r.__name__) == key for r in rules):
            continue
        raise UsageError(f"{flag} {key!r} matches no rule code, code prefix or kind (see docs/rules.md)")


def get_rule(code: str) -> type[Rule]:
    """The rule class registered under ``code``.

    Raises:
        KeyError: when no rule has that code.
    """
    _load()
    return _RULES[code]
