"""Resources with an async close: HTTP client sessions and async generators.

- :class:`UnclosedSession` (AEX701): ``aiohttp.ClientSession()`` / ``httpx.AsyncClient()``
  neither used with ``async with`` nor closed with ``await x.close()``/``aclose()`` in the
  function that made it (and not handed over: returned, stored on ``self``, passed to a
  constructor or an exit stack). aiohttp then logs "Unclosed client session" and leaks
  the connector's sockets (https://docs.aiohttp.org/en/stable/client_advanced.html#graceful-shutdown;
  corpus case 26, from https://github.com/aio-libs/aiohttp/issues/4342).
- :class:`EarlyExitSkipsClose` (AEX702): a ``continue``/``break``/``return``/``raise``
  between the creation and the close call, outside any ``finally``: that path leaks.
- :class:`SessionPerIteration` (AEX703): a session correctly closed, but created per loop
  iteration or per request, so no connection is ever reused (aiohttp: "Don't create a
  session per request", https://docs.aiohttp.org/en/stable/client_quickstart.html#make-a-request;
  httpx: https://www.python-httpx.org/async/#opening-and-closing-clients).
- :class:`AsyncGeneratorNotClosed` (AEX710): ``async for`` over an async generator of
  the scanned code that leaves early (``break``/``return``) without
  ``contextlib.aclosing``: the generator's ``finally`` (its cleanup) is deferred until
  garbage collection or loop shutdown (PEP 525; corpus case 29, from
  https://github.com/python/cpython/issues/88684).
"""
from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import ClassVar

from ...model import Confidence, Finding, Section, Severity
from ..context import FileContext, dotted_name
from ..link import Deferred, Program
from ..registry import Rule, link_check, rule
from .blocking import call_name
from .locks import enclosing_statement, statement_block, walk_body

AIOHTTP_SESSION = "https://docs.aiohttp.org/en/stable/client_reference.html#client-session"
AIOHTTP_QUICKSTART = "https://docs.aiohttp.org/en/stable/client_quickstart.html#make-a-request"
AIOHTTP_SHUTDOWN = "https://docs.aiohttp.org/en/stable/client_advanced.html#graceful-shutdown"
HTTPX_ASYNC = "https://www.python-httpx.org/async/#opening-and-closing-clients"
ACLOSING = "https://docs.python.org/3/library/contextlib.html#contextlib.aclosing"
PEP525 = "https://peps.python.org/pep-0525/#finalization"
ASYNCGEN_HOOKS = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.shutdown_asyncgens"

#: constructors of clients that must be closed with an await.
SESSION_TYPES = frozenset({"aiohttp.ClientSession", "httpx.AsyncClient"})

_CLOSE = frozenset({"close", "aclose"})
_HANDOVER_CALLS = frozenset(
    {"enter_async_context", "push_async_exit", "push_async_callback", "callback", "append", "add", "put", "put_nowait", "setdefault", "register", "insert", "extend", "update"}
)
_ROUTE_ATTRS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "route", "api_route", "websocket", "view"})
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


def is_request_handler(fn_node: ast.AST, ctx: FileContext) -> bool:
    """A route handler: decorated with ``@app.get(...)``/``@router.post``/``@routes.get``, or
    taking a ``request``/``Request`` first parameter (aiohttp, Starlette)."""
    for d in getattr(fn_node, "decorator_list", ()):
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr in _ROUTE_ATTRS:
            return True
    args = getattr(fn_node, "args", None)
    if args is None:
        return False
    params = [*args.posonlyargs, *args.args]
    if params and params[0].arg in ("self", "cls"):
        params = params[1:]
    if not params:
        return False
    first = params[0]
    if first.arg == "request":
        return True
    ann = (dotted_name(first.annotation) if first.annotation is not None else None) or ""
    return bool(ann) and ann.rpartition(".")[2] in ("Request", "BaseRequest")


def _in_loop(ctx: FileContext) -> ast.AST | None:
    for anc in ctx.ancestors():
        if isinstance(anc, _LOOPS):
            return anc
        if isinstance(anc, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return anc
    return None


class _Usage:
    """How a function treats the session bound to ``name``."""

    def __init__(self, body: list[ast.stmt], name: str) -> None:
        self.managed = False  # async with name / await name.close() / finally close
        self.handed_over = False
        self.close_calls: list[ast.Call] = []
        self.finally_close = False
        for n in walk_body(body):
            if isinstance(n, (ast.Global, ast.Nonlocal)) and name in n.names:
                self.handed_over = True
            elif isinstance(n, ast.AsyncWith):
                if any(isinstance(it.context_expr, ast.Name) and it.context_expr.id == name for it in n.items):
                    self.managed = True
            elif isinstance(n, ast.Try):
                for m in walk_body(n.finalbody):
                    if _is_close_of(m, name):
                        self.finally_close = True
            elif isinstance(n, ast.Await) and _is_close_of(n.value, name):
                self.managed = True
            elif isinstance(n, ast.Call):
                if _is_close_of(n, name):
                    self.close_calls.append(n)
                elif self._hands_over(n, name):
                    self.handed_over = True
            elif isinstance(n, (ast.Return, ast.Yield, ast.YieldFrom)) and n.value is not None:
                if _holds(n.value, name):
                    self.handed_over = True
            elif isinstance(n, (ast.Assign, ast.AnnAssign)):
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                val = n.value
                if val is not None and any(isinstance(m, ast.Name) and m.id == name for m in ast.walk(val)):
                    if any(isinstance(t, (ast.Attribute, ast.Subscript)) for t in targets) or isinstance(val, (ast.Tuple, ast.List, ast.Dict)):
                        self.handed_over = True
        if self.finally_close:
            self.managed = True

    @staticmethod
    def _hands_over(call: ast.Call, name: str) -> bool:
        uses = [a for a in (*call.args, *[k.value for k in call.keywords]) if isinstance(a, ast.Name) and a.id == name]
        if not uses:
            return False
        func = call.func
        tail = func.attr if isinstance(func, ast.Attribute) else (func.id if isinstance(func, ast.Name) else "")
        return tail in _HANDOVER_CALLS or tail.lstrip("_")[:1].isupper()


def _holds(value: ast.AST, name: str) -> bool:
    """True when ``value`` is the session itself or a container/object built around it
    (``return s``, ``return s, other``, ``yield Wrapper(s)``); ``return await s.get()`` is not."""
    if isinstance(value, ast.Name):
        return value.id == name
    if isinstance(value, (ast.Tuple, ast.List, ast.Set)):
        return any(_holds(e, name) for e in value.elts)
    if isinstance(value, ast.Dict):
        return any(v is not None and _holds(v, name) for v in value.values)
    if isinstance(value, ast.Call):
        return _Usage._hands_over(value, name)
    return False


def _is_close_of(node: ast.AST, name: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _CLOSE
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == name
    )


def _early_exits(stmts: list[ast.stmt]) -> Iterable[ast.stmt]:
    """``return``/``raise``/``continue``/``break`` statements that leave ``stmts`` (a
    ``continue``/``break`` inside a nested loop stays in it)."""

    def walk(nodes: Iterable[ast.AST], loop_depth: int) -> Iterable[ast.stmt]:
        for n in nodes:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            if isinstance(n, (ast.Return, ast.Raise)) or isinstance(n, (ast.Continue, ast.Break)) and loop_depth == 0:
                yield n
            if isinstance(n, _LOOPS):
                yield from walk(n.body, loop_depth + 1)
                yield from walk(n.orelse, loop_depth)
            elif isinstance(n, ast.stmt):
                yield from walk(ast.iter_child_nodes(n), loop_depth)

    yield from walk(stmts, 0)


class _SessionRule(Rule):
    kind = "unclosed-session"
    section = Section.ASYNC_PATTERNS
    references: ClassVar[tuple[str, ...]] = (AIOHTTP_SESSION, AIOHTTP_SHUTDOWN, HTTPX_ASYNC)


@rule
class UnclosedSession(_SessionRule):
    """A client session that is never closed."""

    code = "AEX701"
    name = "unclosed-session"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    message = "`{ctor}()` is {where}neither used with `async with` nor closed with `await {var}.close()`"
    explanation = (
        "An aiohttp ClientSession or httpx AsyncClient owns a connection pool. Never closed, its sockets leak "
        "until garbage collection (aiohttp logs 'Unclosed client session'); created per iteration or per "
        "request, no connection is reused and every call pays a new TCP/TLS handshake."
    )
    fix = "Create one session for the whole job and close it: `async with {ctor}() as {var}:` around the loop."
    fix_example = (
        "# before\nfor url in urls:\n    session = aiohttp.ClientSession()\n    await fetch(session, url)\n\n"
        "# after\nasync with aiohttp.ClientSession() as session:\n    for url in urls:\n        await fetch(session, url)"
    )
    references = (AIOHTTP_SESSION, AIOHTTP_QUICKSTART, AIOHTTP_SHUTDOWN, HTTPX_ASYNC)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        v = session_verdict(node, ctx)
        if v is not None and v.unclosed:
            self.report(ctx, node, ctor=v.ctor, where=v.where, var=v.var)


class SessionVerdict:
    """What one ``ClientSession()``/``AsyncClient()`` call site does with its session
    (shared by AEX701-703, computed once per call node).

    Attributes:
        ctor: the constructor's canonical name.
        var: the local name it is bound to ("session" when unbound).
        where: "created per loop iteration and " / "created per request and " / "".
        unclosed: neither ``async with``, awaited close, finally close, nor handed over.
        per_iteration: closed correctly, but made per loop iteration or per request.
        in_loop: made inside a loop (else per request, when ``per_iteration``).
        close_calls: ``var.close()``/``aclose()`` calls outside any ``finally``.
    """

    def __init__(self, ctor: str, var: str, where: str) -> None:
        self.ctor = ctor
        self.var = var
        self.where = where
        self.unclosed = False
        self.per_iteration = False
        self.in_loop = False
        self.close_calls: list[ast.Call] = []


def session_verdict(node: ast.Call, ctx: FileContext) -> SessionVerdict | None:
    """The :class:`SessionVerdict` of a session constructor call, or None for any other
    call (or a session made at module level: one for the program)."""
    try:
        return node._aex_session  # type: ignore[attr-defined,no-any-return]
    except AttributeError:
        pass
    v = _session_verdict(node, ctx)
    node._aex_session = v  # type: ignore[attr-defined]
    return v


def _session_verdict(node: ast.Call, ctx: FileContext) -> SessionVerdict | None:
    ctor = call_name(node, ctx)
    if ctor not in SESSION_TYPES:
        return None
    fn = ctx.function
    if fn is None or fn.kind != "function":
        return None
    parent = ctx.parent
    loop = _in_loop(ctx)
    handler = is_request_handler(fn.node, ctx)
    where = "created per loop iteration and " if loop is not None else ("created per request and " if handler else "")
    v = SessionVerdict(ctor, "session", where)
    v.in_loop = loop is not None
    hot = loop is not None or handler
    if isinstance(parent, ast.withitem):
        grand = ctx.parents[-2] if len(ctx.parents) > 1 else None
        v.per_iteration = isinstance(grand, ast.AsyncWith) and hot
        return v
    if isinstance(parent, ast.Attribute) and parent.value is node:
        v.unclosed = True  # `await aiohttp.ClientSession().get(url)`
        return v
    if isinstance(parent, (ast.Assign, ast.AnnAssign)):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            return v  # self.session = ... / d[k] = ...: stored, closed elsewhere
        v.var = targets[0].id
        usage = _Usage(getattr(fn.node, "body", []), v.var)
        if usage.handed_over:
            return v
        v.unclosed = not usage.managed
        v.per_iteration = usage.managed and hot
        if not usage.finally_close:
            v.close_calls = usage.close_calls
    return v


@rule
class EarlyExitSkipsClose(_SessionRule):
    """An early exit between a session's creation and its close."""

    code = "AEX702"
    name = "early-exit-skips-close"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    message = "`{exit}` leaves before `{var}.close()` (line {close_line}): this path never closes the session made at line {made_line}"
    explanation = (
        "The close call is reached only on the normal path; an early continue/break/return/raise (or an "
        "exception) skips it, and the session leaks its connections."
    )
    fix = "Use `async with ... as {var}:` so every path closes it (or close it in a `finally:`)."
    fix_example = (
        "# before\nsession = aiohttp.ClientSession()\nif not await ok(session):\n    continue\nawait session.close()\n\n"
        "# after\nasync with aiohttp.ClientSession() as session:\n    if not await ok(session):\n        continue"
    )

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        v = session_verdict(node, ctx)
        if v is not None and v.close_calls:
            self.check(ctx, node, v.var, v.close_calls)

    def check(self, ctx: FileContext, node: ast.Call, var: str, closes: list[ast.Call]) -> None:
        stmt, parent = enclosing_statement(ctx)
        block = statement_block(stmt, parent) if stmt is not None else None
        if not block:
            return
        idx = next(i for i, s in enumerate(block) if s is stmt)
        close_idx = None
        close_line = 0
        for j in range(idx + 1, len(block)):
            hit = next((c for c in closes if block[j].lineno <= c.lineno <= (block[j].end_lineno or block[j].lineno)), None)
            if hit is not None:
                close_idx, close_line = j, hit.lineno
                break
        if close_idx is None:
            return
        for ex in _early_exits(block[idx + 1 : close_idx]):
            word = type(ex).__name__.lower()
            self.report(ctx, ex, exit=word, var=var, close_line=close_line, made_line=node.lineno)
            return


@rule
class SessionPerIteration(_SessionRule):
    """A session closed correctly but created per loop iteration or per request."""

    code = "AEX703"
    name = "session-per-iteration"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    message = "a new `{ctor}` is created {where}; no connection is reused"
    explanation = (
        "Each session has its own connection pool: one per iteration or per request means a new TCP (and TLS) "
        "handshake for every call, and sockets piling up in TIME_WAIT under load."
    )
    fix = "Create the session once (around the loop, or at application start-up) and share it."
    fix_example = (
        "# before\n@app.get('/proxy')\nasync def proxy():\n    async with httpx.AsyncClient() as client:\n"
        "        return (await client.get(URL)).json()\n\n"
        "# after\n@asynccontextmanager\nasync def lifespan(app):\n    async with httpx.AsyncClient() as client:\n"
        "        app.state.client = client\n        yield"
    )
    references = (AIOHTTP_QUICKSTART, HTTPX_ASYNC)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        v = session_verdict(node, ctx)
        if v is not None and v.per_iteration:
            self.report(ctx, node, ctor=v.ctor, where="per loop iteration" if v.in_loop else "per request")


# ---------------------------------------------------------------------------
# async generators


def _body_leaves_early(body: list[ast.stmt]) -> ast.stmt | None:
    for ex in _early_exits(body):
        if isinstance(ex, (ast.Break, ast.Return)):
            return ex
    return None


def _closes_generator(fn_body: list[ast.stmt], name: str) -> bool:
    for n in walk_body(fn_body):
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Attribute) and f.attr == "aclose" and isinstance(f.value, ast.Name) and f.value.id == name:
                return True
            tail = f.attr if isinstance(f, ast.Attribute) else (f.id if isinstance(f, ast.Name) else "")
            if tail in ("aclosing", "enter_async_context", "push_async_callback") and any(
                isinstance(a, ast.Name) and a.id == name for a in n.args
            ):
                return True
    return False


@rule
class AsyncGeneratorNotClosed(Rule):
    """``async for`` + ``break``/``return`` over an async generator, without aclosing()."""

    code = "AEX710"
    name = "async-generator-not-closed"
    kind = "async-generator-not-closed"
    severity = Severity.WARNING
    section = Section.ASYNC_PATTERNS
    confidence = Confidence.HIGH
    message = "`async for` over async generator `{gen}()` leaves early (`{exit}` at line {exit_line}) without `aclosing()`: its cleanup is deferred"
    explanation = (
        "Leaving an `async for` early leaves the async generator suspended at its yield. Its `finally` "
        "blocks (releasing a connection, a lock, a file) run only when it is garbage-collected or at loop "
        "shutdown; while a reference is kept they never run."
    )
    fix = "Wrap it: `async with contextlib.aclosing({gen}(...)) as rows: async for row in rows: ...`."
    fix_example = (
        "# before\nasync for row in fetch_rows(pool):\n    if row >= 2:\n        break\n\n"
        "# after\nfrom contextlib import aclosing\n\nasync with aclosing(fetch_rows(pool)) as rows:\n"
        "    async for row in rows:\n        if row >= 2:\n            break"
    )
    references = (ACLOSING, PEP525, ASYNCGEN_HOOKS)

    def visit_AsyncFor(self, node: ast.AsyncFor, ctx: FileContext) -> None:
        ex = _body_leaves_early(node.body)
        if ex is None:
            return
        fn = ctx.function
        it = node.iter
        if isinstance(it, ast.Call):
            q = call_name(it, ctx)
            if q:
                ctx.defer("agen-not-closed", self.code, q, node, exit=type(ex).__name__.lower(), exit_line=ex.lineno, kept=False)
            return
        if isinstance(it, ast.Name) and fn is not None:
            body = getattr(fn.node, "body", [])
            if not isinstance(body, list):
                return
            source = None
            for n in walk_body(body):
                if (
                    isinstance(n, ast.Assign)
                    and n.lineno < node.lineno
                    and len(n.targets) == 1
                    and isinstance(n.targets[0], ast.Name)
                    and n.targets[0].id == it.id
                    and isinstance(n.value, ast.Call)
                ):
                    source = n.value
            if source is None or _closes_generator(body, it.id):
                return
            q = call_name(source, ctx)
            if q:
                ctx.defer("agen-not-closed", self.code, q, node, exit=type(ex).__name__.lower(), exit_line=ex.lineno, kept=True)


@link_check("agen-not-closed")
def _agen_not_closed(d: Deferred, program: Program) -> Iterable[Finding]:
    f = program.func(d.target)
    if f is None or not (f.is_async and f.is_generator):
        return ()
    gen = d.target.rpartition(".")[2]
    return (
        AsyncGeneratorNotClosed().make_finding(
            path=d.path,
            line=d.line,
            col=d.col,
            end_line=d.end_line,
            symbol=d.symbol,
            snippet=d.snippet,
            confidence=Confidence.HIGH if d.data.get("kept") else Confidence.MEDIUM,
            call_chain=(f"{gen} defined at {f.path}:{f.line}",),
            gen=gen,
            exit=d.data.get("exit", "break"),
            exit_line=d.data.get("exit_line", d.line),
        ),
    )
