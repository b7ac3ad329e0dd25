"""FastAPI / Starlette family (AEX15xx): endpoints, dependencies, middleware, streaming.

These rules run on files that import ``fastapi`` or ``starlette``. They know what
the framework does with each function:

- an ``async def`` endpoint, dependency, middleware or background task runs on the
  event loop that serves every request; a plain ``def`` one runs in the threadpool
  (anyio's default ``CapacityLimiter`` of 40 tokens), see
  https://fastapi.tiangolo.com/async/ ;
- ``BaseHTTPMiddleware`` (and ``@app.middleware("http")``, built on it) runs the rest
  of the app in a child task, so ContextVar changes made downstream do not
  propagate back (https://www.starlette.io/middleware/#limitations).

How the family cooperates with the core blocking rules (no duplicate findings)
-------------------------------------------------------------------------------
A blocking call inside an ``async def`` endpoint is already reported, once, by the
blocking family (AEX101-AEX111 directly, AEX120 through sync helpers, AEX13x for CPU
work). This family does not report it again. Instead, during the walk it records
each function's *role* (endpoint with its route, dependency, StreamingResponse body,
background task, HTTP middleware) as linker data, and a post-link *refiner*
(:func:`annotate_endpoint_findings`, registered with
:func:`~async_expert_ext.scan.registry.refiner`) replaces each blocking finding whose
function has such a role - directly, as a closure defined in it, or as an
``async def`` helper it awaits (in any file of the scan) - by an annotated copy:
same code and line, severity raised to critical, the route in the message, the
framework's fix (e.g. "pass the sync iterator to StreamingResponse") and
``extra["fastapi"]`` with the route context. AEX1500 documents that annotation.

Findings that need the whole program (a dependency defined in another file, a
``Depends`` target, the set of heavy sync endpoints) are computed once per scan at
link time from those records.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Iterable

from ...model import Confidence, Finding, Section, Severity
from ..context import FileContext, dotted_name
from ..link import Deferred, FuncFacts, Program
from ..registry import Rule, link_check, refiner, rule
from .blocking import call_name

FASTAPI_ASYNC = "https://fastapi.tiangolo.com/async/"
FASTAPI_LIFESPAN = "https://fastapi.tiangolo.com/advanced/events/"
FASTAPI_YIELD_DEPS = "https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/"
FASTAPI_BACKGROUND = "https://fastapi.tiangolo.com/tutorial/background-tasks/"
FASTAPI_SQL = "https://fastapi.tiangolo.com/tutorial/sql-databases/"
FASTAPI_CUSTOM_RESPONSE = "https://fastapi.tiangolo.com/advanced/custom-response/#streamingresponse"
STARLETTE_MIDDLEWARE = "https://www.starlette.io/middleware/"
STARLETTE_LIMITATIONS = "https://www.starlette.io/middleware/#limitations"
STARLETTE_PURE_ASGI = "https://www.starlette.io/middleware/#pure-asgi-middleware"
STARLETTE_THREADPOOL = "https://www.starlette.io/threadpool/"
STARLETTE_LIFESPAN = "https://www.starlette.io/lifespan/"
STARLETTE_RESPONSES = "https://www.starlette.io/responses/#streamingresponse"
HTTPX_ASYNC = "https://www.python-httpx.org/async/"
AIOHTTP_SESSION = "https://docs.aiohttp.org/en/stable/client_quickstart.html#make-a-request"
SQLA_ASYNCIO = "https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html"
SQLA_POOLING = "https://docs.sqlalchemy.org/en/20/core/pooling.html"

__all__ = ["annotate_endpoint_findings", "uses_framework"]

_FUNC = (ast.FunctionDef, ast.AsyncFunctionDef)
_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "trace")
_ROUTE_DECORATORS = frozenset({*_VERBS, "api_route", "route", "websocket", "websocket_route"})
_APP_TYPES = frozenset(
    {
        "fastapi.FastAPI",
        "fastapi.APIRouter",
        "fastapi.routing.APIRouter",
        "starlette.Starlette",
        "starlette.routing.Router",
    }
)
_ROUTE_CLASSES = {
    "starlette.routing.Route": "route",
    "starlette.routing.WebSocketRoute": "websocket",
    "fastapi.routing.APIRoute": "route",
    "fastapi.routing.APIWebSocketRoute": "websocket",
}
_DEPENDS = frozenset({"fastapi.Depends", "fastapi.Security", "fastapi.params.Depends", "fastapi.params.Security", "fastapi.param_functions.Depends", "fastapi.param_functions.Security"})
_BASE_HTTP = frozenset({"starlette.middleware.base.BaseHTTPMiddleware", "fastapi.middleware.base.BaseHTTPMiddleware"})
_HTTP_ENDPOINT = frozenset({"starlette.endpoints.HTTPEndpoint", "starlette.endpoints.WebSocketEndpoint"})
_STREAMING = frozenset(
    {"fastapi.responses.StreamingResponse", "starlette.responses.StreamingResponse", "sse_starlette.EventSourceResponse", "sse_starlette.sse.EventSourceResponse"}
)
_BACKGROUND_CLS = frozenset({"fastapi.BackgroundTasks", "starlette.background.BackgroundTasks", "fastapi.background.BackgroundTasks"})
_BACKGROUND_ONE = frozenset({"starlette.background.BackgroundTask"})
#: clients/engines that own a connection pool: what -> (short label, is an engine)
_POOLED = {
    "httpx.AsyncClient": "an `httpx.AsyncClient`",
    "httpx.Client": "an `httpx.Client`",
    "aiohttp.ClientSession": "an `aiohttp.ClientSession`",
    "requests.Session": "a `requests.Session`",
    "sqlalchemy.create_engine": "a SQLAlchemy engine (`create_engine`)",
    "sqlalchemy.ext.asyncio.create_async_engine": "a SQLAlchemy engine (`create_async_engine`)",
    "sqlalchemy.ext.asyncio.engine.create_async_engine": "a SQLAlchemy engine (`create_async_engine`)",
    "redis.asyncio.Redis": "a `redis.asyncio.Redis` client",
    "redis.asyncio.from_url": "a `redis.asyncio.Redis` client",
    "asyncpg.create_pool": "an asyncpg pool",
    "motor.motor_asyncio.AsyncIOMotorClient": "a Motor client",
}
_SYNC_SESSION_TYPES = frozenset({"sqlalchemy.orm.Session"})
_SESSIONMAKER = "sqlalchemy.orm.sessionmaker"
_CONTEXTVAR = frozenset({"contextvars.ContextVar"})
_HEALTH_WORDS = ("health", "healthz", "livez", "readyz", "live", "liveness", "ready", "readiness", "ping", "alive", "status")
_CLEANUP_METHODS = frozenset({"close", "aclose", "release", "dispose", "shutdown", "disconnect", "terminate", "rollback", "commit", "cleanup", "stop", "__exit__", "__aexit__"})

# ---------------------------------------------------------------------------
# gating and per-file state


def uses_framework(ctx: FileContext) -> bool:
    """True when the file imports ``fastapi`` or ``starlette`` at module level (any name
    from them; imports in ``try``/``if`` blocks count, imports inside functions do not)."""
    try:
        return ctx._aex_fastapi_uses  # type: ignore[attr-defined]
    except AttributeError:
        pass
    found = any(
        v == "fastapi" or v == "starlette" or v.startswith(("fastapi.", "starlette.", "sse_starlette"))
        for v in ctx.module_aliases.values()
    )
    ctx._aex_fastapi_uses = found  # type: ignore[attr-defined]
    return found


@dataclass
class _FileState:
    owner: Any = None
    prefixes: dict[str, str] = field(default_factory=dict)  # router variable -> prefix
    base_http_classes: set[str] = field(default_factory=set)  # local class names


def _state(ctx: FileContext) -> _FileState:
    try:
        return ctx._aex_fastapi_state  # type: ignore[attr-defined]
    except AttributeError:
        st = _FileState()
        ctx._aex_fastapi_state = st  # type: ignore[attr-defined]
        return st


def _const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _str_list(node: ast.AST | None) -> list[str]:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [e.value.upper() for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def _is_app_object(ctx: FileContext, node: ast.AST) -> bool:
    typ = ctx.type_of(node)
    if isinstance(typ, str) and typ in _APP_TYPES:
        return True
    q = ctx.resolve(node)
    if q and q in _APP_TYPES:
        return False  # the class itself, not an instance
    # a router imported from a sibling module (type unknown): accept names that look like one
    if isinstance(node, ast.Name):
        name = node.id.lower()
        return name in ("app", "api", "application", "router") or name.endswith(("_router", "_app", "router"))
    if isinstance(node, ast.Attribute):
        return node.attr.lower() in ("app", "router") or node.attr.lower().endswith("router")
    return False


def _body_nodes(fn: ast.AST) -> Iterable[ast.AST]:
    """Every node of a function body, not descending into nested defs, lambdas or classes."""
    stack = list(getattr(fn, "body", []))
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, (*_FUNC, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(n))


# ---------------------------------------------------------------------------
# rules


class _FastAPIRule(Rule):
    """Base of the family. The framework facts (roles and per-function notes) are
    collected during the walk by :class:`EndpointContext` (AEX1500), the only class
    with hooks on hot node types. When AEX1500 is not enabled (``--select AEX1501``,
    ``ignore = ["AEX1500"]``), the first enabled rule of the family collects them at
    the end of the file with a second, private walk (:func:`_fallback_collect`)."""

    section = Section.FASTAPI
    kind = "fastapi-pattern"

    def visit_Module(self, node: ast.Module, ctx: FileContext) -> None:
        st = _state(ctx)
        if st.owner is None:  # EndpointContext (lowest code) claims first when enabled
            st.owner = self

    def finish(self, ctx: FileContext) -> None:
        st = _state(ctx)
        if st.owner is self and not isinstance(self, _Collector):
            _fallback_collect(ctx)


class _Collector(_FastAPIRule):
    """The collection hooks (see :class:`_FastAPIRule`)."""

    def visit_Module(self, node: ast.Module, ctx: FileContext) -> None:
        st = _state(ctx)
        st.owner = self
        if uses_framework(ctx):
            _index_file(ctx, st)
        _record_contextvars(ctx, node)

    # Roles are collected in files that import the framework; the notes a dependency,
    # background task or helper module needs (yield shape, clients created, sync
    # sessions, ContextVar use, await/loop/call counts) in every file, since those
    # may live in modules that never import fastapi.
    def visit_FunctionDef(self, node: ast.FunctionDef, ctx: FileContext) -> None:
        gated = uses_framework(ctx)
        if gated:
            _collect_function(ctx, node)
        _function_notes(ctx, node, gated)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        _count(ctx, 2)
        _collect_contextvar_use(ctx, node)
        _call_notes(ctx, node)
        if uses_framework(ctx):
            _collect_call(ctx, node)

    def visit_For(self, node: ast.AST, ctx: FileContext) -> None:
        _count(ctx, 1)

    visit_While = visit_comprehension = visit_For

    def visit_AsyncFor(self, node: ast.AST, ctx: FileContext) -> None:
        _count(ctx, 0)

    visit_AsyncWith = visit_AsyncFor

    def visit_Await(self, node: ast.Await, ctx: FileContext) -> None:
        _count(ctx, 0)
        if not uses_framework(ctx):
            return
        value = node.value
        fn = ctx.function
        fn_facts = fn.facts if fn is not None else None
        if fn is None or fn_facts is None or not isinstance(value, ast.Call):
            return
        if isinstance(value.func, ast.Name) and value.func.id in fn.params:
            fn_facts.notes.setdefault("fastapi.await_param", []).append((value.func.id, node.lineno, getattr(node, "end_lineno", node.lineno)))
        if isinstance(value.func, ast.Attribute) and value.func.attr == "is_disconnected":
            fn_facts.notes.setdefault("fastapi.disconnect", []).append(_site(ctx, node))


def _fallback_collect(ctx: FileContext) -> None:
    """Collect the family's facts with a private walk of the file (AEX1500 disabled):
    a fresh context walked by a collector only, whose notes and records are merged
    into ``ctx`` (the main walk's function facts keep their own notes)."""
    from ..context import Dispatch, walk_file

    side = FileContext(ctx.path, ctx.module, ctx.source, ctx.tree, notebook=ctx.notebook, package=ctx.package, extra_blocking=ctx.extra_blocking)
    side.module_aliases.update(ctx.module_aliases)
    side.module_scope.types.update(ctx.module_scope.types)
    result = walk_file(side, Dispatch([_Collector()]))
    for qual, facts in result.funcs.items():
        mine = ctx.funcs.get(qual)
        if mine is None:
            continue
        for key, values in facts.notes.items():
            if key.startswith("fastapi."):
                mine.notes[key] = values
    ctx.deferred.extend(d for d in result.deferred if d.check == "fastapi")


def _passed_through(ctx: FileContext, value: ast.AST | None) -> bool:
    """True when ``value`` is a parameter of the enclosing function: a framework or wrapper
    forwarding its caller's argument (``APIRouter(on_startup=on_startup)``), not a use."""
    fn = ctx.function
    if fn is None or not isinstance(value, ast.Name) or isinstance(fn.node, ast.Module):
        return False
    args = fn.node.args  # type: ignore[attr-defined]
    return value.id in {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}


def _count(ctx: FileContext, index: int) -> None:
    """Count an await (0), loop (1) or call (2) in the coroutine function being walked."""
    fn = ctx.function
    if fn is None or not fn.is_async or fn.facts is None:
        return
    counts = fn.facts.notes.get("fastapi.counts")
    if counts is None:
        counts = fn.facts.notes["fastapi.counts"] = [[0, 0, 0]]
    counts[0][index] += 1


def _site(ctx: FileContext, node: ast.AST) -> tuple[int, int, int, str, str]:
    line = getattr(node, "lineno", 0)
    return (line, getattr(node, "col_offset", 0), getattr(node, "end_lineno", line) or line, ctx.line_text(line), ctx.symbol)


@rule
class EndpointContext(_Collector):
    """Annotation of blocking findings in endpoints (see the module docstring)."""

    code = "AEX1500"
    name = "endpoint-blocking"
    kind = "blocking-call-in-async"
    severity = Severity.CRITICAL
    section = Section.CRITICAL_ISSUES
    message = "endpoint `{route}`: <the blocking finding's message> (the blocking rule's code is kept)"
    explanation = (
        "An `async def` endpoint, dependency, middleware, background task or StreamingResponse body runs on "
        "the event loop that serves every request: while it blocks, requests to every other route wait too. "
        "FastAPI runs only plain `def` endpoints and dependencies in its threadpool. This rule adds no finding "
        "of its own: it raises the blocking finding found there (AEX101-AEX131) to critical and names the route."
    )
    fix = "Await a non-blocking equivalent, move the call to `await asyncio.to_thread(...)`, or declare the endpoint with plain `def` when nothing in it awaits."
    fix_example = (
        "# before\n@app.get('/orders/export')\nasync def export_orders():\n    time.sleep(0.5)\n    return {'status': 'exported'}\n\n"
        "# after\n@app.get('/orders/export')\nasync def export_orders():\n    await asyncio.sleep(0.5)\n    return {'status': 'exported'}\n\n"
        "# or, when the body must block: a sync endpoint runs in the threadpool\n@app.get('/orders/export')\ndef export_orders():\n    time.sleep(0.5)\n    return {'status': 'exported'}"
    )
    references = (FASTAPI_ASYNC, "https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code", STARLETTE_THREADPOOL)


@rule
class SyncEndpointBlocking(_FastAPIRule):
    code = "AEX1501"
    name = "sync-endpoint-threadpool"
    kind = "sync-endpoint-threadpool"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    message = "sync {role} `{endpoint}` holds a threadpool token while `{call}` blocks; all sync endpoints share 40 tokens"
    explanation = (
        "FastAPI/Starlette run `def` endpoints and dependencies in anyio's worker threads, limited by one "
        "CapacityLimiter of 40 tokens shared by the whole process. Long blocking work (sleeps, synchronous HTTP "
        "or DB calls, heavy CPU) keeps a token per request; under load the pool fills and every other sync "
        "endpoint, even a trivial health check, queues behind it."
    )
    fix = "Make the slow part async (`async def` + an async client, awaited), or give it its own limiter/executor; keep an eye on the pool size (anyio.to_thread.current_default_thread_limiter().total_tokens)."
    fix_example = (
        "# before\n@app.get('/tiles/{z}/{x}/{y}')\ndef render_tile(z: int, x: int, y: int):\n    time.sleep(1.0)  # or requests.get(...)\n    return {'tile': [z, x, y]}\n\n"
        "# after: the wait no longer holds a worker thread\n@app.get('/tiles/{z}/{x}/{y}')\nasync def render_tile(z: int, x: int, y: int):\n    await asyncio.sleep(1.0)  # or await client.get(...)\n    return {'tile': [z, x, y]}"
    )
    references = (FASTAPI_ASYNC, STARLETTE_THREADPOOL, "https://anyio.readthedocs.io/en/stable/threads.html#adjusting-the-default-maximum-worker-thread-count")


@rule
class TrivialSyncEndpoint(_FastAPIRule):
    code = "AEX1502"
    name = "trivial-sync-endpoint"
    kind = "sync-endpoint-threadpool"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    message = "trivial endpoint `{route}` is declared `def`: it queues for a threadpool token behind {heavy}"
    explanation = (
        "A `def` endpoint needs a free worker thread even when its body is trivial. When other sync endpoints "
        "fill the 40-token pool with blocking work, a health check declared `def` waits for a token, answers "
        "late, and orchestrators restart a healthy process."
    )
    fix = "Declare it `async def`: a body that does not block runs directly on the event loop and never waits for the pool."
    fix_example = (
        "# before\n@app.get('/healthz')\ndef healthz():\n    return {'status': 'alive'}\n\n"
        "# after\n@app.get('/healthz')\nasync def healthz():\n    return {'status': 'alive'}"
    )
    references = (FASTAPI_ASYNC, STARLETTE_THREADPOOL)


@rule
class MiddlewareContextVar(_FastAPIRule):
    code = "AEX1503"
    name = "basehttpmiddleware-contextvar"
    kind = "basehttpmiddleware"
    severity = Severity.WARNING
    message = "`{var}.get()` after `await {call_next}(...)` in BaseHTTPMiddleware never sees a value set downstream{evidence}"
    explanation = (
        "BaseHTTPMiddleware (and `@app.middleware('http')`, built on it) runs the endpoint in a child task with a "
        "copy of the context: ContextVar changes made by the endpoint or its dependencies do not propagate back, "
        "so after `call_next` the middleware reads the old value (resources stored there are never closed)."
    )
    fix = "Write the middleware as pure ASGI middleware (it shares the request's context), or release the resource in a yield-dependency."
    fix_example = (
        "# before\n@app.middleware('http')\nasync def close_db_session(request, call_next):\n    response = await call_next(request)\n"
        "    session = current_session.get()  # always the default\n    ...\n\n"
        "# after: pure ASGI middleware\nclass CloseDbSession:\n    def __init__(self, app):\n        self.app = app\n\n"
        "    async def __call__(self, scope, receive, send):\n        token = current_session.set(None)\n        try:\n"
        "            await self.app(scope, receive, send)\n        finally:\n            session = current_session.get()\n"
        "            if session is not None:\n                session.close()\n            current_session.reset(token)\n\napp.add_middleware(CloseDbSession)"
    )
    references = (STARLETTE_LIMITATIONS, STARLETTE_PURE_ASGI, "https://github.com/encode/starlette/issues/1081")


@rule
class BaseHTTPMiddlewareUsage(_FastAPIRule):
    code = "AEX1504"
    name = "basehttpmiddleware-usage"
    kind = "basehttpmiddleware"
    severity = Severity.INFO
    message = "{what} is built on BaseHTTPMiddleware: the endpoint runs in a child task behind it"
    explanation = (
        "BaseHTTPMiddleware runs the downstream app in a separate task and re-streams its response through a "
        "memory channel: ContextVar changes made downstream are lost, every response chunk takes an extra hop, "
        "and it costs throughput compared with pure ASGI middleware."
    )
    fix = "Prefer pure ASGI middleware (a class with `async def __call__(self, scope, receive, send)`), especially for streaming routes and ContextVar-based state."
    fix_example = (
        "# before\n@app.middleware('http')\nasync def add_header(request, call_next):\n    response = await call_next(request)\n"
        "    response.headers['X-Served-By'] = 'api'\n    return response\n\n"
        "# after\nclass AddHeader:\n    def __init__(self, app):\n        self.app = app\n\n    async def __call__(self, scope, receive, send):\n"
        "        async def send_wrapper(message):\n            if message['type'] == 'http.response.start':\n"
        "                message.setdefault('headers', []).append((b'x-served-by', b'api'))\n            await send(message)\n\n"
        "        await self.app(scope, receive, send_wrapper)\n\napp.add_middleware(AddHeader)"
    )
    references = (STARLETTE_MIDDLEWARE, STARLETTE_LIMITATIONS, STARLETTE_PURE_ASGI)

    def visit_FunctionDef(self, node: ast.FunctionDef, ctx: FileContext) -> None:
        self._decorated(node, ctx)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef, ctx: FileContext) -> None:
        self._decorated(node, ctx)

    def _decorated(self, node: ast.AST, ctx: FileContext) -> None:
        if not uses_framework(ctx):
            return
        for d in node.decorator_list:  # type: ignore[attr-defined]
            if _is_http_middleware_decorator(ctx, d):
                self.report(ctx, d, what=f"`@{ast.unparse(d.func)}('http')` middleware `{node.name}`")  # type: ignore[attr-defined]

    def visit_ClassDef(self, node: ast.ClassDef, ctx: FileContext) -> None:
        if uses_framework(ctx) and any((ctx.resolve(b) or "") in _BASE_HTTP for b in node.bases):
            self.report(ctx, node, what=f"middleware class `{node.name}`")

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if not uses_framework(ctx) or not isinstance(node.func, ast.Attribute) or node.func.attr != "add_middleware" or not node.args:
            return
        if (ctx.resolve(node.args[0]) or "") in _BASE_HTTP and not _passed_through(ctx, _kw(node, "dispatch")):
            self.report(ctx, node, what="`add_middleware(BaseHTTPMiddleware, ...)`")


@rule
class DisconnectBehindMiddleware(_FastAPIRule):
    code = "AEX1505"
    name = "disconnect-behind-basehttpmiddleware"
    kind = "basehttpmiddleware"
    severity = Severity.INFO
    confidence = Confidence.LOW
    message = "`request.is_disconnected()` is polled behind BaseHTTPMiddleware ({middleware}); the disconnect reaches it through the middleware's receive wrapper"
    explanation = (
        "Behind BaseHTTPMiddleware the endpoint's `receive` is a wrapper fed by the middleware's task: older "
        "Starlette releases delivered client disconnects late or never there, so long polls and streams kept "
        "working for clients that had gone. Pure ASGI middleware passes `receive` through untouched."
    )
    fix = "Rewrite the middleware as pure ASGI middleware, or check that disconnects are seen with your Starlette version (a test with a client that goes away)."
    fix_example = (
        "# before\n@app.middleware('http')\nasync def timing(request, call_next):\n    return await call_next(request)\n\n"
        "@app.get('/poll')\nasync def poll(request: Request):\n    while not await request.is_disconnected():\n        await asyncio.sleep(1)\n\n"
        "# after\nclass Timing:\n    def __init__(self, app):\n        self.app = app\n\n    async def __call__(self, scope, receive, send):\n"
        "        await self.app(scope, receive, send)\n\napp.add_middleware(Timing)"
    )
    references = (STARLETTE_LIMITATIONS, STARLETTE_PURE_ASGI)


@rule
class StreamingBehindMiddleware(_FastAPIRule):
    code = "AEX1506"
    name = "streaming-behind-basehttpmiddleware"
    kind = "basehttpmiddleware"
    severity = Severity.INFO
    message = "StreamingResponse of `{endpoint}` passes through BaseHTTPMiddleware ({middleware}): every chunk is re-streamed by another task"
    explanation = (
        "BaseHTTPMiddleware reads the downstream response from a memory channel filled by a child task and "
        "re-sends it as a new streaming response: each chunk takes two task switches, background work of the "
        "response and ContextVars set while streaming do not reach the middleware."
    )
    fix = "Use pure ASGI middleware for apps that stream (SSE, downloads, LLM tokens)."
    fix_example = (
        "# before\nclass Log(BaseHTTPMiddleware):\n    async def dispatch(self, request, call_next):\n        return await call_next(request)\n\n"
        "# after\nclass Log:\n    def __init__(self, app):\n        self.app = app\n\n    async def __call__(self, scope, receive, send):\n"
        "        await self.app(scope, receive, send)"
    )
    references = (STARLETTE_LIMITATIONS, STARLETTE_PURE_ASGI, STARLETTE_RESPONSES)


@rule
class ClientPerRequest(_FastAPIRule):
    code = "AEX1508"
    name = "client-per-request"
    kind = "fastapi-pattern"
    severity = Severity.WARNING
    message = "{what} is created per request in {role} `{func}`; create it once in the lifespan and share it"
    explanation = (
        "Clients and engines own a connection pool (and TLS/DNS state). Creating one per request pays the "
        "connection set-up every time, defeats keep-alive and pooling, and leaks sockets when it is not closed."
    )
    fix = "Create it in the app's lifespan, store it on `app.state` (or yield it as lifespan state) and read it in the endpoint or dependency."
    fix_example = (
        "# before\n@app.get('/rates')\nasync def rates():\n    async with httpx.AsyncClient() as client:\n        return (await client.get(URL)).json()\n\n"
        "# after\n@asynccontextmanager\nasync def lifespan(app: FastAPI):\n    async with httpx.AsyncClient() as client:\n        app.state.client = client\n        yield\n\n"
        "app = FastAPI(lifespan=lifespan)\n\n@app.get('/rates')\nasync def rates(request: Request):\n    return (await request.app.state.client.get(URL)).json()"
    )
    references = (FASTAPI_LIFESPAN, HTTPX_ASYNC, "https://www.python-httpx.org/advanced/clients/#why-use-a-client", SQLA_POOLING)


@rule
class OnEventDeprecated(_FastAPIRule):
    code = "AEX1509"
    name = "on-event-deprecated"
    kind = "fastapi-pattern"
    severity = Severity.WARNING
    message = "{what} is deprecated: use a lifespan context manager"
    explanation = (
        "Startup/shutdown event handlers are deprecated in FastAPI and removed from Starlette 1.0. With them, "
        "what start-up creates and shutdown releases are not tied together, and a failing start-up leaves no "
        "guaranteed clean-up; a lifespan context manager does both in one place."
    )
    fix = "Move the code into an `@asynccontextmanager` lifespan: start-up before `yield`, shutdown after it, passed as `FastAPI(lifespan=...)`."
    fix_example = (
        "# before\n@app.on_event('startup')\nasync def startup():\n    app.state.client = httpx.AsyncClient()\n\n"
        "@app.on_event('shutdown')\nasync def shutdown():\n    await app.state.client.aclose()\n\n"
        "# after\n@asynccontextmanager\nasync def lifespan(app: FastAPI):\n    async with httpx.AsyncClient() as client:\n"
        "        app.state.client = client\n        yield\n\napp = FastAPI(lifespan=lifespan)"
    )
    references = (FASTAPI_LIFESPAN, STARLETTE_LIFESPAN)

    def visit_FunctionDef(self, node: ast.FunctionDef, ctx: FileContext) -> None:
        self._decorated(node, ctx)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef, ctx: FileContext) -> None:
        self._decorated(node, ctx)

    def _decorated(self, node: ast.AST, ctx: FileContext) -> None:
        if not uses_framework(ctx):
            return
        for d in node.decorator_list:  # type: ignore[attr-defined]
            if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "on_event" and _is_app_object(ctx, d.func.value):
                event = _const_str(d.args[0]) if d.args else None
                self.report(ctx, d, what=f"`@{ast.unparse(d.func)}({event!r})`")

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if not uses_framework(ctx):
            return
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "add_event_handler" and _is_app_object(ctx, func.value):
            self.report(ctx, node, what=f"`{ast.unparse(func)}(...)`")
            return
        q = ctx.resolve(func) or ""
        if q in _APP_TYPES:
            for k in node.keywords:
                if k.arg in ("on_startup", "on_shutdown") and not _passed_through(ctx, k.value):
                    self.report(ctx, k.value, what=f"`{q.rpartition('.')[2]}({k.arg}=...)`")


@rule
class YieldDependencyCleanup(_FastAPIRule):
    code = "AEX1510"
    name = "yield-dependency-cleanup"
    kind = "unclosed-session"
    severity = Severity.WARNING
    message = "dependency `{func}` cleans up after `yield` without try/finally: `{cleanup}` is skipped when the endpoint raises"
    explanation = (
        "FastAPI throws the endpoint's exception (HTTPException included) into a yield-dependency at its "
        "`yield`. Code after a bare `yield` then never runs, so sessions, connections and locks acquired "
        "before it leak on every failed request."
    )
    fix = "Put the `yield` in `try:` and the release in `finally:` (or acquire with a `with`/`async with` block around the `yield`)."
    fix_example = (
        "# before\ndef get_db():\n    db = SessionLocal()\n    yield db\n    db.close()\n\n"
        "# after\ndef get_db():\n    db = SessionLocal()\n    try:\n        yield db\n    finally:\n        db.close()"
    )
    references = (FASTAPI_YIELD_DEPS,)


@rule
class BackgroundTaskOnLoop(_FastAPIRule):
    code = "AEX1511"
    name = "background-task-on-loop"
    kind = "cpu-bound-in-async"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    message = "background task `{func}` is `async def` but never awaits: its {work} runs on the event loop after the response"
    explanation = (
        "Starlette awaits an `async def` background task on the event loop, after the response is sent; a body "
        "that never awaits (loops, computation, sync calls) holds the loop for its whole run and every request "
        "waits. A plain `def` background task runs in the threadpool instead."
    )
    fix = "Declare the task with plain `def` (it then runs in the threadpool), or hand the heavy part to `await asyncio.to_thread(...)` / a process pool or a task queue."
    fix_example = (
        "# before\nasync def build_report(user_id: int):\n    rows = [score(r) for r in load_rows(user_id)]\n    save(rows)\n\n"
        "@app.post('/report')\nasync def report(user_id: int, background_tasks: BackgroundTasks):\n"
        "    background_tasks.add_task(build_report, user_id)\n\n"
        "# after\ndef build_report(user_id: int):  # runs in the threadpool\n    rows = [score(r) for r in load_rows(user_id)]\n    save(rows)"
    )
    references = (FASTAPI_BACKGROUND, "https://www.starlette.io/background/", FASTAPI_ASYNC)


@rule
class SyncSessionInAsync(_FastAPIRule):
    code = "AEX1512"
    name = "sync-db-session-in-async"
    kind = "fastapi-pattern"
    severity = Severity.WARNING
    message = "async {role} `{func}` uses a synchronous SQLAlchemy Session ({how}): every query in it blocks the event loop"
    explanation = (
        "A sync `Session` does its I/O on the calling thread. FastAPI runs a `def` endpoint in the threadpool, "
        "but an `async def` endpoint runs on the event loop, so each query stalls every request the worker serves."
    )
    fix = "Either declare the endpoint/dependency `def` (it runs in the threadpool), or switch to `AsyncSession` from `async_sessionmaker` and await the queries."
    fix_example = (
        "# before\n@app.get('/users/{uid}')\nasync def read_user(uid: int, db: Session = Depends(get_db)):\n    return db.get(User, uid)\n\n"
        "# after (sync endpoint in the threadpool)\n@app.get('/users/{uid}')\ndef read_user(uid: int, db: Session = Depends(get_db)):\n    return db.get(User, uid)\n\n"
        "# or (async all the way)\n@app.get('/users/{uid}')\nasync def read_user(uid: int, db: AsyncSession = Depends(get_async_db)):\n    return await db.get(User, uid)"
    )
    references = (FASTAPI_ASYNC, FASTAPI_SQL, SQLA_ASYNCIO)


# ---------------------------------------------------------------------------
# walk-time collection (runs in the owner rule only)


def _index_file(ctx: FileContext, st: _FileState) -> None:
    """Module-level facts: router prefixes and local BaseHTTPMiddleware subclasses."""
    for stmt in ctx.tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            q = ctx.resolve(stmt.value.func) or ""
            if q in _APP_TYPES:
                prefix = _const_str(_kw(stmt.value, "prefix"))
                if prefix:
                    st.prefixes[stmt.targets[0].id] = prefix.rstrip("/")
                _collect_app_kwargs(ctx, stmt.value)
        elif isinstance(stmt, ast.ClassDef):
            if any((ctx.resolve(b) or "") in _BASE_HTTP for b in stmt.bases):
                st.base_http_classes.add(stmt.name)


def _collect_app_kwargs(ctx: FileContext, call: ast.Call) -> None:
    """``FastAPI(dependencies=[Depends(f)], lifespan=...)``: app- or router-wide roles."""
    for dep in _depends_in(ctx, _kw(call, "dependencies")):
        ctx.defer("fastapi", "AEX1500", dep, call, role="dependency", route="(every route)", methods=[], user="")


def _depends_in(ctx: FileContext, node: ast.AST | None) -> list[str]:
    out: list[str] = []
    if node is None:
        return out
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and (ctx.resolve(n.func) or "") in _DEPENDS:
            target = n.args[0] if n.args else _kw(n, "dependency")
            if target is not None:
                q = ctx.resolve(target)
                if q and not q.startswith("builtins."):
                    out.append(q)
            n._aex_fastapi_seen = True  # type: ignore[attr-defined]
    return out


def _is_http_middleware_decorator(ctx: FileContext, d: ast.AST) -> bool:
    return (
        isinstance(d, ast.Call)
        and isinstance(d.func, ast.Attribute)
        and d.func.attr == "middleware"
        and bool(d.args)
        and _const_str(d.args[0]) == "http"
        and _is_app_object(ctx, d.func.value)
    )


def _route_of_decorator(ctx: FileContext, d: ast.AST) -> tuple[str, list[str]] | None:
    if not (isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in _ROUTE_DECORATORS):
        return None
    path = _const_str(d.args[0]) if d.args else _const_str(_kw(d, "path"))
    if path is None or not path.startswith("/") and path != "":
        return None
    if not _is_app_object(ctx, d.func.value):
        return None
    attr = d.func.attr
    if attr in _VERBS:
        methods = [attr.upper()]
    elif attr.startswith("websocket"):
        methods = ["WS"]
    else:
        methods = _str_list(_kw(d, "methods")) or ["GET"]
    st = _state(ctx)
    if isinstance(d.func.value, ast.Name) and d.func.value.id in st.prefixes:
        path = st.prefixes[d.func.value.id] + path
    return path, methods


def _collect_function(ctx: FileContext, node: ast.AST) -> None:
    """Roles from decorators, the enclosing class and the signature's dependencies."""
    scope = ctx.scope
    qual = scope.qualname
    route: tuple[str, list[str]] | None = None
    for d in node.decorator_list:  # type: ignore[attr-defined]
        r = _route_of_decorator(ctx, d)
        if r is not None:
            route = r
            ctx.defer("fastapi", "AEX1500", qual, node, role="endpoint", route=r[0], methods=r[1], lines=_lines(ctx, node))
            for dep in _depends_in(ctx, _kw(d, "dependencies")):  # type: ignore[arg-type]
                ctx.defer("fastapi", "AEX1500", dep, d, role="dependency", route=r[0], methods=r[1], user=qual)
        elif _is_http_middleware_decorator(ctx, d):
            ctx.defer("fastapi", "AEX1500", qual, node, role="middleware", route="(every request)", methods=[], base_http=True, call_next=1)
        elif isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "on_event":
            ctx.defer("fastapi", "AEX1500", qual, node, role="event-handler", route="", methods=[])
    # a dispatch method of a BaseHTTPMiddleware subclass / an HTTPEndpoint method
    if len(ctx.scopes) >= 2 and ctx.scopes[-2].kind == "class":
        cls_node = ctx.scopes[-2].node
        bases = {ctx.resolve(b) or "" for b in cls_node.bases}  # type: ignore[attr-defined]
        name = node.name  # type: ignore[attr-defined]
        if name == "dispatch" and (bases & _BASE_HTTP):
            ctx.defer("fastapi", "AEX1500", qual, node, role="middleware", route="(every request)", methods=[], base_http=True, call_next=2)
        elif bases & _HTTP_ENDPOINT and name in (*_VERBS, "on_receive", "on_connect"):
            ctx.defer("fastapi", "AEX1500", qual, node, role="endpoint", route=f"{cls_node.name}.{name}", methods=[name.upper()], lines=_lines(ctx, node), unrouted=True)  # type: ignore[attr-defined]
    # dependencies in the signature (defaults and Annotated[...] annotations)
    args = node.args  # type: ignore[attr-defined]
    sig_nodes: list[ast.AST] = [*args.defaults, *[k for k in args.kw_defaults if k is not None]]
    for a in (*args.posonlyargs, *args.args, *args.kwonlyargs):
        if a.annotation is not None:
            sig_nodes.append(a.annotation)
    for sn in sig_nodes:
        if not isinstance(sn, (ast.Call, ast.Subscript)):
            continue  # Depends(...) is a call, or inside Annotated[...]
        for dep in _depends_in(ctx, sn):
            ctx.defer(
                "fastapi", "AEX1500", dep, node, role="dependency",
                route=route[0] if route else "", methods=route[1] if route else [], user=qual,
            )


def _function_notes(ctx: FileContext, node: ast.AST, full: bool) -> None:
    """Per-function linker notes: sync Session parameters of coroutines and the body
    shape (``full``: awaits/loops/trivial; otherwise only a generator's yield shape)."""
    scope = ctx.scope
    facts = scope.facts
    if facts is None:
        return
    if isinstance(node, ast.AsyncFunctionDef):
        args = node.args
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            if scope.types.get(a.arg) in _SYNC_SESSION_TYPES:
                facts.notes.setdefault("fastapi.sync_session", []).append((*_site(ctx, a), f"parameter `{a.arg}: Session`"))
    if full:
        facts.notes["fastapi.shape"] = [_shape(ctx, node)]
    elif facts.is_generator:
        y = _yield_shape(ctx, node)
        if y is not None:
            facts.notes["fastapi.shape"] = [{"yield": y}]


def _lines(ctx: FileContext, node: ast.AST) -> dict[int, str]:
    start = getattr(node, "lineno", 0)
    end = min(getattr(node, "end_lineno", start) or start, start + 200)
    return {i: ctx.line_text(i) for i in range(start, end + 1)}


def _shape(ctx: FileContext, fn: ast.AST) -> dict[str, Any]:
    """What the linker needs to know about a function body (no AST at link time):
    for a coroutine function, how many awaits, loops and calls it has (background
    tasks); for a small sync function, whether it is trivial (health-check-like
    endpoints); for a generator, its yield shape (yield-dependencies)."""
    shape: dict[str, Any] = {}
    is_async = isinstance(fn, ast.AsyncFunctionDef)
    body = getattr(fn, "body", [])
    if is_async:
        pass  # awaits/loops/calls are counted during the walk ("fastapi.counts", see _count)
    else:
        trivial = len(body) <= 6
        stmts = 0
        if trivial:
            for n in _body_nodes(fn):
                if isinstance(n, ast.stmt):
                    stmts += 1
                if isinstance(n, (ast.For, ast.While, ast.comprehension, ast.With, ast.Try, ast.Global, ast.Nonlocal)):
                    trivial = False
                elif isinstance(n, ast.Call):
                    q = ctx.resolve(n.func) or dotted_name(n.func) or "?"  # not call_name: no memo before bindings exist
                    leaf = q.rpartition(".")[2]
                    if not (
                        q in ("builtins.dict", "builtins.list", "builtins.str", "builtins.int", "builtins.float", "builtins.bool", "builtins.len", "builtins.tuple")
                        or leaf.endswith("Response")
                        or leaf in ("now", "utcnow", "time", "monotonic", "perf_counter")
                    ):
                        trivial = False
                if not trivial:
                    break
        shape["trivial"] = trivial and stmts <= 6
    if ctx.scope.facts is not None and ctx.scope.facts.is_generator:
        y = _yield_shape(ctx, fn)
        if y is not None:
            shape["yield"] = y
    return shape


def _yield_shape(ctx: FileContext, fn: ast.AST) -> dict[str, Any] | None:
    """For a generator: is its first ``yield`` protected (try/finally, try/except, with) and what follows it."""
    body = getattr(fn, "body", [])

    def find(stmts: list[ast.stmt], protected: bool) -> tuple[ast.stmt, list[ast.stmt], bool] | None:
        for i, s in enumerate(stmts):
            if isinstance(s, ast.Expr) and isinstance(s.value, (ast.Yield, ast.YieldFrom)) or (
                isinstance(s, (ast.Assign, ast.AnnAssign)) and isinstance(getattr(s, "value", None), (ast.Yield, ast.YieldFrom))
            ):
                return s, stmts[i + 1 :], protected
            if isinstance(s, ast.Try):
                hit = find(s.body, protected or bool(s.finalbody) or bool(s.handlers))
                if hit:
                    return hit
            elif isinstance(s, (ast.With, ast.AsyncWith)):
                hit = find(s.body, True)
                if hit:
                    return hit
            elif isinstance(s, (ast.If, ast.For, ast.While, ast.AsyncFor)):
                hit = find(s.body, protected) or find(getattr(s, "orelse", []), protected)
                if hit:
                    return hit
        return None

    hit = find(body, False)
    if hit is None:
        return None
    ystmt, after, protected = hit
    cleanup = ""
    for s in after:
        for n in ast.walk(s):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _CLEANUP_METHODS:
                cleanup = ast.unparse(n)
                break
        if cleanup:
            break
    if not cleanup and after:
        cleanup = ast.unparse(after[0]).splitlines()[0]
    return {"line": ystmt.lineno, "col": ystmt.col_offset, "end_line": ystmt.end_lineno or ystmt.lineno, "snippet": ctx.line_text(ystmt.lineno), "protected": protected, "cleanup": cleanup}


def _target_name(ctx: FileContext, node: ast.AST | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Call):  # StreamingResponse(gen(...)): the generator function
        node = node.func
    if isinstance(node, (ast.Name, ast.Attribute)):
        q = ctx.resolve(node)
        if q and not q.startswith("builtins."):
            return q
    return None


def _collect_call(ctx: FileContext, node: ast.Call) -> None:
    q = ctx.resolve(node.func) or ""
    fn = ctx.function
    enclosing = fn.qualname if fn is not None else ""
    func = node.func
    attr = func.attr if isinstance(func, ast.Attribute) else ""
    recv: ast.expr = func.value if isinstance(func, ast.Attribute) else func
    # --- routes added by call -------------------------------------------------
    if attr in ("add_api_route", "add_route", "add_websocket_route", "add_api_websocket_route") and _is_app_object(ctx, recv):
        path = _const_str(node.args[0]) if node.args else _const_str(_kw(node, "path"))
        target = _target_name(ctx, node.args[1] if len(node.args) > 1 else _kw(node, "endpoint") or _kw(node, "route"))
        if path is not None and target:
            methods = _str_list(_kw(node, "methods")) or (["WS"] if "websocket" in attr else ["GET"])
            ctx.defer("fastapi", "AEX1500", target, node, role="endpoint", route=path, methods=methods)
            for dep in _depends_in(ctx, _kw(node, "dependencies")):
                ctx.defer("fastapi", "AEX1500", dep, node, role="dependency", route=path, methods=methods, user=target)
        return
    if q in _ROUTE_CLASSES:
        path = _const_str(node.args[0]) if node.args else _const_str(_kw(node, "path"))
        target = _target_name(ctx, node.args[1] if len(node.args) > 1 else _kw(node, "endpoint"))
        if path is not None and target:
            methods = _str_list(_kw(node, "methods")) or (["WS"] if _ROUTE_CLASSES[q] == "websocket" else ["GET"])
            ctx.defer("fastapi", "AEX1500", target, node, role="endpoint", route=path, methods=methods)
        return
    if q in _APP_TYPES and fn is not None:  # an app/router built inside a factory function
        _collect_app_kwargs(ctx, node)
        return
    # --- dependencies outside signatures: APIRouter(dependencies=...), include_router(...) ---
    if q in _DEPENDS and not getattr(node, "_aex_fastapi_seen", False) and not _in_unentered_signature(ctx):
        for dep in _depends_in(ctx, node):
            ctx.defer("fastapi", "AEX1500", dep, node, role="dependency", route="(router-wide)", methods=[], user="")
        return
    if attr == "add_middleware" and node.args and (ctx.resolve(node.args[0]) or "") in _BASE_HTTP:
        target = _target_name(ctx, _kw(node, "dispatch"))
        if target:
            ctx.defer("fastapi", "AEX1500", target, node, role="middleware", route="(every request)", methods=[], base_http=True, call_next=1)
        return
    if attr == "add_middleware" and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in _state(ctx).base_http_classes:
        return  # the class definition is the finding (AEX1504)
    # --- streaming bodies --------------------------------------------------------
    if q in _STREAMING or q.rpartition(".")[2] in ("StreamingResponse", "EventSourceResponse"):
        content = node.args[0] if node.args else _kw(node, "content")
        if fn is not None and fn.facts is not None:
            fn.facts.notes.setdefault("fastapi.streaming", []).append(_site(ctx, node))
        target = _target_name(ctx, content)
        if target:
            ctx.defer("fastapi", "AEX1500", target, node, role="stream", route="", methods=[], user=enclosing)
        return
    # --- background tasks --------------------------------------------------------
    is_add_task = attr == "add_task" and (
        (ctx.type_of(recv) or "") in _BACKGROUND_CLS
        or "background" in ast.unparse(recv).lower()
        or "tasks" in ast.unparse(recv).lower()
    )
    if is_add_task or q in _BACKGROUND_ONE:
        target = _target_name(ctx, node.args[0] if node.args else _kw(node, "func"))
        if target:
            ctx.defer("fastapi", "AEX1500", target, node, role="background", route="", methods=[], user=enclosing)
        return


def _call_notes(ctx: FileContext, node: ast.Call) -> None:
    """Clients/engines created and sync sessions opened in a function (linker notes)."""
    fn = ctx.function
    if fn is None or fn.facts is None:
        return
    q = call_name(node, ctx) or ""
    func = node.func
    what = _POOLED.get(q)
    if what and not _stored_for_reuse(ctx, node):
        fn.facts.notes.setdefault("fastapi.creates", []).append((*_site(ctx, node), what))
        return
    if fn.is_async and (q in _SYNC_SESSION_TYPES or ctx.type_of(func) == _SESSIONMAKER):
        how = f"`{ast.unparse(func)}()` creates one"
        fn.facts.notes.setdefault("fastapi.sync_session", []).append((*_site(ctx, node), how))


def _in_unentered_signature(ctx: FileContext) -> bool:
    """True while visiting a function's decorators/defaults (before its scope is entered)."""
    entered = {id(s.node) for s in ctx.scopes}
    return any(isinstance(p, _FUNC) and id(p) not in entered for p in ctx.parents)


def _stored_for_reuse(ctx: FileContext, node: ast.Call) -> bool:
    """A client assigned to an attribute (``app.state.client = ...``) or a global is a
    shared (lazily created) one, not a per-request one."""
    parent = ctx.parent
    if isinstance(parent, (ast.Assign, ast.AnnAssign)):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        fn = ctx.function
        for t in targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)):
                return True
            if isinstance(t, ast.Name) and fn is not None:
                for n in _body_nodes(fn.node):
                    if isinstance(n, (ast.Global, ast.Nonlocal)) and t.id in n.names:
                        return True
    return False


def _record_contextvars(ctx: FileContext, tree: ast.Module) -> None:
    """Module-level ``x = ContextVar(...)``: their qualified names, for the linker."""
    names: list[str] = []
    for stmt in tree.body:
        value = getattr(stmt, "value", None)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(value, ast.Call) and (ctx.resolve(value.func) or "") in _CONTEXTVAR:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names += [f"{ctx.module}.{t.id}" for t in targets if isinstance(t, ast.Name)]
    if names:
        ctx.defer("fastapi", "AEX1500", "", tree, role="contextvars", names=names)


def _collect_contextvar_use(ctx: FileContext, node: ast.Call) -> None:
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr in ("get", "set") and isinstance(func.value, (ast.Name, ast.Attribute))):
        return
    fn = ctx.function
    if fn is None or fn.facts is None:
        return
    base = func.value
    ident: str | None = None
    if isinstance(base, ast.Name):
        q = ctx.lookup(base.id)
        if q is not None:
            ident = q  # imported or module-level alias
        elif base.id in ctx.module_scope.types and ctx.lookup_type(base.id) is ctx.module_scope.types.get(base.id):
            ident = f"{ctx.module}.{base.id}"
        elif _is_module_level(ctx, base.id):
            ident = f"{ctx.module}.{base.id}"
    if ident is None or "." not in ident or ident.startswith("builtins."):
        return
    key = "fastapi.cvar_get" if func.attr == "get" else "fastapi.cvar_set"
    fn.facts.notes.setdefault(key, []).append((*_site(ctx, node), ident))


def _is_module_level(ctx: FileContext, name: str) -> bool:
    for s in reversed(ctx.scopes[1:]):
        if name in s.types or name in s.aliases or name in s.params:
            return False
    for stmt in ctx.tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


# ---------------------------------------------------------------------------
# link time: one analysis per program


@dataclass
class _Role:
    role: str
    target: str  # canonical qualname
    route: str
    methods: list[str]
    path: str
    line: int
    user: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.role in ("endpoint",) and self.route:
            m = ",".join(self.methods) if self.methods else ""
            return f"{m} {self.route}".strip()
        return self.route


@dataclass
class _Analysis:
    roles: dict[str, list[_Role]] = field(default_factory=dict)
    contextvars: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    emitted: bool = False
    context: dict[str, tuple[_Role, tuple[str, ...]]] = field(default_factory=dict)
    #: module names of the scan, longest first (for display names)
    modules: tuple[str, ...] = ()


_ROLE_RANK = {"endpoint": 0, "middleware": 1, "dependency": 2, "stream": 3, "background": 4}


def _analysis(program: Program) -> _Analysis:
    cached = getattr(program, "_aex_fastapi", None)
    if cached is not None:
        return cached
    an = _Analysis()
    program._aex_fastapi = an  # type: ignore[attr-defined]
    an.modules = tuple(sorted({r.module for r in program.results}, key=len, reverse=True))
    for r in program.results:
        for d in r.deferred:
            if d.check != "fastapi":
                continue
            role = d.data.get("role", "")
            if role == "contextvars":
                an.contextvars.update(d.data.get("names", ()))
                continue
            for target in _expand_target(program, d.target):
                an.roles.setdefault(target, []).append(
                    _Role(role, target, d.data.get("route", ""), list(d.data.get("methods", [])), d.path, d.line, d.data.get("user", ""), d.data)
                )
    # routes of stream bodies and background tasks come from the function that creates them
    for q, roles in an.roles.items():
        for ro in roles:
            if ro.role in ("stream", "background") and ro.user:
                owner = _owning_endpoint(an, ro.user)
                if owner is not None:
                    ro.route, ro.methods = owner.route, owner.methods
    an.context = _context_map(program, an)
    an.findings = list(_link_findings(program, an))
    return an


def _expand_target(program: Program, target: str) -> list[str]:
    if not target:
        return []
    f = program.func(target)
    if f is not None and not f.qualname.endswith(".__init__"):
        return [f.qualname]
    q = program.canonical(target)
    methods = [f"{q}.{m}" for m in (*_VERBS, "dispatch") if f"{q}.{m}" in program.funcs]
    if methods:  # an HTTPEndpoint class given to Route(...)
        return methods
    return [f.qualname] if f is not None else []


def _owning_endpoint(an: _Analysis, qual: str) -> _Role | None:
    """The endpoint role of ``qual`` or of the nearest enclosing function that has one."""
    cur = qual
    while cur:
        for ro in an.roles.get(cur, ()):
            if ro.role == "endpoint":
                return ro
        cur = cur.rpartition(".")[0]
    return None


def _context_map(program: Program, an: _Analysis) -> dict[str, tuple[_Role, tuple[str, ...]]]:
    """Function qualname -> (the role whose request it runs in, how it is reached)."""
    out: dict[str, tuple[_Role, tuple[str, ...]]] = {}
    seeds: list[tuple[_Role, str]] = []
    for q, roles in an.roles.items():
        best = min((ro for ro in roles if ro.role in _ROLE_RANK), key=lambda ro: _ROLE_RANK[ro.role], default=None)
        if best is not None:
            seeds.append((best, q))
    seeds.sort(key=lambda s: _ROLE_RANK[s[0].role])
    nested_index: dict[str, list[str]] = {}
    for name in program.funcs:
        head = name.rpartition(".")[0]
        while head:
            nested_index.setdefault(head, []).append(name)
            head = head.rpartition(".")[0]
    seed_names = {q for _, q in seeds}
    for role, q in seeds:
        if q not in out:
            out[q] = (role, ())
        for inner in nested_index.get(q, ()):
            if inner not in out and inner not in seed_names:
                out[inner] = (role, (f"defined in `{_name(an, q)}`",))
    # async helpers awaited from them (breadth first, any file of the scan)
    frontier = [(q, role, via) for q, (role, via) in out.items()]
    depth = 0
    while frontier and depth < 6:
        nxt = []
        for q, role, via in frontier:
            f = program.funcs.get(q)
            if f is None:
                continue
            for callee, _line in f.calls:
                g = program.func(callee)
                if g is None or not g.is_async or g.qualname in out:
                    continue
                v = (*via, f"awaited from `{_name(an, q)}`")
                out[g.qualname] = (role, v)
                nxt.append((g.qualname, role, v))
        frontier = nxt
        depth += 1
    return out


def _name(an: _Analysis, q: str) -> str:
    """``q`` without its module: ``Class.method`` / ``func`` / ``outer.inner``."""
    for m in an.modules:
        if q.startswith(m + "."):
            return q[len(m) + 1 :]
    return _short(q)


def _short(q: str) -> str:
    parts = q.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else parts[-1]


def _role_phrase(an: _Analysis, ro: _Role) -> str:
    if ro.role == "endpoint":
        return f"endpoint `{ro.label}`" if ro.route else f"endpoint `{_name(an, ro.target)}`"
    if ro.role == "dependency":
        return f"dependency `{_name(an, ro.target)}`" + (f" of `{' '.join([','.join(ro.methods), ro.route]).strip()}`" if ro.route else "")
    if ro.role == "stream":
        return f"StreamingResponse body `{_name(an, ro.target)}`" + (f" of `{' '.join([','.join(ro.methods), ro.route]).strip()}`" if ro.route else "")
    if ro.role == "background":
        return f"background task `{_name(an, ro.target)}`" + (f" of `{' '.join([','.join(ro.methods), ro.route]).strip()}`" if ro.route else "")
    if ro.role == "middleware":
        return f"HTTP middleware `{_name(an, ro.target)}`"
    return f"`{_name(an, ro.target)}`"


@link_check("fastapi")
def _fastapi_check(d: Deferred, program: Program) -> Iterable[Finding]:
    """All FastAPI link-time findings of the program, emitted with its first record."""
    an = _analysis(program)
    if an.emitted:
        return ()
    an.emitted = True
    return list(an.findings)


def _first(roles: list[_Role], *names: str) -> _Role | None:
    for n in names:
        for ro in roles:
            if ro.role == n:
                return ro
    return None


def _heavy_chain(program: Program, f: FuncFacts) -> list[tuple[str, str, int, str, str]] | None:
    """Shortest path from ``f`` to a critical-severity blocking note (sleep, sync HTTP/DB,
    subprocess, CPU-heavy call ...), following sync callees: ``[(qualname, path, line, what,
    rule code)]``, the last entry being the blocking call (the only one with a code)."""
    from collections import deque

    parent: dict[str, tuple[str, int] | None] = {f.qualname: None}
    queue = deque([f])
    while queue:
        cur = queue.popleft()
        for hit in cur.notes.get("blocking", ()):
            sev = hit[2] if len(hit) > 2 else "critical"
            if sev == "critical":
                frames = [(cur.qualname, cur.path, int(hit[1]), str(hit[0]), str(hit[3]) if len(hit) > 3 else "")]
                name = cur.qualname
                while parent[name] is not None:
                    caller, line = parent[name]  # type: ignore[misc]
                    cf = program.funcs[caller]
                    frames.append((caller, cf.path, line, f"{_short(caller)} -> {_short(name)}", ""))
                    name = caller
                return list(reversed(frames))
        for callee, line in cur.calls:
            g = program.func(callee)
            if g is None or g.qualname in parent or g.is_async or (g.is_generator and g is not f):
                continue
            parent[g.qualname] = (cur.qualname, line)
            queue.append(g)
    return None


def _link_findings(program: Program, an: _Analysis) -> Iterable[Finding]:
    heavy: dict[str, tuple[_Role, list]] = {}
    # AEX1501: sync endpoints/dependencies doing long blocking work
    for q, roles in an.roles.items():
        f = program.funcs.get(q)
        ro = _first(roles, "endpoint", "dependency")
        if f is None or ro is None or f.is_async:
            continue
        chain = _heavy_chain(program, f)
        if not chain:
            continue
        heavy[q] = (ro, chain)
        # the line inside the endpoint: the blocking call itself, or the call into the helper
        line = chain[0][2]
        lines = ro.data.get("lines") or {}
        label = ro.label if ro.role == "endpoint" and ro.route else _name(an, q)
        yield SyncEndpointBlocking().make_finding(
            path=f.path,
            line=line,
            symbol=_symbol(program, f),
            snippet=lines.get(line, ""),
            message=SyncEndpointBlocking.message.format(role=ro.role, endpoint=label, call=chain[-1][3]),
            call_chain=tuple(f"{w} ({p}:{ln})" for _q, p, ln, w, _c in chain),
            # a quick DB query is FastAPI's own tutorial pattern for `def` endpoints: lower confidence
            confidence=Confidence.LOW if chain[-1][4] == "AEX108" else None,
            extra={"fastapi": {"role": ro.role, "route": ro.route, "methods": ro.methods, "endpoint": _name(an, q), "blocking": chain[-1][3]}},
        )
    # AEX1502: trivial sync endpoints competing with them
    heavy_endpoints = [r.label or _name(an, q) for q, (r, _c) in heavy.items()]
    if heavy_endpoints:
        names = ", ".join(f"`{h}`" for h in heavy_endpoints[:3]) + (f" and {len(heavy_endpoints) - 3} more" if len(heavy_endpoints) > 3 else "")
        for q, roles in an.roles.items():
            f = program.funcs.get(q)
            ro = _first(roles, "endpoint")
            if f is None or ro is None or f.is_async or q in heavy or _first(roles, "dependency"):
                continue
            shape = (f.notes.get("fastapi.shape") or [{}])[0]
            if not shape.get("trivial") or shape.get("yield"):
                continue
            segment = (ro.route or "").rstrip("/").rpartition("/")[2].lower()
            fname = q.rpartition(".")[2].lower()
            probe = any(segment.startswith(w) or fname.startswith(w) for w in _HEALTH_WORDS)
            yield TrivialSyncEndpoint(severity=Severity.WARNING if probe else None).make_finding(
                path=f.path,
                line=f.line,
                symbol=_symbol(program, f),
                snippet=(ro.data.get("lines") or {}).get(f.line, ""),
                message=TrivialSyncEndpoint.message.format(route=ro.label or _name(an, q), heavy=names)
                + ("; a liveness/readiness probe that waits gets the process restarted" if probe else ""),
                extra={"fastapi": {"role": "endpoint", "route": ro.route, "methods": ro.methods, "endpoint": _name(an, q), "competes_with": heavy_endpoints}},
            )
    # middleware facts
    base_http = [ro for roles in an.roles.values() for ro in roles if ro.role == "middleware" and ro.data.get("base_http")]
    mw_names = ", ".join(sorted({f"`{_name(an, ro.target)}`" for ro in base_http})) or ""
    # AEX1503: ContextVar read after call_next
    for ro in base_http:
        f = program.funcs.get(ro.target)
        if f is None:
            continue
        idx = int(ro.data.get("call_next", 1))
        call_next = f.params[idx] if len(f.params) > idx else "call_next"
        awaited = [ln for name, ln, _end in f.notes.get("fastapi.await_param", ()) if name == call_next]
        if not awaited:
            continue
        after = min(awaited)
        own_sets = {n[-1] for n in f.notes.get("fastapi.cvar_set", ()) if n[0] < after}
        for line, col, end, snippet, symbol, ident in f.notes.get("fastapi.cvar_get", ()):
            if line <= after or ident not in an.contextvars or ident in own_sets:
                continue
            sets = [
                (g.qualname, g.path, n[0])
                for g in program.funcs.values()
                if g.qualname != f.qualname
                for n in g.notes.get("fastapi.cvar_set", ())
                if n[-1] == ident
            ]
            evidence = ""
            if sets:
                s = sets[0]
                evidence = f" (it is set in `{_name(an, s[0])}` at {s[1]}:{s[2]}, which runs inside the endpoint's task)"
            var = ident.rpartition(".")[2]
            yield MiddlewareContextVar(severity=None).make_finding(
                path=f.path,
                line=line,
                col=col,
                end_line=end,
                symbol=symbol,
                snippet=snippet,
                confidence=Confidence.HIGH if sets else Confidence.MEDIUM,
                message=MiddlewareContextVar.message.format(var=var, call_next=call_next, evidence=evidence),
                call_chain=tuple(f"{_name(an, q)} sets {var} ({p}:{ln})" for q, p, ln in sets[:5]),
                extra={"fastapi": {"middleware": _name(an, f.qualname), "contextvar": ident, "set_sites": [f"{p}:{ln}" for _q, p, ln in sets]}},
            )
    # AEX1505/AEX1506: disconnect polling and streaming behind BaseHTTPMiddleware
    if base_http:
        for g in program.funcs.values():
            owner = _owning_endpoint(an, g.qualname)
            ctxrole = an.context.get(g.qualname)
            route = owner.label if owner is not None else (_role_phrase(an, ctxrole[0]) if ctxrole else "")
            if owner is None and ctxrole is None:
                continue
            for line, col, end, snippet, symbol in g.notes.get("fastapi.disconnect", ()):
                yield DisconnectBehindMiddleware().make_finding(
                    path=g.path, line=line, col=col, end_line=end, symbol=symbol, snippet=snippet,
                    message=DisconnectBehindMiddleware.message.format(middleware=mw_names),
                    extra={"fastapi": {"route": route, "middleware": mw_names}},
                )
            for line, col, end, snippet, symbol in g.notes.get("fastapi.streaming", ()):
                yield StreamingBehindMiddleware().make_finding(
                    path=g.path, line=line, col=col, end_line=end, symbol=symbol, snippet=snippet,
                    message=StreamingBehindMiddleware.message.format(endpoint=route or _name(an, g.qualname), middleware=mw_names),
                    extra={"fastapi": {"route": route, "middleware": mw_names}},
                )
    # AEX1508 / AEX1510 / AEX1511 / AEX1512: per role
    for q, roles in an.roles.items():
        f = program.funcs.get(q)
        if f is None:
            continue
        ro = _first(roles, "endpoint", "dependency", "middleware")
        if ro is not None:
            role_word = "endpoint" if ro.role == "endpoint" else ro.role
            label = ro.label if ro.role == "endpoint" and ro.route else _name(an, q)
            for line, col, end, snippet, symbol, what in f.notes.get("fastapi.creates", ()):
                yield ClientPerRequest().make_finding(
                    path=f.path, line=line, col=col, end_line=end, symbol=symbol, snippet=snippet,
                    message=ClientPerRequest.message.format(what=what, role=role_word, func=label),
                    extra={"fastapi": {"role": ro.role, "route": ro.route, "methods": ro.methods}},
                )
            if f.is_async:
                for line, col, end, snippet, symbol, how in f.notes.get("fastapi.sync_session", ()):
                    yield SyncSessionInAsync().make_finding(
                        path=f.path, line=line, col=col, end_line=end, symbol=symbol, snippet=snippet,
                        message=SyncSessionInAsync.message.format(role=role_word, func=label, how=how),
                        extra={"fastapi": {"role": ro.role, "route": ro.route, "methods": ro.methods}},
                    )
        dep = _first(roles, "dependency")
        shape = (f.notes.get("fastapi.shape") or [{}])[0]
        y = shape.get("yield")
        if dep is not None and y and not y["protected"] and y["cleanup"]:
            yield YieldDependencyCleanup().make_finding(
                path=f.path, line=y["line"], col=y["col"], end_line=y["end_line"], symbol=_symbol(program, f), snippet=y["snippet"],
                message=YieldDependencyCleanup.message.format(func=_name(an, q), cleanup=y["cleanup"]),
                extra={"fastapi": {"role": "dependency", "route": dep.route}},
            )
        bg = _first(roles, "background")
        awaits, loops, calls = (f.notes.get("fastapi.counts") or [[0, 0, 0]])[0]
        if bg is not None and f.is_async and awaits == 0 and (loops or calls):
            work = "loop" if loops else "synchronous calls"
            yield BackgroundTaskOnLoop().make_finding(
                path=f.path, line=f.line, symbol=_symbol(program, f), snippet="",
                message=BackgroundTaskOnLoop.message.format(func=_name(an, q), work=work),
                extra={"fastapi": {"role": "background", "route": bg.route, "methods": bg.methods, "added_at": f"{bg.path}:{bg.line}"}},
            )


def _symbol(program: Program, f: FuncFacts) -> str:
    for r in program.results:
        if r.path == f.path and f.qualname.startswith(r.module + "."):
            return f.qualname[len(r.module) + 1 :]
    return _short(f.qualname)


# ---------------------------------------------------------------------------
# the refiner: endpoint context on the blocking family's findings

_ANNOTATED_KINDS = frozenset({"blocking-call-in-async", "cpu-bound-in-async"})

_ROLE_EXPLANATION = {
    "endpoint": " In an `async def` endpoint this runs on the event loop that serves every request: while it blocks, requests to every other route wait too (FastAPI runs only plain `def` endpoints in its threadpool).",
    "dependency": " In an `async def` dependency this runs on the event loop before the endpoint, for every request that uses it (a plain `def` dependency would run in the threadpool).",
    "middleware": " HTTP middleware runs for every request, so every request pays for it and blocks all the others.",
    "stream": " A StreamingResponse body runs on the event loop between chunks: every item it waits for stalls all other requests.",
    "background": " An `async def` background task runs on the event loop after the response: it stalls every request that arrives meanwhile (a plain `def` task would run in the threadpool).",
}
_ROLE_FIX = {
    "endpoint": " Or declare the endpoint with plain `def` (FastAPI then runs it in the threadpool) if nothing in it needs to await.",
    "dependency": " Or declare the dependency with plain `def` (FastAPI runs it in the threadpool).",
    "middleware": "",
    "background": " Or make the background task a plain `def` (Starlette runs it in the threadpool).",
}
_STREAM_FIX = (
    "Hand the sync iterator to StreamingResponse directly - Starlette iterates a sync iterator in its threadpool "
    "(`iterate_in_threadpool`) - or fetch each item off the loop with `await asyncio.to_thread(next, it, None)`."
)
_STREAM_EXAMPLE = (
    "# before\n@app.get('/generate/stream')\nasync def generate_stream(prompt: str):\n    async def sse():\n"
    "        for token in generate_tokens(prompt):  # each next() blocks the loop\n            yield f'data: {token}\\n\\n'\n"
    "    return StreamingResponse(sse(), media_type='text/event-stream')\n\n"
    "# after: a sync generator is iterated in the threadpool\n@app.get('/generate/stream')\nasync def generate_stream(prompt: str):\n"
    "    def sse():\n        for token in generate_tokens(prompt):\n            yield f'data: {token}\\n\\n'\n"
    "    return StreamingResponse(sse(), media_type='text/event-stream')"
)


def _enabled(settings: Any, cls: type[Rule]) -> bool:
    """Whether ``settings`` (select/ignore) leave rule ``cls`` enabled."""
    if settings is None:
        return True
    from ..runner import _matches

    select = tuple(getattr(settings, "select", ()) or ())
    ignore = tuple(getattr(settings, "ignore", ()) or ())
    return (not select or _matches(cls, select)) and not (ignore and _matches(cls, ignore))


@refiner("fastapi-endpoint-context")
def annotate_endpoint_findings(findings: list[Finding], program: Program, settings: Any = None) -> list[Finding]:
    """Give blocking findings that run in a request their FastAPI context (AEX1500).

    Every finding of kind ``blocking-call-in-async`` or ``cpu-bound-in-async`` whose
    function is an endpoint, dependency, HTTP middleware, StreamingResponse body or
    background task - or a closure defined in one, or an ``async def`` helper awaited
    from one - is replaced by a copy: same code, line and kind; severity raised to
    critical (warning for low-confidence rules), unless ``settings.rule_severity``
    overrides that code or kind; the route prefixed to the message; the
    framework-specific fix appended; ``extra["fastapi"]`` holding ``role``,
    ``route``, ``methods``, ``function`` and ``via`` (how the function is reached).

    Args:
        findings: every finding of the scan (local and linked).
        program: the linked program (holds the role records of :mod:`fastapi` rules).
        settings: the scan's :class:`~async_expert_ext.config.Settings` or None.

    It also drops the generic ``async-without-await`` hint (AEX802) on endpoints,
    dependencies and middleware - there ``async def`` without await is FastAPI's fast
    path (https://fastapi.tiangolo.com/async/) - and beside an AEX1511 finding.

    Returns:
        The findings, with annotated copies in place of the originals (never more findings).
    """
    if not any(d.check == "fastapi" for r in program.results for d in r.deferred):
        return findings
    an = _analysis(program)
    if not an.context:
        return findings
    modules = {r.path: r.module for r in program.results}
    overrides = getattr(settings, "rule_severity", None) or {}
    annotate = _enabled(settings, EndpointContext)
    out: list[Finding] = []
    for f in findings:
        if f.kind == "async-without-await" and f.path in modules and f.symbol:
            roles = an.roles.get(f"{modules[f.path]}.{f.symbol}", ())
            if any(ro.role in ("endpoint", "dependency", "middleware") for ro in roles):
                # FastAPI awaits it on the loop: `async def` without await is the fast path there
                # (a plain `def` would take a threadpool token), so the hint is wrong in this context
                continue
        if not annotate or f.kind not in _ANNOTATED_KINDS or f.code.startswith("AEX15") or not f.symbol or f.path not in modules:
            out.append(f)
            continue
        hit = an.context.get(f"{modules[f.path]}.{f.symbol}")
        if hit is None:
            out.append(f)
            continue
        ro, via = hit
        role = ro.role
        sev = f.severity
        if f.code not in overrides and f.kind not in overrides:
            target = Severity.WARNING if f.confidence == Confidence.LOW else Severity.CRITICAL
            if target.rank > sev.rank:
                sev = target
        phrase = _role_phrase(an, ro)
        if role == "stream" and not via:
            prefix = f"{phrase}: "
        else:
            prefix = f"{phrase}{' (' + ', '.join(via) + ')' if via else ''}: "
        is_stream = role == "stream" or any("StreamingResponse" in v for v in via)
        fix = (_STREAM_FIX + " " + f.fix) if is_stream else (f.fix + _ROLE_FIX.get(role, "") if not via else f.fix)
        extra = dict(f.extra)
        extra["fastapi"] = {
            "role": role,
            "route": ro.route,
            "methods": list(ro.methods),
            "function": _name(an, ro.target),
            "file": getattr(program.func(ro.target), "path", ""),  # where the endpoint is defined
            "via": list(via),
            "annotated_by": "AEX1500",
        }
        refs = tuple(dict.fromkeys((*f.references, FASTAPI_ASYNC, *((STARLETTE_RESPONSES,) if is_stream else ()))))
        out.append(
            f.replace(
                severity=sev,
                section=Section.CRITICAL_ISSUES if sev == Severity.CRITICAL else f.section,
                message=prefix + f.message,
                explanation=f.explanation + _ROLE_EXPLANATION.get(role, ""),
                fix=fix,
                fix_example=_STREAM_EXAMPLE if is_stream else f.fix_example,
                references=refs,
                extra=extra,
            )
        )
    # a background task whose blocking calls are already reported needs no AEX1511 too;
    # one with AEX1511 needs no generic "async def without await" hint beside it
    named = {(f.path, f.symbol) for f in out if f.extra.get("fastapi", {}).get("role") == "background" and f.code != BackgroundTaskOnLoop.code}
    if named:
        out = [f for f in out if not (f.code == BackgroundTaskOnLoop.code and (f.path, f.symbol) in named)]
    on_loop = {(f.path, f.symbol) for f in out if f.code == BackgroundTaskOnLoop.code}
    if on_loop:
        out = [f for f in out if not (f.kind == "async-without-await" and (f.path, f.symbol) in on_loop)]
    return out
