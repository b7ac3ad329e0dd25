"""The per-file walk: scopes, name resolution and rule dispatch in one pass.

:func:`walk_file` parses nothing; it takes a parsed module, builds a cheap index
of its top-level definitions (imports, functions, classes, module-level aliases
and objects), then walks the tree once. For every node it calls the
``visit_<Node>`` hooks of the enabled rules, recurses, then calls their
``leave_<Node>`` hooks. Rules ask the :class:`FileContext` where they are
(:attr:`FileContext.in_coroutine`, :attr:`FileContext.parent`) and what a name
means (:meth:`FileContext.resolve`, :meth:`FileContext.type_of`).

The walk also records, per function, the facts the linker needs for
interprocedural findings (:class:`~async_expert_ext.scan.link.FuncFacts`).
"""
from __future__ import annotations

import ast
import bisect
import builtins
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..model import Finding
from .knowledge import CONSTRUCTORS, canonical
from .link import Deferred, FileResult, FuncFacts

__all__ = ["Scope", "FileContext", "walk_file", "dotted_name"]

_BUILTINS = frozenset(dir(builtins))
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z0-9, ]+))?", re.IGNORECASE)
_IGNORE = re.compile(r"#\s*async-expert:\s*ignore(?:\[(?P<kinds>[^\]]*)\])?", re.IGNORECASE)
_FUNC_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None (no resolution)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


@dataclass
class Scope:
    """A function, lambda, class or module scope during the walk.

    Attributes:
        kind: ``"module"``, ``"class"``, ``"function"`` or ``"lambda"``.
        name: the bare name (``"<lambda>"`` for lambdas).
        qualname: ``module.Class.method`` style name used by the linker.
        symbol: ``Class.method`` style name shown in findings.
        is_async: True for ``async def`` (and a notebook cell with top-level await).
        node: the defining node (the Module for module scope).
        aliases: local name -> qualified name (imports and ``s = time.sleep``).
        types: local name -> object type (``s = requests.Session()``, annotated parameters).
        params: parameter names in order (functions only).
        class_name: the enclosing class's qualname for methods, else "".
        facts: the linker facts for this function (None for module and class scopes).
    """

    kind: str
    name: str
    qualname: str
    symbol: str
    is_async: bool
    node: ast.AST
    aliases: dict[str, str] = field(default_factory=dict)
    types: dict[str, Any] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)
    class_name: str = ""
    facts: FuncFacts | None = None


class FileContext:
    """What rules see while one file is walked.

    Attributes:
        path: the path (or cell label) findings are reported at.
        module: the dotted module name of the file (``"<cell>"`` for cells).
        lines: the source lines (1-based access through :meth:`line_text`).
        notebook: True when the source is a notebook cell (top-level await allowed,
            and the kernel's loop is running at top level).
        parents: the stack of ancestors of the node being visited (innermost last).
        scopes: the stack of :class:`Scope` (innermost last).
    """

    def __init__(
        self,
        path: str,
        module: str,
        source: str,
        tree: ast.Module,
        *,
        notebook: bool = False,
        package: str = "",
        extra_blocking: Sequence[str] = (),
        seed: dict | None = None,
    ) -> None:
        self.path = path
        self.module = module
        self.package = package
        self.source = source
        self.lines = source.splitlines()
        self.tree = tree
        self.notebook = notebook
        self.extra_blocking = tuple(extra_blocking)
        self.parents: list[ast.AST] = []
        self.findings: list[Finding] = []
        self.deferred: list[Deferred] = []
        self.funcs: dict[str, FuncFacts] = {}
        self.module_aliases: dict[str, str] = {}
        self.classes: dict[str, dict[str, Any]] = {}
        self._suppress = _parse_suppressions(self.lines)
        top_await = notebook and _has_top_level_await(tree)
        self.module_scope = Scope(
            kind="module",
            name=module,
            qualname=module,
            symbol="",
            is_async=top_await,
            node=tree,
        )
        if top_await:
            self.module_scope.facts = self._new_facts(module, tree, True, False, [])
        self.scopes: list[Scope] = [self.module_scope]
        if seed:
            self.module_aliases.update(seed.get("aliases", {}))
            self.module_scope.types.update(seed.get("types", {}))
        _index_module(self, tree)

    # -- where we are ---------------------------------------------------------
    @property
    def scope(self) -> Scope:
        """The innermost scope."""
        return self.scopes[-1]

    @property
    def function(self) -> Scope | None:
        """The innermost function or lambda scope (class scopes skipped), or the
        module scope of a notebook cell with top-level await; else None."""
        for s in reversed(self.scopes):
            if s.kind in ("function", "lambda"):
                return s
            if s.kind == "module" and s.is_async:
                return s
        return None

    @property
    def in_coroutine(self) -> bool:
        """True when the code being visited runs as part of a coroutine on the loop:
        the innermost function is an ``async def`` (a lambda or nested sync ``def``
        breaks it). Comprehensions inside a coroutine count."""
        fn = self.function
        return fn is not None and fn.is_async

    @property
    def in_sync_function(self) -> bool:
        """True inside a plain ``def`` or lambda (not at module level)."""
        fn = self.function
        return fn is not None and not fn.is_async

    @property
    def symbol(self) -> str:
        """The enclosing function or class for findings (``Class.method``)."""
        for s in reversed(self.scopes):
            if s.kind in ("function", "class"):
                return s.symbol
        return ""

    @property
    def parent(self) -> ast.AST | None:
        """The parent of the node being visited."""
        return self.parents[-1] if self.parents else None

    def ancestors(self) -> Iterable[ast.AST]:
        """Ancestors of the current node, innermost first, up to the enclosing function."""
        for node in reversed(self.parents):
            yield node
            if isinstance(node, (*_FUNC_TYPES, ast.Lambda)):
                return

    def line_text(self, lineno: int) -> str:
        """The source line ``lineno`` (1-based), or "" when out of range."""
        if 1 <= lineno <= len(self.lines):
            return self.lines[lineno - 1]
        return ""

    # -- resolution -----------------------------------------------------------
    def lookup(self, name: str) -> str | None:
        """The qualified name bound to a bare ``name`` (imports, aliases, local
        and module definitions, builtins), searching scopes inside out."""
        for s in reversed(self.scopes):
            if s.kind == "class" and s is not self.scope:
                continue  # class bodies are not enclosing scopes for methods
            if name in s.aliases:
                return s.aliases[name]
            if name in s.types:
                return None
        if name in self.module_aliases:
            return self.module_aliases[name]
        if name in self.funcs_top or name in self.classes:
            return f"{self.module}.{name}"
        if name in _BUILTINS:
            return f"builtins.{name}"
        return None

    def lookup_type(self, name: str) -> Any:
        """The object type bound to a bare ``name`` in the scopes, inside out, or None."""
        for s in reversed(self.scopes):
            if s.kind == "class" and s is not self.scope:
                continue
            if name in s.types:
                return s.types[name]
            if name in s.aliases:
                return None
        return None

    def _self_class(self, name: str) -> str | None:
        fn = self.function
        if fn is None or not fn.class_name or not fn.params:
            return None
        if fn.params[0] == name and name in ("self", "cls"):
            return fn.class_name
        return None

    def resolve(self, node: ast.AST) -> str | None:
        """The canonical qualified name of a Name/Attribute expression.

        ``time.sleep`` -> ``"time.sleep"`` (through any import alias); ``s.get`` with
        ``s = requests.Session()`` -> ``"requests.Session.get"``; ``self.helper`` in a
        method -> ``"module.Class.helper"``; ``open`` -> ``"builtins.open"``.
        Returns None when the name is unknown.
        """
        if isinstance(node, ast.Name):
            q = self.lookup(node.id)
            return canonical(q) if q else None
        if isinstance(node, ast.Attribute):
            base_type = self.type_of(node.value)
            if isinstance(base_type, str):
                return canonical(f"{base_type}.{node.attr}")
            if isinstance(node.value, ast.Name):
                cls = self._self_class(node.value.id)
                if cls:
                    return f"{cls}.{node.attr}"
            base = self.resolve(node.value)
            if base:
                return canonical(f"{base}.{node.attr}")
        return None

    def type_of(self, node: ast.AST) -> Any:
        """The object type of an expression: a canonical type name (str), a tuple
        of them for tuple-returning calls, or None when unknown."""
        if isinstance(node, ast.Name):
            return self.lookup_type(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            cls = self._self_class(node.value.id)
            if cls:
                info = self.classes.get(cls.rpartition(".")[2])
                if info:
                    return info["attrs"].get(node.attr)
            return None
        if isinstance(node, ast.Await):
            return self.type_of(node.value)
        if isinstance(node, ast.Call):
            q = self.resolve(node.func)
            if q is None:
                return None
            if q in CONSTRUCTORS:
                return CONSTRUCTORS[q]
            cls_name = q.rpartition(".")[2]
            if q == f"{self.module}.{cls_name}" and cls_name in self.classes:
                return q
            if q.startswith("builtins."):
                return None
            return None
        return None

    def annotation_type(self, ann: ast.AST | None) -> Any:
        """The type named by an annotation (``Optional[X]``, ``X | None`` and string
        annotations unwrapped), or None."""
        if ann is None:
            return None
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                ann = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            for side in (ann.left, ann.right):
                if not (isinstance(side, ast.Constant) and side.value is None):
                    return self.annotation_type(side)
            return None
        if isinstance(ann, ast.Subscript):
            head = self.resolve(ann.value) or ""
            if head.endswith("Optional") or head.endswith("Annotated"):
                inner = ann.slice
                if isinstance(inner, ast.Tuple) and inner.elts:
                    inner = inner.elts[0]
                return self.annotation_type(inner)
            return None
        q = self.resolve(ann)
        if q and not q.startswith("builtins."):
            return q
        return None

    # -- binding --------------------------------------------------------------
    def bind(self, target: ast.AST, value: ast.AST | None, typ: Any = None) -> None:
        """Record what ``target = value`` binds in the current scope."""
        scope = self.scope
        if isinstance(target, ast.Name):
            if typ is None and value is not None:
                typ = self.type_of(value)
            scope.aliases.pop(target.id, None)
            scope.types.pop(target.id, None)
            if isinstance(typ, str):
                scope.types[target.id] = typ
            elif value is not None and isinstance(value, (ast.Name, ast.Attribute)):
                q = self.resolve(value)
                if q:
                    scope.aliases[target.id] = q
                else:
                    scope.types[target.id] = None
            else:
                scope.types[target.id] = None  # shadows outer names
        elif isinstance(target, (ast.Tuple, ast.List)):
            if typ is None and value is not None:
                typ = self.type_of(value)
            for i, elt in enumerate(target.elts):
                sub = typ[i] if isinstance(typ, tuple) and i < len(typ) else None
                if isinstance(value, (ast.Tuple, ast.List)) and i < len(value.elts):
                    self.bind(elt, value.elts[i])
                else:
                    self.bind(elt, None, sub if isinstance(sub, str) else None)

    # -- reporting ------------------------------------------------------------
    def suppressed(self, finding: Finding) -> bool:
        """True when a ``# noqa`` / ``# async-expert: ignore[...]`` comment on the
        finding's line (or its node's last line) silences it."""
        for ln in {finding.line, finding.end_line}:
            rule = self._suppress.get(ln)
            if rule is None:
                continue
            codes, kinds = rule
            if codes is None or kinds is None:
                return True
            if any(finding.code.startswith(c) for c in codes) or finding.kind in kinds:
                return True
        return False

    def add(self, finding: Finding) -> None:
        """Record a finding of this file unless a comment on its line suppresses it."""
        if not self.suppressed(finding):
            self.findings.append(finding)

    def defer(self, check: str, rule_code: str, target: str, node: ast.AST, **data: Any) -> None:
        """Ask the linker to run ``check`` on ``target`` once every file is walked;
        the finding (if any) is reported at ``node``."""
        line = getattr(node, "lineno", 0)
        self.deferred.append(
            Deferred(
                check=check,
                rule_code=rule_code,
                target=target,
                path=self.path,
                line=line,
                col=getattr(node, "col_offset", 0),
                end_line=getattr(node, "end_lineno", 0) or line,
                symbol=self.symbol,
                snippet=self.line_text(line),
                caller=(self.function.qualname if self.function else self.module),
                data=data,
            )
        )

    def note(self, key: str, value: Any) -> None:
        """Record a linker fact about the enclosing function (e.g. ``"blocking"``)."""
        fn = self.function
        if fn is not None and fn.facts is not None:
            fn.facts.notes.setdefault(key, []).append(value)

    # -- internal -------------------------------------------------------------
    def _new_facts(self, qualname: str, node: ast.AST, is_async: bool, is_gen: bool, params: list[str]) -> FuncFacts:
        facts = FuncFacts(
            qualname=qualname,
            path=self.path,
            line=getattr(node, "lineno", 0),
            is_async=is_async,
            is_generator=is_gen,
            params=list(params),
        )
        self.funcs[qualname] = facts
        return facts

    @property
    def funcs_top(self) -> dict[str, Any]:
        """The module's top-level functions, by name (from the shallow index)."""
        return self._top_funcs

    def mentions(self, node: ast.AST, word: str) -> bool:
        """True when some source line of ``node`` (``lineno`` to ``end_lineno``)
        contains ``word``: a cheap pre-check before walking a subtree a second time
        (``ctx.mentions(fn_node, "raise")`` before looking for ``raise`` nodes).
        False means the subtree surely has no such token; True means it may."""
        index = self.__dict__.setdefault("_mention_index", {})
        lines = index.get(word)
        if lines is None:
            # split on "\n" only: str.splitlines also splits on form feeds and the
            # like, which would shift the numbers away from ast's line numbers
            lines = index[word] = [i for i, text in enumerate(self.source.split("\n"), 1) if word in text]
        if not lines:
            return False
        start = getattr(node, "lineno", 0)
        end = getattr(node, "end_lineno", None) or start
        i = bisect.bisect_left(lines, start)
        return i < len(lines) and lines[i] <= end

    def enter_function(self, node: ast.AST) -> Scope:
        """Push the scope of a ``def``/``async def``/lambda (parameters typed from
        their annotations) and start its linker facts; the walker pops it."""
        outer = self.scope
        if isinstance(node, ast.Lambda):
            name = "<lambda>"
        else:
            name = node.name  # type: ignore[attr-defined]
        is_async = isinstance(node, ast.AsyncFunctionDef)
        if outer.kind == "class":
            qualname = f"{outer.qualname}.{name}"
            symbol = f"{outer.symbol}.{name}"
            class_name = outer.qualname
        elif outer.kind == "module":
            qualname = f"{self.module}.{name}"
            symbol = name
            class_name = ""
        else:
            qualname = f"{outer.qualname}.{name}"
            symbol = f"{outer.symbol}.{name}" if outer.symbol else name
            class_name = ""
        args = node.args  # type: ignore[attr-defined]
        all_args = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        if args.vararg:
            all_args.append(args.vararg)
        if args.kwarg:
            all_args.append(args.kwarg)
        params = [a.arg for a in [*args.posonlyargs, *args.args]]
        scope = Scope(
            kind="lambda" if isinstance(node, ast.Lambda) else "function",
            name=name,
            qualname=qualname,
            symbol=symbol,
            is_async=is_async,
            node=node,
            params=params,
            class_name=class_name,
        )
        is_gen = False
        if not isinstance(node, ast.Lambda) and self.mentions(node, "yield"):
            is_gen = _is_generator(node)
        scope.facts = self._new_facts(qualname, node, is_async, is_gen, params)
        if outer.kind not in ("module", "class"):
            # a nested def is callable by name from the enclosing function
            outer.aliases[name] = qualname
        for a in all_args:
            typ = self.annotation_type(a.annotation) if a.annotation is not None else None
            scope.types[a.arg] = typ if isinstance(typ, str) else None
        self.scopes.append(scope)
        return scope

    def enter_class(self, node: ast.ClassDef) -> Scope:
        """Push the scope of a class body; the walker pops it."""
        outer = self.scope
        if outer.kind == "module":
            qualname, symbol = f"{self.module}.{node.name}", node.name
        else:
            qualname = f"{outer.qualname}.{node.name}"
            symbol = f"{outer.symbol}.{node.name}" if outer.symbol else node.name
        scope = Scope(kind="class", name=node.name, qualname=qualname, symbol=symbol, is_async=False, node=node)
        self.scopes.append(scope)
        return scope


def _is_generator(node: ast.AST) -> bool:
    stack = list(ast.iter_child_nodes(node))
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(n, (*_FUNC_TYPES, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _has_top_level_await(tree: ast.Module) -> bool:
    stack: list[ast.AST] = list(tree.body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return True
        if isinstance(n, (*_FUNC_TYPES, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _parse_suppressions(lines: list[str]) -> dict[int, tuple[Any, Any]]:
    """line -> (codes or None for all, kinds or None for all)."""
    out: dict[int, tuple[Any, Any]] = {}
    for i, text in enumerate(lines, 1):
        if "#" not in text:
            continue
        m = _NOQA.search(text)
        if m:
            codes = m.group("codes")
            if codes is None:
                out[i] = (None, None)
            else:
                wanted = tuple(c.strip().upper() for c in codes.split(",") if c.strip())
                # flake8 codes of other tools (E722 ...) never silence our AEX codes
                out[i] = (wanted, ())
        m = _IGNORE.search(text)
        if m:
            kinds = m.group("kinds")
            if kinds is None:
                out[i] = (None, None)
            else:
                prev = out.get(i, ((), ()))
                names = tuple(k.strip() for k in kinds.split(",") if k.strip())
                codes = tuple(n.upper() for n in names if n.upper().startswith("AEX"))
                out[i] = ((prev[0] or ()) + codes, (prev[1] or ()) + names)
    return out


def _import_qualname(ctx: FileContext, node: ast.ImportFrom) -> str:
    mod = node.module or ""
    if node.level:
        base = ctx.package.split(".") if ctx.package else []
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)] if len(base) >= node.level - 1 else []
        mod = ".".join([*base, mod] if mod else base)
    return mod


def bind_import(ctx: FileContext, node: ast.AST, scope: Scope | None = None) -> None:
    """Record the names an Import/ImportFrom binds in ``scope`` (default: current)."""
    aliases = scope.aliases if scope is not None else ctx.scope.aliases
    if scope is ctx.module_scope:
        aliases = ctx.module_aliases
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.asname:
                aliases[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                aliases[top] = top
    elif isinstance(node, ast.ImportFrom):
        mod = _import_qualname(ctx, node)
        for a in node.names:
            if a.name == "*":
                continue
            aliases[a.asname or a.name] = canonical(f"{mod}.{a.name}" if mod else a.name)


def _index_module(ctx: FileContext, tree: ast.Module) -> None:
    """A shallow pass over top-level statements: imports, aliases, module objects,
    functions and classes (with the attribute types set in ``__init__``)."""
    ctx._top_funcs = {}
    pending_assigns: list[ast.AST] = []

    def visit_stmt(stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            bind_import(ctx, stmt, ctx.module_scope)
        elif isinstance(stmt, _FUNC_TYPES):
            ctx._top_funcs[stmt.name] = stmt
        elif isinstance(stmt, ast.ClassDef):
            ctx.classes[stmt.name] = {"node": stmt, "attrs": {}, "bases": [dotted_name(b) for b in stmt.bases]}
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            pending_assigns.append(stmt)
        elif isinstance(stmt, (ast.If, ast.Try)):
            # `try: import x except ImportError:` and `if TYPE_CHECKING:` blocks
            for sub in (*stmt.body, *getattr(stmt, "orelse", ()), *getattr(stmt, "finalbody", ())):
                visit_stmt(sub)
            for h in getattr(stmt, "handlers", ()):
                for sub in h.body:
                    visit_stmt(sub)

    for stmt in tree.body:
        visit_stmt(stmt)
    for stmt in pending_assigns:
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                _bind_module(ctx, t, stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            typ = ctx.annotation_type(stmt.annotation)
            if stmt.value is not None and typ is None:
                _bind_module(ctx, stmt.target, stmt.value)
            elif isinstance(typ, str):
                ctx.module_scope.types[stmt.target.id] = typ
    # attribute types of classes, from assignments to self.X in __init__-like methods
    for cname, info in ctx.classes.items():
        ctx.scopes.append(
            Scope(kind="class", name=cname, qualname=f"{ctx.module}.{cname}", symbol=cname, is_async=False, node=info["node"])
        )
        for item in info["node"].body:
            if isinstance(item, _FUNC_TYPES) and item.name in ("__init__", "__post_init__", "setup", "setUp", "__aenter__", "start", "connect", "open"):
                fn = ctx.enter_function(item)
                for stmt in item.body:
                    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                        for t in targets:
                            if (
                                isinstance(t, ast.Attribute)
                                and isinstance(t.value, ast.Name)
                                and t.value.id == "self"
                            ):
                                typ = None
                                if isinstance(stmt, ast.AnnAssign):
                                    typ = ctx.annotation_type(stmt.annotation)
                                if typ is None and stmt.value is not None:
                                    typ = ctx.type_of(stmt.value)
                                if typ is None and isinstance(stmt.value, ast.Name):
                                    typ = fn.types.get(stmt.value.id)
                                if isinstance(typ, str):
                                    info["attrs"].setdefault(t.attr, typ)
                ctx.scopes.pop()
                ctx.funcs.pop(fn.qualname, None)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                typ = ctx.annotation_type(item.annotation)
                if isinstance(typ, str):
                    info["attrs"].setdefault(item.target.id, typ)
        ctx.scopes.pop()


def _bind_module(ctx: FileContext, target: ast.AST, value: ast.AST) -> None:
    if isinstance(target, ast.Name):
        typ = ctx.type_of(value)
        if isinstance(typ, str):
            ctx.module_scope.types[target.id] = typ
        elif isinstance(value, (ast.Name, ast.Attribute)):
            q = ctx.resolve(value)
            if q:
                ctx.module_aliases[target.id] = q


# ---------------------------------------------------------------------------
# the walk

Hook = Callable[[Any, FileContext], None]


_HOOK_NAMES: dict[type, tuple[tuple[str, type], ...]] = {}


def _hook_names(cls: type) -> tuple[tuple[str, type], ...]:
    """``(attribute, ast node type)`` of the ``visit_*``/``leave_*`` hooks of a rule class (memoised)."""
    try:
        return _HOOK_NAMES[cls]
    except KeyError:
        pass
    out = []
    for attr in dir(cls):
        if attr.startswith("visit_") or attr.startswith("leave_"):
            node_type = getattr(ast, attr[6:], None)
            if isinstance(node_type, type) and issubclass(node_type, ast.AST):
                out.append((attr, node_type))
    _HOOK_NAMES[cls] = tuple(out)
    return _HOOK_NAMES[cls]


#: Node types with no children that no rule needs to be told about: the walk does
#: not descend into them unless a rule has a hook for one of them.
_LEAF_BASES = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)
_LEAF_FIELDS = frozenset({"ctx", "op", "ops"})
#: fields that never hold nodes
_SCALAR_FIELDS = frozenset({"id", "name", "attr", "arg", "asname", "module", "level", "type_comment", "kind", "conversion", "is_async", "tag"})
_CHILD_FIELDS: dict[tuple[type, bool], tuple[str, ...]] = {}


def _child_fields(t: type, skip_leaves: bool) -> tuple[str, ...]:
    key = (t, skip_leaves)
    fields = _CHILD_FIELDS.get(key)
    if fields is None:
        drop = _SCALAR_FIELDS | (_LEAF_FIELDS if skip_leaves else frozenset())
        if t is ast.Constant or t is ast.MatchSingleton:
            drop = drop | {"value"}
        fields = _CHILD_FIELDS[key] = tuple(f for f in t._fields if f not in drop)
    return fields


class Dispatch:
    """``visit_<Node>``/``leave_<Node>``/``finish`` hooks of the enabled rules, by node type."""

    def __init__(self, rules: Sequence[Any]) -> None:
        self.rules = list(rules)
        self.enter: dict[type, list[Hook]] = {}
        self.leave: dict[type, list[Hook]] = {}
        self.finish: list[Callable[[FileContext], None]] = []
        for r in self.rules:
            for attr, node_type in _hook_names(type(r)):
                table = self.enter if attr.startswith("visit_") else self.leave
                table.setdefault(node_type, []).append(getattr(r, attr))
            fin = getattr(r, "finish", None)
            if fin is not None:
                self.finish.append(fin)


_SCOPE_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def walk_file(ctx: FileContext, dispatch: Dispatch) -> FileResult:
    """Walk ``ctx.tree`` once, dispatching to the rules; return the file's result."""
    enter, leave = dispatch.enter, dispatch.leave
    parents = ctx.parents
    AST = ast.AST
    # ctx/operator leaves carry nothing a rule needs, unless a rule hooks one of them
    skip_leaves = not any(issubclass(nt, _LEAF_BASES) for nt in (*enter, *leave))
    field_cache: dict[type, tuple[str, ...]] = {}
    # node types the walk can step over: no hooks, no bookkeeping, no children to visit
    # (Constant, Pass, Break, ... and, unless hooked, the ctx/operator leaves)
    _special = (ast.Assign, ast.ClassDef, ast.Import, ast.ImportFrom, ast.AnnAssign, ast.With, ast.AsyncWith, ast.Call, *_SCOPE_FUNCS)
    inert = frozenset(
        nt
        for nt in (ast.Constant, ast.Pass, ast.Break, ast.Continue, ast.Global, ast.Nonlocal, ast.alias)
        if nt not in enter and nt not in leave and nt not in _special and not _child_fields(nt, skip_leaves)
    )

    def fields_of(t: type) -> tuple[str, ...]:
        fields = field_cache.get(t)
        if fields is None:
            fields = field_cache[t] = _child_fields(t, skip_leaves)
        return fields

    def visit(node: ast.AST) -> None:
        t = type(node)
        # bindings first, so rules see the names they introduce
        if t is ast.Assign:
            _run(enter.get(t), node)
            visit_children(node)
            for tgt in node.targets:  # type: ignore[attr-defined]
                ctx.bind(tgt, node.value)  # type: ignore[attr-defined]
            _run(leave.get(t), node)
            return
        if t in _SCOPE_FUNCS:
            # decorators, defaults and annotations belong to the enclosing scope
            if t is not ast.Lambda:
                for d in node.decorator_list:  # type: ignore[attr-defined]
                    visit_in(node, d)
                if node.returns is not None:  # type: ignore[attr-defined]
                    visit_in(node, node.returns)  # type: ignore[attr-defined]
            args = node.args  # type: ignore[attr-defined]
            for d in (*args.defaults, *[k for k in args.kw_defaults if k is not None]):
                visit_in(node, d)
            # hooks of a function node run inside its scope: ctx.function.node is node
            ctx.enter_function(node)
            _run(enter.get(t), node)
            parents.append(node)
            body = node.body if t is not ast.Lambda else [node.body]  # type: ignore[attr-defined]
            for stmt in body:
                visit(stmt)
            parents.pop()
            _run(leave.get(t), node)
            ctx.scopes.pop()
            return
        if t is ast.ClassDef:
            for d in node.decorator_list:  # type: ignore[attr-defined]
                visit_in(node, d)
            for b in (*node.bases, *[k.value for k in node.keywords]):  # type: ignore[attr-defined]
                visit_in(node, b)
            ctx.enter_class(node)  # type: ignore[arg-type]
            _run(enter.get(t), node)
            parents.append(node)
            for stmt in node.body:  # type: ignore[attr-defined]
                visit(stmt)
            parents.pop()
            _run(leave.get(t), node)
            ctx.scopes.pop()
            return
        if t is ast.Import or t is ast.ImportFrom:
            if ctx.scope is not ctx.module_scope:
                bind_import(ctx, node)
        elif t is ast.AnnAssign:
            if isinstance(node.target, ast.Name):  # type: ignore[attr-defined]
                typ = ctx.annotation_type(node.annotation)  # type: ignore[attr-defined]
                ctx.bind(node.target, node.value, typ if isinstance(typ, str) else None)  # type: ignore[attr-defined]
        elif t is ast.With or t is ast.AsyncWith:
            for item in node.items:  # type: ignore[attr-defined]
                if item.optional_vars is not None:
                    ctx.bind(item.optional_vars, item.context_expr)
        elif t is ast.Call:
            fn = ctx.function
            if fn is not None and fn.facts is not None:
                q = ctx.resolve(node.func)  # type: ignore[attr-defined]
                if q and not q.startswith("builtins."):
                    fn.facts.calls.append((q, node.lineno))  # type: ignore[attr-defined]
        hooks = enter.get(t)
        if hooks:
            for h in hooks:
                h(node, ctx)
        visit_children(node)
        hooks = leave.get(t)
        if hooks:
            for h in hooks:
                h(node, ctx)

    def visit_children(node: ast.AST) -> None:
        # ast.iter_child_nodes, without its generator overhead and the leaves
        parents.append(node)
        for name in fields_of(type(node)):
            v = getattr(node, name, None)
            if type(v) is list:
                for item in v:
                    if isinstance(item, AST) and type(item) not in inert:
                        visit(item)
            elif isinstance(v, AST) and type(v) not in inert:
                visit(v)
        parents.pop()

    def visit_in(owner: ast.AST, child: ast.AST) -> None:
        parents.append(owner)
        visit(child)
        parents.pop()

    def _run(hooks: list[Hook] | None, node: ast.AST) -> None:
        if hooks:
            for h in hooks:
                h(node, ctx)

    _run(enter.get(ast.Module), ctx.tree)
    parents.append(ctx.tree)
    for stmt in ctx.tree.body:
        visit(stmt)
    parents.pop()
    _run(leave.get(ast.Module), ctx.tree)
    for fin in dispatch.finish:
        fin(ctx)
    return FileResult(
        path=ctx.path,
        module=ctx.module,
        findings=ctx.findings,
        funcs=ctx.funcs,
        deferred=ctx.deferred,
        aliases={f"{ctx.module}.{k}": v for k, v in ctx.module_aliases.items()},
        suppress=ctx._suppress,
        module_types={k: v for k, v in ctx.module_scope.types.items() if isinstance(v, str)},
    )
