"""The linker: interprocedural facts across the functions of one scan.

Each file's walk yields a :class:`FileResult`: its local findings, a
:class:`FuncFacts` per function (calls it makes, rule notes such as the blocking
calls it contains) and :class:`Deferred` checks (a call site whose verdict
depends on another function, perhaps in another file of the package). The
:class:`Program` joins the results of all files and runs every deferred check.

All these objects are plain, picklable data: they are cached on disk and sent
between worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..model import Finding

__all__ = ["FuncFacts", "Deferred", "FileResult", "Program", "Frame"]


@dataclass
class FuncFacts:
    """What the linker knows about one function.

    Attributes:
        qualname: ``package.module.Class.method``.
        path, line: where it is defined.
        is_async: ``async def``.
        is_generator: contains ``yield`` (an async generator when ``is_async``).
        params: positional parameter names.
        calls: ``(callee qualname, line)`` for every call whose callee resolved.
        notes: rule-defined facts, by key. ``"blocking"`` holds
            ``(description, line)`` pairs for direct blocking calls in this function;
            other keys are rule-specific.
    """

    qualname: str
    path: str
    line: int
    is_async: bool
    is_generator: bool = False
    params: list[str] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)
    notes: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class Deferred:
    """A call site whose finding depends on facts about ``target``.

    ``check`` names a function registered with
    :func:`~async_expert_ext.scan.registry.link_check`.
    """

    check: str
    rule_code: str
    target: str
    path: str
    line: int
    col: int
    end_line: int
    symbol: str
    snippet: str
    caller: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileResult:
    """The outcome of walking one file (picklable; cached by content hash)."""

    path: str
    module: str
    findings: list[Finding] = field(default_factory=list)
    funcs: dict[str, FuncFacts] = field(default_factory=dict)
    deferred: list[Deferred] = field(default_factory=list)
    #: module-level import aliases, qualified: ``"pkg.name" -> "pkg.impl.name"``
    aliases: dict[str, str] = field(default_factory=dict)
    #: line -> (codes, kinds) suppressions, applied to linked findings too
    suppress: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: module-level names with a known object type (``lock = threading.Lock()``)
    module_types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """One step of a call chain: ``qualname`` called at ``path:line``."""

    qualname: str
    path: str
    line: int
    what: str = ""

    def __str__(self) -> str:
        label = self.what or self.qualname
        return f"{label} ({self.path}:{self.line})"


class Program:
    """Every function of the scan, with alias resolution and transitive queries."""

    def __init__(self, results: Iterable[FileResult]) -> None:
        self.results = list(results)
        self.funcs: dict[str, FuncFacts] = {}
        self.aliases: dict[str, str] = {}
        for r in self.results:
            self.funcs.update(r.funcs)
            self.aliases.update(r.aliases)
        self._chain_cache: dict[tuple[str, str], tuple[Frame, ...] | None] = {}

    def canonical(self, qualname: str, _seen: set[str] | None = None) -> str:
        """Follow package re-exports (``from .impl import f`` in ``__init__``).
        Alias cycles (``a.X -> b.X -> a.X``, also through a class head) end the walk."""
        seen = _seen if _seen is not None else set()
        while qualname in self.aliases and qualname not in seen and qualname not in self.funcs:
            seen.add(qualname)
            qualname = self.aliases[qualname]
        if qualname not in self.funcs:
            # "pkg.mod.Class.method" where "pkg.mod.Class" is an alias
            head, _, attr = qualname.rpartition(".")
            if head in self.aliases and head not in seen:
                seen.add(head)
                return self.canonical(self.aliases[head] + "." + attr, seen)
        return qualname

    def func(self, qualname: str) -> FuncFacts | None:
        """The facts of a function; a class name gives its ``__init__``."""
        q = self.canonical(qualname)
        f = self.funcs.get(q)
        if f is None:
            f = self.funcs.get(q + ".__init__")
        return f

    def chain(self, qualname: str, note: str = "blocking", *, through_async: bool = False) -> tuple[Frame, ...] | None:
        """The shortest call chain from ``qualname`` down to a call recorded under
        ``note`` (e.g. a blocking call), following only sync functions (calls into
        ``async def`` only create coroutines) unless ``through_async``.

        Returns the frames, the last of which is the offending call, or None.
        """
        f = self.func(qualname)
        if f is None:
            return None
        key = (f.qualname, note)
        if key in self._chain_cache:
            return self._chain_cache[key]
        # breadth-first search for the shortest chain
        from collections import deque

        start = f
        parent: dict[str, tuple[str, int] | None] = {start.qualname: None}
        queue = deque([start])
        found: tuple[FuncFacts, Any] | None = None
        while queue:
            cur = queue.popleft()
            hits = cur.notes.get(note)
            if hits:
                found = (cur, hits[0])
                break
            for callee, line in cur.calls:
                g = self.func(callee)
                if g is None or g.qualname in parent:
                    continue
                if g.is_async and not through_async:
                    continue
                if g.is_generator and not g.is_async:
                    continue  # calling a sync generator function runs nothing yet
                parent[g.qualname] = (cur.qualname, line)
                queue.append(g)
        result: tuple[Frame, ...] | None = None
        if found is not None:
            cur, hit = found
            what, line = (hit[0], hit[1]) if isinstance(hit, (tuple, list)) else (str(hit), cur.line)
            frames = [Frame(cur.qualname, cur.path, int(line), str(what))]
            name = cur.qualname
            while parent[name] is not None:
                caller, call_line = parent[name]  # type: ignore[misc]
                cf = self.funcs[caller]
                frames.append(Frame(name, cf.path, call_line, f"{_short(caller)} -> {_short(name)}"))
                name = caller
            result = tuple(reversed(frames))
        self._chain_cache[key] = result
        return result

    def run_checks(self) -> Iterator[Finding]:
        """Run every deferred check; yield the findings that are not suppressed."""
        from .registry import LINK_CHECKS, all_rules

        all_rules()  # make sure every rule module (and its checks) is imported
        suppress = {r.path: r.suppress for r in self.results}
        for r in self.results:
            for d in r.deferred:
                check = LINK_CHECKS.get(d.check)
                if check is None:
                    continue
                for finding in check(d, self) or ():
                    if not _suppressed(suppress.get(finding.path, {}), finding):
                        yield finding


def _short(qualname: str) -> str:
    parts = qualname.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 else qualname


def _suppressed(table: dict[int, tuple[Any, Any]], finding: Finding) -> bool:
    for ln in {finding.line, finding.end_line}:
        rule = table.get(ln)
        if rule is None:
            continue
        codes, kinds = rule
        if codes is None or kinds is None:
            return True
        if any(finding.code.startswith(c) for c in codes) or finding.kind in kinds:
            return True
    return False
