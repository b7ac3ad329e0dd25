"""Coroutines and tasks: never-awaited coroutines, fire-and-forget tasks, and
weak hints about tasks whose failure or end nobody observes (codes ``AEX2xx``).

Sources of the rules:

- "Coroutines": calling a coroutine function only creates a coroutine object;
  nothing runs until it is awaited or wrapped in a task
  (https://docs.python.org/3/library/asyncio-task.html#coroutines), and an
  unawaited coroutine only produces ``RuntimeWarning: coroutine ... was never
  awaited`` when it is garbage-collected
  (https://docs.python.org/3/library/asyncio-dev.html#detect-never-awaited-coroutines).
- ``asyncio.create_task``: "Save a reference to the result of this function, to
  avoid a task disappearing mid-execution. The event loop only keeps weak
  references to tasks" (https://docs.python.org/3/library/asyncio-task.html#asyncio.create_task).
- "Detect never-retrieved exceptions"
  (https://docs.python.org/3/library/asyncio-dev.html#detect-never-retrieved-exceptions).
- ``asyncio.gather``: "If return_exceptions is False (default), the first raised
  exception is immediately propagated ... Other awaitables in the aws sequence
  won't be cancelled and will continue to run"; ``asyncio.TaskGroup`` is the
  safer alternative (https://docs.python.org/3/library/asyncio-task.html#asyncio.gather).

How a coroutine function is recognised (none of the scanned code is imported):

1. well-known async APIs (:data:`KNOWN_COROUTINE_FUNCTIONS`, :data:`KNOWN_ASYNC_METHODS`),
   matched on the resolved callee (imports, aliases and object types followed);
2. ``async def`` functions and methods of the scanned code (same file, or any file
   of a package scan) through the linker: the call site is deferred and checked
   against the callee's :class:`~async_expert_ext.scan.link.FuncFacts`. Async
   generators are not coroutine functions, and ``async def`` with decorators
   other than ``staticmethod``/``classmethod``/``abstractmethod``/``override``
   are skipped (a decorator may turn them into something else);
3. a method called on an object of unknown type whose name is, in the whole
   scan, only ever defined as an ``async def`` method (medium confidence);
4. a parameter annotated ``Callable[..., Awaitable[...]]`` / ``Coroutine``, or one
   that the same function awaits elsewhere (``await job()``).
"""
from __future__ import annotations

import ast
from typing import Any, Iterable

from ...model import Confidence, Finding, Section, Severity
from ..context import FileContext, dotted_name
from ..link import Deferred, FuncFacts, Program
from ..registry import Rule, link_check, rule
from .blocking import call_name

__all__ = [
    "NeverAwaited",
    "CoroutineFunctionAsCallback",
    "FireAndForgetTask",
    "UnusedTaskVariable",
    "TaskExceptionNeverRetrieved",
    "LeakedTaskList",
    "GatherPartialFailure",
    "KNOWN_COROUTINE_FUNCTIONS",
    "KNOWN_ASYNC_METHODS",
    "SYNC_CALLBACK_SINKS",
]

DOC_COROUTINES = "https://docs.python.org/3/library/asyncio-task.html#coroutines"
DOC_NEVER_AWAITED = "https://docs.python.org/3/library/asyncio-dev.html#detect-never-awaited-coroutines"
DOC_CREATE_TASK = "https://docs.python.org/3/library/asyncio-task.html#asyncio.create_task"
DOC_NEVER_RETRIEVED = "https://docs.python.org/3/library/asyncio-dev.html#detect-never-retrieved-exceptions"
DOC_GATHER = "https://docs.python.org/3/library/asyncio-task.html#asyncio.gather"
DOC_TASKGROUP = "https://docs.python.org/3/library/asyncio-task.html#task-groups"
DOC_RUN_COROUTINE_THREADSAFE = "https://docs.python.org/3/library/asyncio-task.html#asyncio.run_coroutine_threadsafe"
BPO_FIRE_AND_FORGET = "https://github.com/python/cpython/issues/88831"

#: Module-level coroutine functions of well-known libraries (canonical names).
KNOWN_COROUTINE_FUNCTIONS: frozenset[str] = frozenset(
    {
        "asyncio.sleep",
        "asyncio.wait_for",
        "asyncio.wait",
        "asyncio.open_connection",
        "asyncio.open_unix_connection",
        "asyncio.start_server",
        "asyncio.start_unix_server",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
        "asyncio.to_thread",
        "anyio.sleep",
        "trio.sleep",
    }
)

_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request"})

#: Object type -> its coroutine methods (the methods that return a coroutine or an
#: awaitable that does nothing until awaited).
KNOWN_ASYNC_METHODS: dict[str, frozenset[str]] = {
    "asyncio.Queue": frozenset({"get", "put", "join"}),
    "asyncio.Lock": frozenset({"acquire"}),
    "asyncio.Semaphore": frozenset({"acquire"}),
    "asyncio.Event": frozenset({"wait"}),
    "asyncio.Condition": frozenset({"wait", "wait_for", "acquire"}),
    "asyncio.StreamWriter": frozenset({"drain", "wait_closed", "start_tls"}),
    "asyncio.StreamReader": frozenset({"read", "readline", "readexactly", "readuntil"}),
    "asyncio.AbstractEventLoop": frozenset(
        {
            "sock_recv",
            "sock_recv_into",
            "sock_sendall",
            "sock_connect",
            "sock_accept",
            "getaddrinfo",
            "create_connection",
            "create_server",
            "create_datagram_endpoint",
            "shutdown_asyncgens",
            "shutdown_default_executor",
            "start_tls",
            "sendfile",
            "subprocess_exec",
            "subprocess_shell",
        }
    ),
    "aiohttp.ClientSession": _HTTP_VERBS | {"close", "ws_connect"},
    "httpx.AsyncClient": _HTTP_VERBS | {"aclose", "send"},
    "websockets.Connection": frozenset({"send", "recv", "close", "wait_closed"}),
}

#: Calls that take a *sync* callable: callee -> (positional indexes, keyword names)
#: of the callable argument. A coroutine function there is only called, never awaited.
SYNC_CALLBACK_SINKS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "threading.Timer": ((1,), ("function",)),
    "threading.Thread": ((1,), ("target",)),
    "concurrent.futures.Executor.submit": ((0,), ("fn",)),
    "concurrent.futures.ThreadPoolExecutor.submit": ((0,), ("fn",)),
    "asyncio.AbstractEventLoop.run_in_executor": ((1,), ("func",)),
    "asyncio.AbstractEventLoop.call_soon": ((0,), ("callback",)),
    "asyncio.AbstractEventLoop.call_soon_threadsafe": ((0,), ("callback",)),
    "asyncio.AbstractEventLoop.call_later": ((1,), ("callback",)),
    "asyncio.AbstractEventLoop.call_at": ((1,), ("callback",)),
    "asyncio.AbstractEventLoop.add_signal_handler": ((1,), ("callback",)),
    "asyncio.AbstractEventLoop.add_reader": ((1,), ("callback",)),
    "asyncio.AbstractEventLoop.add_writer": ((1,), ("callback",)),
    "asyncio.Task.add_done_callback": ((0,), ("fn",)),
    "asyncio.Future.add_done_callback": ((0,), ("fn",)),
    "asyncio.to_thread": ((0,), ("func",)),
    "signal.signal": ((1,), ("handler",)),
    "atexit.register": ((0,), ("func",)),
    "sched.scheduler.enter": ((2,), ("action",)),
    "sched.scheduler.enterabs": ((2,), ("action",)),
}

#: Loop methods recognised by name when the receiver's type is unknown (``self._loop.call_soon``).
_LOOP_SINK_METHODS = {
    "call_soon": (0,),
    "call_soon_threadsafe": (0,),
    "call_later": (1,),
    "call_at": (1,),
    "run_in_executor": (1,),
    "add_signal_handler": (1,),
}

#: Calls that create a task whose only strong reference is the returned object.
TASK_FACTORIES: frozenset[str] = frozenset(
    {
        "asyncio.create_task",
        "asyncio.ensure_future",
        "asyncio.AbstractEventLoop.create_task",
        "asyncio.async",
        "asyncio.gather",  # schedules every awaitable as a task; dropped, nobody sees them end or fail
    }
)

#: Method names so common on sync objects that an unknown receiver is never
#: matched against a local ``async def`` of the same name.
_COMMON_SYNC_NAMES = frozenset(
    """close start stop run send write read readline readlines get put set update clear reset
    connect disconnect shutdown cancel wait join acquire release flush open execute commit rollback
    add remove delete pop append extend insert discard copy items keys values format encode decode
    result done exception setdefault sort index count seek tell fileno recv accept listen bind
    submit map sleep exit call emit notify notify_all terminate kill list dump dumps load loads
    log info debug warning error critical match search sub find render handle process parse
    validate serialize build create save fetch query next iter send_bytes send_text send_json
    receive receive_text receive_bytes receive_json getvalue keep_alive""".split()
)



def _stdlib_sync_method_names() -> frozenset[str]:
    """Public sync method names of common stdlib and builtin classes: an object of
    unknown type calling one of these is most likely that class, not a local
    ``async def`` of the same name (``match.group()``, ``path.exists()``)."""
    import asyncio
    import inspect
    import io
    import pathlib
    import queue
    import re
    import socket
    import ssl
    import subprocess
    import threading
    import logging
    import concurrent.futures

    classes: list[Any] = [
        str, bytes, list, dict, set, tuple, int, float, pathlib.Path, re.Match, re.Pattern, socket.socket,
        io.TextIOWrapper, io.BufferedReader, io.BytesIO, threading.Thread, threading.Event, threading.Condition,
        queue.Queue, subprocess.Popen, logging.Logger, concurrent.futures.Future, asyncio.Future, asyncio.Task,
        asyncio.AbstractEventLoop, asyncio.Queue, asyncio.Event, asyncio.Lock, asyncio.StreamWriter,
        asyncio.Transport, asyncio.Protocol, ssl.SSLObject, ssl.SSLSocket, ssl.SSLContext,
    ]
    out: set[str] = set()
    for cls in classes:
        for attr in dir(cls):
            if attr.startswith("_"):
                continue
            member = getattr(cls, attr, None)
            if callable(member) and not inspect.iscoroutinefunction(member):
                out.add(attr)
    return frozenset(out)


_SYNC_NAMES_CACHE: list[frozenset[str]] = []


def common_sync_names() -> frozenset[str]:
    """:data:`_COMMON_SYNC_NAMES` plus the stdlib method names (computed once, on
    first use, so importing the scanner stays cheap)."""
    if not _SYNC_NAMES_CACHE:
        _SYNC_NAMES_CACHE.append(_COMMON_SYNC_NAMES | _stdlib_sync_method_names())
    return _SYNC_NAMES_CACHE[0]

_TRANSPARENT_DECORATORS = frozenset(
    {
        "staticmethod",
        "classmethod",
        "abstractmethod",
        "abc.abstractmethod",
        "override",
        "typing.override",
        "typing_extensions.override",
        "overload",
        "typing.overload",
        "functools.wraps",
        "wraps",
    }
)

_INTROSPECTION = frozenset({"iscoroutinefunction", "isawaitable", "iscoroutine", "isasyncgenfunction", "markcoroutinefunction"})


# ---------------------------------------------------------------------------
# helpers shared by the rules of this module


def _split_type(name: str) -> tuple[str, str]:
    typ, _, meth = name.rpartition(".")
    return typ, meth


def known_coroutine(name: str | None) -> bool:
    """True when ``name`` (a resolved, canonical callee) is a well-known coroutine function."""
    if not name:
        return False
    if name in KNOWN_COROUTINE_FUNCTIONS:
        return True
    typ, meth = _split_type(name)
    return meth in KNOWN_ASYNC_METHODS.get(typ, ())


def unknown_receiver(func: ast.AST, ctx: FileContext) -> bool:
    """True for ``recv.method`` when nothing is known about ``recv``'s type: an
    untyped local or parameter, an untyped ``self.attr``, or an expression
    (``conns[0]``, ``super()``). A receiver rooted at an import is known."""
    if not isinstance(func, ast.Attribute):
        return False
    recv = func.value
    if ctx.type_of(recv) is not None:
        return False
    root = recv
    while isinstance(root, ast.Attribute):
        root = root.value
    if not isinstance(root, ast.Name):
        return True
    if recv is root:
        if root.id in ("self", "cls") and ctx._self_class(root.id):
            return False  # self.method(): resolved to the class
        return ctx.lookup(root.id) is None
    if root.id in ("self", "cls") and ctx._self_class(root.id):
        return True  # self.conn.ping() with an untyped self.conn
    return ctx.lookup(root.id) is None


def _is_task_factory(node: ast.AST, ctx: FileContext) -> tuple[bool, Confidence]:
    """Whether ``node`` is a call creating a task with no other strong reference
    (``asyncio.create_task``, ``ensure_future``, ``loop.create_task``; never a
    ``TaskGroup.create_task``)."""
    if not isinstance(node, ast.Call):
        return False, Confidence.HIGH
    name = call_name(node, ctx)
    if name in TASK_FACTORIES:
        return True, Confidence.HIGH
    if isinstance(node.func, ast.Attribute) and node.func.attr == "create_task" and unknown_receiver(node.func, ctx):
        recv = dotted_name(node.func.value) or ""
        if recv.rpartition(".")[2].lstrip("_").endswith("loop"):
            return True, Confidence.MEDIUM
    return False, Confidence.HIGH


class _FuncIndex:
    """Facts about one function body (nested functions included, since closures
    may use the enclosing names): names loaded, names awaited as callables,
    receivers of ``.cancel()``, declared globals."""

    __slots__ = ("loads", "append_loads", "awaited_calls", "cancelled", "globals", "introspects", "stores")

    def __init__(self, fn: ast.AST) -> None:
        self.loads: dict[str, int] = {}
        self.append_loads: dict[str, int] = {}
        self.awaited_calls: set[str] = set()
        self.cancelled: set[str] = set()
        self.globals: set[str] = set()
        self.stores: set[str] = set()
        self.introspects = False
        body = fn.body if isinstance(getattr(fn, "body", None), list) else [fn]  # type: ignore[attr-defined]
        for stmt in body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name):
                    if isinstance(n.ctx, ast.Load):
                        self.loads[n.id] = self.loads.get(n.id, 0) + 1
                        if n.id in _INTROSPECTION:
                            self.introspects = True
                    else:
                        self.stores.add(n.id)
                elif isinstance(n, ast.Attribute):
                    if n.attr in _INTROSPECTION:
                        self.introspects = True
                elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                    recv = dotted_name(n.func.value)
                    if recv is None:
                        continue
                    if n.func.attr in ("append", "add", "extend") and isinstance(n.func.value, ast.Name):
                        self.append_loads[recv] = self.append_loads.get(recv, 0) + 1
                    elif n.func.attr == "cancel":
                        self.cancelled.add(recv)
                elif isinstance(n, ast.Await) and isinstance(n.value, ast.Call):
                    callee = dotted_name(n.value.func)
                    if callee:
                        self.awaited_calls.add(callee)
                elif isinstance(n, (ast.Global, ast.Nonlocal)):
                    self.globals.update(n.names)


def func_index(ctx: FileContext) -> _FuncIndex | None:
    """The :class:`_FuncIndex` of the enclosing function (memoised on its node)."""
    fn = ctx.function
    if fn is None:
        return None
    node = fn.node
    try:
        return node._aex_index  # type: ignore[attr-defined]
    except AttributeError:
        idx = _FuncIndex(node)
        node._aex_index = idx  # type: ignore[attr-defined]
        return idx


def _annotation_is_async_callable(ann: ast.AST | None, ctx: FileContext) -> bool:
    """``Callable[..., Awaitable[T]]`` / ``Callable[..., Coroutine[...]]`` (string
    annotations too)."""
    if ann is None:
        return False
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            ann = ast.parse(ann.value, mode="eval").body
        except SyntaxError:
            return False
    if isinstance(ann, ast.BinOp):  # X | None
        return _annotation_is_async_callable(ann.left, ctx) or _annotation_is_async_callable(ann.right, ctx)
    if not isinstance(ann, ast.Subscript):
        return False
    head = (ctx.resolve(ann.value) or dotted_name(ann.value) or "").rpartition(".")[2]
    if head in ("Optional", "Annotated"):
        inner = ann.slice.elts[0] if isinstance(ann.slice, ast.Tuple) and ann.slice.elts else ann.slice
        return _annotation_is_async_callable(inner, ctx)
    if head != "Callable" or not isinstance(ann.slice, ast.Tuple) or len(ann.slice.elts) != 2:
        return False
    ret = ann.slice.elts[1]
    if isinstance(ret, ast.Subscript):
        ret = ret.value
    ret_name = (ctx.resolve(ret) or dotted_name(ret) or "").rpartition(".")[2]
    return ret_name in ("Awaitable", "Coroutine")


def _coroutine_params(ctx: FileContext) -> set[str]:
    """Parameters of the enclosing function that hold coroutine functions:
    annotated ``Callable[..., Awaitable]`` or awaited as ``await name(...)``."""
    fn = ctx.function
    if fn is None or not isinstance(fn.node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return set()
    node = fn.node
    try:
        return node._aex_coro_params  # type: ignore[attr-defined]
    except AttributeError:
        pass
    out: set[str] = set()
    args = node.args
    for a in (*args.posonlyargs, *args.args, *args.kwonlyargs):
        if _annotation_is_async_callable(a.annotation, ctx):
            out.add(a.arg)
    idx = func_index(ctx)
    if idx is not None and not idx.introspects:
        names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        out |= names & idx.awaited_calls
    node._aex_coro_params = out  # type: ignore[attr-defined]
    return out


def _decorators(node: ast.AST, ctx: FileContext) -> list[str]:
    out = []
    for d in getattr(node, "decorator_list", ()):
        target = d.func if isinstance(d, ast.Call) else d
        out.append(ctx.resolve(target) or dotted_name(target) or "?")
    return out


def _is_coroutine_function(f: FuncFacts | None) -> bool:
    """An ``async def`` that is not an async generator and has no decorator that
    may change what calling it returns."""
    if f is None or not f.is_async or f.is_generator:
        return False
    decos = f.notes.get("aex_decorators", [])
    return all(d.rpartition(".")[2] in _TRANSPARENT_DECORATORS or d in _TRANSPARENT_DECORATORS for d in decos)


def _local_func(program: Program, name: str) -> FuncFacts | None:
    """The facts of the function named ``name`` (never a class's ``__init__``)."""
    return program.funcs.get(program.canonical(name))


def _method_index(program: Program) -> dict[str, tuple[int, int]]:
    """Bare method name -> (coroutine-method definitions, other definitions) over
    the whole program, memoised on the program."""
    idx = getattr(program, "_aex_method_index", None)
    if idx is None:
        idx = {}
        for q, f in program.funcs.items():
            bare = q.rpartition(".")[2]
            coro, other = idx.get(bare, (0, 0))
            if _is_coroutine_function(f) and f.notes.get("aex_method"):
                coro += 1
            else:
                other += 1
            idx[bare] = (coro, other)
        program._aex_method_index = idx  # type: ignore[attr-defined]
    return idx


def _short(q: str) -> str:
    parts = q.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 else q


class _RecordsFacts:
    """Mixin: records, for every function, whether it is a method and which
    decorators it carries (``aex_method`` / ``aex_decorators`` linker notes), so
    the link checks can tell a plain coroutine function from a decorated one.
    Every rule that relies on these facts records them itself, so any subset of
    rules selected still works."""

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef, ctx: FileContext) -> None:
        _record_facts(node, ctx)

    def visit_FunctionDef(self, node: ast.FunctionDef, ctx: FileContext) -> None:
        _record_facts(node, ctx)


def _record_facts(node: ast.AST, ctx: FileContext) -> None:
    fn = ctx.function
    if fn is None or fn.facts is None or fn.node is not node:
        return
    if fn.class_name:
        fn.facts.notes["aex_method"] = [True]
    decos = _decorators(node, ctx)
    if decos:
        fn.facts.notes["aex_decorators"] = decos


_BOOL_WORDS = {"dropped": "its result is dropped", "bool": "it is used as a truth value"}


# ---------------------------------------------------------------------------
# never-awaited


@rule
class NeverAwaited(_RecordsFacts, Rule):
    """A coroutine function is called and the coroutine it returns is dropped or
    tested for truth, so its body never runs."""

    code = "AEX201"
    name = "never-awaited"
    kind = "never-awaited"
    severity = Severity.CRITICAL
    section = Section.CRITICAL_ISSUES
    confidence = Confidence.HIGH
    message = "`{callee}()` returns a coroutine: called without `await` it does nothing ({how})"
    explanation = (
        "Calling an `async def` only creates a coroutine object; its body runs when the coroutine is awaited "
        "or wrapped in a task. Dropped, it is garbage-collected with a 'coroutine ... was never awaited' "
        "RuntimeWarning; as a truth value it is always true."
    )
    fix = "Await it: `await {callee}(...)` (or `asyncio.create_task(...)` and keep the task if it should run in the background)."
    fix_example = (
        "# before\nasync def keepalive_round(self):\n    for connection in self.connections:\n        connection.ping()\n\n"
        "# after\nasync def keepalive_round(self):\n    for connection in self.connections:\n        await connection.ping()"
    )
    references = (DOC_COROUTINES, DOC_NEVER_AWAITED)

    # the result is dropped
    def visit_Expr(self, node: ast.Expr, ctx: FileContext) -> None:
        if isinstance(node.value, ast.Call):
            self._check(node.value, ctx, "dropped")

    # truth-value contexts
    def visit_If(self, node: ast.If, ctx: FileContext) -> None:
        self._check_test(node.test, ctx)

    def visit_While(self, node: ast.While, ctx: FileContext) -> None:
        self._check_test(node.test, ctx)

    def visit_IfExp(self, node: ast.IfExp, ctx: FileContext) -> None:
        self._check_test(node.test, ctx)

    def visit_Assert(self, node: ast.Assert, ctx: FileContext) -> None:
        self._check_test(node.test, ctx)

    def visit_comprehension(self, node: ast.comprehension, ctx: FileContext) -> None:
        for cond in node.ifs:
            self._check_test(cond, ctx)

    def visit_BoolOp(self, node: ast.BoolOp, ctx: FileContext) -> None:
        # `coro() and x` tests the coroutine for truth and drops it; `coro() or x`
        # evaluates to the coroutine (a value use) unless the BoolOp is itself a test.
        in_test = self._is_test(node, ctx)
        last = len(node.values) - 1
        for i, v in enumerate(node.values):
            if isinstance(v, ast.Call) and (in_test or (isinstance(node.op, ast.And) and i < last)):
                self._check(v, ctx, "bool")

    @staticmethod
    def _is_test(node: ast.AST, ctx: FileContext) -> bool:
        parent = ctx.parent
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
            node, parent = parent, (ctx.parents[-2] if len(ctx.parents) > 1 else None)
        if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)) and getattr(parent, "test", None) is node:
            return True
        if isinstance(parent, ast.comprehension) and node in parent.ifs:
            return True
        return isinstance(parent, (ast.Expr, ast.BoolOp))

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "bool" and len(node.args) == 1:
            if ctx.resolve(node.func) == "builtins.bool" and isinstance(node.args[0], ast.Call):
                self._check(node.args[0], ctx, "bool")

    def _check_test(self, test: ast.AST, ctx: FileContext) -> None:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test = test.operand
        if isinstance(test, ast.Call):
            self._check(test, ctx, "bool")
        # BoolOp operands are visited by visit_BoolOp

    def visit_UnaryOp(self, node: ast.UnaryOp, ctx: FileContext) -> None:
        if isinstance(node.op, ast.Not) and isinstance(node.operand, ast.Call):
            parent = ctx.parent
            # `if not coro():` is already checked through the test
            if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)) and getattr(parent, "test", None) is node:
                return
            self._check(node.operand, ctx, "bool")

    # -- the check -------------------------------------------------------------
    def _check(self, call: ast.Call, ctx: FileContext, how: str) -> None:
        name = call_name(call, ctx)
        func = call.func
        label = dotted_name(func) or (name or "?")
        if known_coroutine(name):
            self.report(ctx, call, callee=label, how=_BOOL_WORDS[how])
            return
        meth = func.attr if isinstance(func, ast.Attribute) else ""
        by_name = bool(meth) and meth not in _COMMON_SYNC_NAMES and unknown_receiver(func, ctx) and meth not in common_sync_names()
        if by_name and meth.startswith("__") and meth not in ("__aenter__", "__aexit__"):
            by_name = False
        if name is not None:
            if name.startswith(("builtins.", "asyncio.", "typing.", "functools.", "contextlib.")):
                return
            ctx.defer("never-awaited", self.code, name, call, how=how, label=label, method=meth if by_name else "")
            return
        if isinstance(func, ast.Name):
            if func.id in _coroutine_params(ctx):
                self.report(
                    ctx,
                    call,
                    callee=func.id,
                    how=_BOOL_WORDS[how],
                    message=(
                        f"`{func.id}` holds a coroutine function (it is awaited elsewhere or annotated as "
                        f"returning an awaitable): calling it without `await` does nothing ({_BOOL_WORDS[how]})"
                    ),
                )
            return
        if by_name:
            ctx.defer("never-awaited-method", self.code, meth, call, how=how, label=label)


def _finding_at(rule_cls: type[Rule], d: Deferred, *, confidence: Confidence | None = None, call_chain: tuple[str, ...] = (), **fields: Any) -> Finding:
    return rule_cls().make_finding(
        path=d.path,
        line=d.line,
        col=d.col,
        end_line=d.end_line,
        symbol=d.symbol,
        snippet=d.snippet,
        confidence=confidence,
        call_chain=call_chain,
        **fields,
    )


@link_check("never-awaited")
def _never_awaited(d: Deferred, program: Program) -> Iterable[Finding]:
    f = _local_func(program, d.target)
    if f is None and d.data.get("method"):
        # `self.conn.ping()`: nothing is known about self.conn; try the method name
        return _never_awaited_method(
            Deferred(**{**d.__dict__, "target": d.data["method"], "check": "never-awaited-method"}), program
        )
    if not _is_coroutine_function(f):
        return ()
    assert f is not None
    return (
        _finding_at(
            NeverAwaited,
            d,
            callee=d.data.get("label") or _short(d.target),
            how=_BOOL_WORDS.get(d.data.get("how", "dropped"), "its result is dropped"),
            call_chain=(f"{_short(f.qualname)} is `async def` ({f.path}:{f.line})",),
        ),
    )


def _names_match(receiver: str, class_name: str) -> bool:
    """``connection``/``conn``/``self._conn`` name a ``Connection``: the receiver's
    last identifier and the class name contain one another (case and ``_`` ignored)."""
    r = receiver.rpartition(".")[2].replace("_", "").lower()
    c = class_name.replace("_", "").lower()
    return len(r) >= 3 and (r in c or c in r)


@link_check("never-awaited-method")
def _never_awaited_method(d: Deferred, program: Program) -> Iterable[Finding]:
    coro, other = _method_index(program).get(d.target, (0, 0))
    if coro == 0 or other:
        return ()
    where = [f for q, f in program.funcs.items() if q.rpartition(".")[2] == d.target and _is_coroutine_function(f)]
    # the receiver's name must point at one of the owning classes: `outcome.unwrap()`
    # (a third-party Outcome) is not `SSLStream.unwrap`
    receiver = str(d.data.get("label") or "").rpartition(".")[0]
    if not any(_names_match(receiver, f.qualname.split(".")[-2]) for f in where if "." in f.qualname):
        return ()
    owners = ", ".join(sorted(_short(f.qualname) for f in where)[:3])
    return (
        _finding_at(
            NeverAwaited,
            d,
            confidence=Confidence.MEDIUM,
            callee=d.data.get("label") or d.target,
            how=_BOOL_WORDS.get(d.data.get("how", "dropped"), "its result is dropped"),
            message=(
                f"`{d.data.get('label') or d.target}()` is not awaited, and `{d.target}` is only ever defined as "
                f"`async def` in the scanned code ({owners}): the coroutine does nothing "
                f"({_BOOL_WORDS.get(d.data.get('how', 'dropped'))})"
            ),
            call_chain=tuple(f"{_short(f.qualname)} is `async def` ({f.path}:{f.line})" for f in where[:3]),
        ),
    )


# ---------------------------------------------------------------------------
# a coroutine function handed to an API that calls it synchronously


def _sink_args(call: ast.Call, ctx: FileContext) -> tuple[str, list[ast.expr]] | None:
    """``(sink name, callable arguments)`` when ``call`` takes a sync callable."""
    name = call_name(call, ctx)
    spec = SYNC_CALLBACK_SINKS.get(name or "")
    if spec is None and isinstance(call.func, ast.Attribute) and unknown_receiver(call.func, ctx):
        meth = call.func.attr
        recv = (dotted_name(call.func.value) or "").lower()
        if "ioloop" in recv.replace("_", ""):
            return None  # tornado's IOLoop runs coroutine callbacks itself
        if meth in _LOOP_SINK_METHODS:
            spec = (_LOOP_SINK_METHODS[meth], ())
            name = f"loop.{meth}"
        elif meth == "submit":
            if "executor" in recv or "pool" in recv:
                spec = ((0,), ("fn",))
                name = "executor.submit"
    if spec is None or name is None:
        return None
    positions, keywords = spec
    out = [call.args[i] for i in positions if i < len(call.args) and not isinstance(call.args[i], ast.Starred)]
    out.extend(k.value for k in call.keywords if k.arg in keywords)
    return name, out


def _unwrap_ref(arg: ast.expr, ctx: FileContext) -> ast.expr | None:
    """The function reference inside ``arg``: itself, ``functools.partial(f, ...)``'s
    ``f``, or ``lambda: f(...)``'s ``f`` (the lambda returns the coroutine, to a
    caller that ignores it)."""
    if isinstance(arg, (ast.Name, ast.Attribute)):
        return arg
    if isinstance(arg, ast.Call) and arg.args and call_name(arg, ctx) == "functools.partial":
        return _unwrap_ref(arg.args[0], ctx)
    if isinstance(arg, ast.Lambda) and isinstance(arg.body, ast.Call):
        return arg.body.func if isinstance(arg.body.func, (ast.Name, ast.Attribute)) else None
    return None


@rule
class CoroutineFunctionAsCallback(_RecordsFacts, Rule):
    """A coroutine function is passed where a synchronous callable is expected
    (``threading.Timer``, ``Thread(target=)``, ``executor.submit``,
    ``loop.call_soon``/``call_later``/``run_in_executor``, ``signal.signal``,
    ``atexit.register``), directly or through one parameter of a helper."""

    code = "AEX202"
    name = "coroutine-function-as-callback"
    kind = "never-awaited"
    severity = Severity.CRITICAL
    section = Section.CRITICAL_ISSUES
    confidence = Confidence.HIGH
    message = "coroutine function `{ref}` is passed to `{sink}`, which calls it without awaiting: its body never runs"
    explanation = (
        "Thread, timer, executor, loop-callback and signal APIs call their callable and ignore the result. "
        "For an `async def` that result is a coroutine object, so the job's body never executes and a "
        "'coroutine ... was never awaited' warning appears instead."
    )
    fix = (
        "From a thread, submit the coroutine to the running loop: `asyncio.run_coroutine_threadsafe({ref}(), loop)`; "
        "on the loop, schedule it with `asyncio.create_task({ref}())` (keeping the task); or make the job a plain `def`."
    )
    fix_example = (
        "# before\nthreading.Timer(5.0, ping_server).start()\n\n"
        "# after\nloop = asyncio.get_running_loop()\n"
        "threading.Timer(5.0, lambda: asyncio.run_coroutine_threadsafe(ping_server(), loop)).start()"
    )
    references = (DOC_COROUTINES, DOC_RUN_COROUTINE_THREADSAFE, "https://docs.python.org/3/library/threading.html#timer-objects")

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        sink = _sink_args(node, ctx)
        if sink is not None:
            sink_name, args = sink
            for arg in args:
                self._sink_arg(arg, sink_name, node, ctx)
            return
        # one level of flow: a function reference handed to a helper of the scanned code
        callee = call_name(node, ctx)
        if not callee or callee.startswith(("builtins.", "asyncio.", "functools.", "typing.", "threading.", "concurrent.")):
            return
        refs: list[tuple[Any, str, str]] = []
        for i, a in enumerate(node.args):
            if isinstance(a, ast.Starred):
                break
            q = self._ref_name(a, ctx)
            if q:
                refs.append((i, q, dotted_name(a) or q))
        for k in node.keywords:
            if k.arg is None:
                continue
            q = self._ref_name(k.value, ctx)
            if q:
                refs.append((k.arg, q, dotted_name(k.value) or q))
        if refs:
            ctx.defer(
                "coroutine-callback-flow",
                self.code,
                callee,
                node,
                refs=refs,
                method=isinstance(node.func, ast.Attribute),
            )

    @staticmethod
    def _ref_name(arg: ast.expr, ctx: FileContext) -> str | None:
        if not isinstance(arg, (ast.Name, ast.Attribute)):
            return None
        q = ctx.resolve(arg)
        if not q or q.startswith("builtins."):
            return None
        if q.startswith(("asyncio.", "typing.")) and not known_coroutine(q):
            return None
        return q

    def _sink_arg(self, arg: ast.expr, sink: str, call: ast.Call, ctx: FileContext) -> None:
        ref = _unwrap_ref(arg, ctx)
        if ref is None:
            return
        label = dotted_name(ref) or "?"
        q = ctx.resolve(ref)
        if known_coroutine(q):
            self.report(ctx, arg, ref=label, sink=sink)
            return
        if q is not None:
            if not q.startswith("builtins."):
                ctx.defer("coroutine-callback", self.code, q, arg, ref=label, sink=sink)
            return
        if isinstance(ref, ast.Name):
            if ref.id in _coroutine_params(ctx):
                self.report(ctx, arg, ref=label, sink=sink)
                return
            fn = ctx.function
            if fn is not None and ref.id in fn.params:
                # resolved at link time, at the call sites that pass a coroutine function here
                ctx.note("aex_sink_param", (ref.id, sink, call.lineno, ctx.path))


@link_check("coroutine-callback")
def _coroutine_callback(d: Deferred, program: Program) -> Iterable[Finding]:
    f = _local_func(program, d.target)
    if not _is_coroutine_function(f):
        return ()
    assert f is not None
    return (
        _finding_at(
            CoroutineFunctionAsCallback,
            d,
            ref=d.data["ref"],
            sink=d.data["sink"],
            call_chain=(f"{_short(f.qualname)} is `async def` ({f.path}:{f.line})",),
        ),
    )


@link_check("coroutine-callback-flow")
def _coroutine_callback_flow(d: Deferred, program: Program) -> Iterable[Finding]:
    helper = program.func(d.target)
    if helper is None:
        return ()
    sinks = helper.notes.get("aex_sink_param")
    if not sinks:
        return ()
    params = list(helper.params)
    if d.data.get("method") and params and params[0] in ("self", "cls"):
        params = params[1:]
    out = []
    for key, q, label in d.data.get("refs", ()):
        pname = params[key] if isinstance(key, int) and key < len(params) else key
        if not isinstance(pname, str):
            continue
        hits = [s for s in sinks if s[0] == pname]
        if not hits:
            continue
        if known_coroutine(q):
            ok, where = True, q
        else:
            f = _local_func(program, q)
            ok, where = _is_coroutine_function(f), (f"{_short(f.qualname)} is `async def` ({f.path}:{f.line})" if f else "")
        if not ok:
            continue
        _p, sink, line, path = hits[0]
        out.append(
            _finding_at(
                CoroutineFunctionAsCallback,
                d,
                ref=label,
                sink=sink,
                message=(
                    f"coroutine function `{label}` is passed to `{_short(helper.qualname)}()`, which hands its "
                    f"parameter `{pname}` to `{sink}` (line {line}); it is called without awaiting and its body never runs"
                ),
                call_chain=(
                    f"{d.caller} passes {label} as {pname} ({d.path}:{d.line})",
                    f"{_short(helper.qualname)} passes {pname} to {sink} ({path}:{line})",
                    *((where,) if where else ()),
                ),
            )
        )
    return out


# ---------------------------------------------------------------------------
# fire-and-forget tasks


@rule
class FireAndForgetTask(Rule):
    """The task returned by ``asyncio.create_task`` / ``ensure_future`` /
    ``loop.create_task`` is dropped. (``TaskGroup.create_task`` is fine: the group
    keeps it.)"""

    code = "AEX210"
    name = "fire-and-forget-task"
    kind = "fire-and-forget-task"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.HIGH
    message = "the task created by `{callee}()` is dropped: the loop keeps only a weak reference, so it can be garbage-collected mid-flight"
    explanation = (
        "The event loop keeps only weak references to tasks. A task nobody references can be destroyed "
        "while pending ('Task was destroyed but it is pending!'), its work silently lost; its exception, "
        "if it fails, is never seen either."
    )
    fix = (
        "Keep a strong reference until it finishes: add it to a set and discard it in a done-callback, or use "
        "`asyncio.TaskGroup` when the caller should wait for it."
    )
    fix_example = (
        "# before\nasync def send_message(msg):\n    asyncio.create_task(record_when_acked(msg))\n\n"
        "# after\nbackground_tasks: set[asyncio.Task] = set()\n\nasync def send_message(msg):\n"
        "    task = asyncio.create_task(record_when_acked(msg))\n    background_tasks.add(task)\n"
        "    task.add_done_callback(background_tasks.discard)"
    )
    references = (DOC_CREATE_TASK, BPO_FIRE_AND_FORGET)

    def visit_Expr(self, node: ast.Expr, ctx: FileContext) -> None:
        ok, conf = _is_task_factory(node.value, ctx)
        if ok:
            assert isinstance(node.value, ast.Call)
            self.report(ctx, node.value, confidence=conf, callee=dotted_name(node.value.func) or "create_task")


@rule
class UnusedTaskVariable(Rule):
    """A task is stored in a local variable that is never read afterwards: when
    the function returns, the only reference is gone."""

    code = "AEX211"
    name = "unused-task-variable"
    kind = "fire-and-forget-task"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.HIGH
    message = "task `{var}` from `{callee}()` is never used: when `{owner}` returns, nothing references it and it can be garbage-collected mid-flight"
    explanation = (
        "A local variable keeps the task alive only until the function returns. After that the loop's weak "
        "reference is all that is left, so the task may be destroyed while pending, and its exception is never retrieved."
    )
    fix = "Await the task, keep it in a longer-lived collection (with a done-callback that discards it), or use `asyncio.TaskGroup`."
    fix_example = (
        "# before\nasync def start():\n    task = asyncio.create_task(worker())\n\n"
        "# after\nasync def start(tasks: set[asyncio.Task]):\n    task = asyncio.create_task(worker())\n"
        "    tasks.add(task)\n    task.add_done_callback(tasks.discard)"
    )
    references = (DOC_CREATE_TASK, BPO_FIRE_AND_FORGET)

    def visit_Assign(self, node: ast.Assign, ctx: FileContext) -> None:
        if len(node.targets) == 1:
            self._check(node.targets[0], node.value, node, ctx)

    def visit_AnnAssign(self, node: ast.AnnAssign, ctx: FileContext) -> None:
        if node.value is not None:
            self._check(node.target, node.value, node, ctx)

    def _check(self, target: ast.AST, value: ast.AST, node: ast.AST, ctx: FileContext) -> None:
        if not isinstance(target, ast.Name):
            return
        fn = ctx.function
        if fn is None or fn.kind == "module":
            return  # a module-level (global) name keeps the task alive
        ok, conf = _is_task_factory(value, ctx)
        if not ok:
            return
        idx = func_index(ctx)
        if idx is None or idx.loads.get(target.id, 0) or target.id in idx.globals:
            return
        assert isinstance(value, ast.Call)
        self.report(
            ctx,
            value,
            confidence=conf,
            var=target.id,
            callee=dotted_name(value.func) or "create_task",
            owner=fn.symbol or fn.name,
        )


# ---------------------------------------------------------------------------
# weak hints: tasks whose failure or end nobody observes

#: uses of a stored task that observe its outcome
#: (``cancel`` counts: a task its owner cancels on shutdown is managed, the hint is
#: about tasks nobody manages at all)
_RETRIEVING_METHODS = frozenset({"add_done_callback", "result", "exception", "cancel"})


def _parent_map(tree: ast.AST) -> dict[int, ast.AST]:
    parents: dict[int, ast.AST] = {}
    for n in ast.walk(tree):
        for c in ast.iter_child_nodes(n):
            parents[id(c)] = n
    return parents


def _observes(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Whether this load of a stored task hands it on or observes its outcome."""
    p = parents.get(id(node))
    if p is None:
        return False
    if isinstance(p, ast.Await):
        return True
    if isinstance(p, ast.Attribute):
        return p.attr in _RETRIEVING_METHODS
    if isinstance(p, ast.Call):
        return node is not p.func  # passed on: gather, wait, shield, a helper ...
    if isinstance(p, (ast.Starred, ast.keyword, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Return, ast.Yield, ast.YieldFrom)):
        return True
    if isinstance(p, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
        return getattr(p, "value", None) is node  # aliased: we lose track, stay quiet
    if isinstance(p, (ast.withitem, ast.For, ast.AsyncFor, ast.comprehension)):
        return True
    return False


def _guards_everything(fn: ast.AST) -> bool:
    """True when the coroutine's body catches ``Exception`` (or broader) around
    its work, at top level or directly inside a top-level loop: it cannot die
    with an unobserved exception."""
    for stmt in getattr(fn, "body", ()):
        candidates = [stmt]
        if isinstance(stmt, (ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            candidates = list(stmt.body)
        for c in candidates:
            if isinstance(c, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                for h in c.handlers:
                    if h.type is None:
                        return True
                    names = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
                    if any((dotted_name(n) or "").rpartition(".")[2] in ("Exception", "BaseException") for n in names):
                        return True
    return False


def _class_method(tree: ast.Module, cls_qual: str, module: str, meth: str) -> ast.AST | None:
    rel = cls_qual[len(module) + 1 :] if cls_qual.startswith(module + ".") else cls_qual
    node: Any = tree
    for part in rel.split("."):
        nxt = None
        for item in getattr(node, "body", ()):
            if isinstance(item, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == part:
                nxt = item
                break
        if nxt is None:
            return None
        node = nxt
    for item in getattr(node, "body", ()):
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == meth:
            return item
    return None


@rule
class TaskExceptionNeverRetrieved(Rule):
    """Weak hint: a task is stored on ``self`` but nothing in the module awaits it,
    adds a done-callback, or calls ``.result()`` / ``.exception()``."""

    code = "AEX220"
    name = "task-exception-never-retrieved"
    kind = "task-exception-never-retrieved"
    severity = Severity.INFO
    section = Section.ERROR_HANDLING
    confidence = Confidence.LOW
    message = "task `self.{attr}` is never awaited and has no done-callback in this module: if it fails, its exception goes unseen"
    explanation = (
        "An exception in a background task is stored on the task. If nobody awaits it or asks for its result, "
        "asyncio only logs 'Task exception was never retrieved' when the task is garbage-collected, often much "
        "later or never, while the work it did has silently stopped."
    )
    fix = "Add a done-callback that logs or re-raises failures (`task.add_done_callback(...)`), or await the task when its owner shuts down."
    fix_example = (
        "# before\nself.manager = asyncio.create_task(self.queue_manager())\n\n"
        "# after\nself.manager = asyncio.create_task(self.queue_manager())\n"
        "self.manager.add_done_callback(_log_task_failure)\n\n"
        "def _log_task_failure(task: asyncio.Task) -> None:\n"
        "    if not task.cancelled() and task.exception() is not None:\n"
        "        log.error('manager died', exc_info=task.exception())"
    )
    references = (DOC_NEVER_RETRIEVED, DOC_CREATE_TASK)

    def __init__(self, severity: Severity | None = None) -> None:
        super().__init__(severity)
        self._stored: list[tuple[str, ast.AST, str, Any]] = []

    def visit_Assign(self, node: ast.Assign, ctx: FileContext) -> None:
        if len(node.targets) != 1:
            return
        t = node.targets[0]
        if not (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"):
            return
        ok, _conf = _is_task_factory(node.value, ctx)
        if not ok:
            return
        assert isinstance(node.value, ast.Call)
        coro = node.value.args[0] if node.value.args else None
        target_q = call_name(coro, ctx) if isinstance(coro, ast.Call) else None
        fn = ctx.function
        cls = fn.class_name if fn is not None else ""
        self._stored.append((t.attr, node.value, ctx.symbol, (target_q, cls)))

    def finish(self, ctx: FileContext) -> None:
        if not self._stored:
            return
        parents = _parent_map(ctx.tree)
        observed: set[str] = set()
        wanted = {s[0] for s in self._stored}
        for n in ast.walk(ctx.tree):
            if isinstance(n, ast.Attribute) and n.attr in wanted and isinstance(n.ctx, ast.Load) and _observes(n, parents):
                observed.add(n.attr)
        for attr, call, symbol, (target_q, cls) in self._stored:
            if attr in observed:
                continue
            if target_q and cls and target_q.startswith(cls + "."):
                meth = _class_method(ctx.tree, cls, ctx.module, target_q.rpartition(".")[2])
                if meth is not None and _guards_everything(meth):
                    continue
            ctx.add(
                self.make_finding(
                    path=ctx.path,
                    line=call.lineno,  # type: ignore[attr-defined]
                    col=call.col_offset,  # type: ignore[attr-defined]
                    end_line=call.end_lineno or call.lineno,  # type: ignore[attr-defined]
                    symbol=symbol,
                    snippet=ctx.line_text(call.lineno),  # type: ignore[attr-defined]
                    attr=attr,
                )
            )


@rule
class LeakedTaskList(Rule):
    """Weak hint: tasks are appended to a list that the creating scope never
    awaits, gathers, cancels or hands on."""

    code = "AEX221"
    name = "leaked-task-list"
    kind = "leaked-task"
    severity = Severity.INFO
    section = Section.CONCURRENCY
    confidence = Confidence.LOW
    message = "tasks are appended to `{var}` but `{owner}` never awaits, gathers or cancels them: they may still be pending when it returns"
    explanation = (
        "Tasks collected in a list and never waited for outlive the code that started them. When the "
        "loop closes (asyncio.run, run_until_complete), they are still pending and are destroyed with "
        "'Task was destroyed but it is pending!'; their results and errors are lost."
    )
    fix = "Wait for them before returning (`await asyncio.gather(*tasks)`), cancel them on shutdown, or create them in an `asyncio.TaskGroup`."
    fix_example = (
        "# before\nasync def distribute_jobs():\n    for job in range(3):\n        spawned.append(asyncio.create_task(download(job)))\n\n"
        "# after\nasync def distribute_jobs():\n    async with asyncio.TaskGroup() as tg:\n"
        "        for job in range(3):\n            tg.create_task(download(job))"
    )
    references = (DOC_TASKGROUP, DOC_CREATE_TASK, "https://docs.python.org/3/library/asyncio-runner.html#asyncio.run")

    def __init__(self, severity: Severity | None = None) -> None:
        super().__init__(severity)
        self._globals: list[tuple[str, ast.Call, str]] = []

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "append" and len(node.args) == 1):
            return
        ok, _ = _is_task_factory(node.args[0], ctx)
        if not ok or not isinstance(func.value, ast.Name):
            return
        fn = ctx.function
        if fn is None:
            return
        var = func.value.id
        idx = func_index(ctx)
        if idx is None:
            return
        if idx.loads.get(var, 0) > idx.append_loads.get(var, 0):
            return  # used otherwise: gathered, iterated, returned, handed on
        local = var in fn.params or (var in idx.stores and var not in idx.globals)
        if local:
            self.report(ctx, node, var=var, owner=fn.symbol or fn.name)
        else:
            self._globals.append((var, node, ctx.symbol))

    def finish(self, ctx: FileContext) -> None:
        if not self._globals:
            return
        loads: dict[str, int] = {}
        appends: dict[str, int] = {}
        for n in ast.walk(ctx.tree):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                loads[n.id] = loads.get(n.id, 0) + 1
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name):
                if n.func.attr in ("append", "add", "extend"):
                    appends[n.func.value.id] = appends.get(n.func.value.id, 0) + 1
        for var, node, symbol in self._globals:
            if loads.get(var, 0) > appends.get(var, 0):
                continue
            ctx.add(
                self.make_finding(
                    path=ctx.path,
                    line=node.lineno,
                    col=node.col_offset,
                    end_line=node.end_lineno or node.lineno,
                    symbol=symbol,
                    snippet=ctx.line_text(node.lineno),
                    var=var,
                    owner=symbol,
                    message=f"tasks are appended to the global `{var}` but nothing in this module awaits, gathers or cancels them",
                )
            )


def _exits(body: list[ast.stmt]) -> bool:
    stack: list[tuple[ast.AST, bool]] = [(s, False) for s in body]
    while stack:
        n, nested_loop = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(n, ast.Return):
            return True
        if isinstance(n, ast.Break) and not nested_loop:
            return True
        inner = nested_loop or isinstance(n, (ast.For, ast.AsyncFor, ast.While))
        stack.extend((c, inner) for c in ast.iter_child_nodes(n))
    return False


@rule
class GatherPartialFailure(_RecordsFacts, Rule):
    """Weak hint: ``asyncio.gather`` (without ``return_exceptions=True``) over
    coroutines of which one loops forever: when a sibling raises, gather
    propagates the error and leaves the endless one running."""

    code = "AEX222"
    name = "gather-partial-failure"
    kind = "gather-partial-failure"
    severity = Severity.INFO
    section = Section.CONCURRENCY
    confidence = Confidence.LOW
    message = "`asyncio.gather()` over `{forever}` (an endless loop) and siblings: if one of them raises, `{forever}` keeps running unsupervised"
    explanation = (
        "gather() propagates the first exception but does not cancel the other awaitables: an endless "
        "coroutine such as a reader or heartbeat loop keeps running, orphaned, after its sibling failed."
    )
    fix = "Run them in an `asyncio.TaskGroup` (3.11+), which cancels the siblings when one fails, or cancel the tasks yourself in a `finally`."
    fix_example = (
        "# before\nawait asyncio.gather(keepalive(conn), handle_messages(conn))\n\n"
        "# after\nasync with asyncio.TaskGroup() as tg:\n    tg.create_task(keepalive(conn))\n"
        "    tg.create_task(handle_messages(conn))"
    )
    references = (DOC_GATHER, DOC_TASKGROUP)

    def visit_While(self, node: ast.While, ctx: FileContext) -> None:
        # `while True:` with no break/return in a coroutine: it only ends by raising
        if (
            ctx.in_coroutine
            and isinstance(node.test, ast.Constant)
            and node.test.value in (True, 1)
            and not node.orelse
            and not _exits(node.body)
        ):
            ctx.note("aex_forever", node.lineno)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if call_name(node, ctx) != "asyncio.gather":
            return
        for k in node.keywords:
            if k.arg == "return_exceptions" and not (isinstance(k.value, ast.Constant) and not k.value.value):
                return
        if len(node.args) < 2 or any(not isinstance(a, ast.Call) for a in node.args):
            return
        targets = [call_name(a, ctx) or "" for a in node.args]  # type: ignore[arg-type]
        labels = [dotted_name(a.func) or "" for a in node.args]  # type: ignore[attr-defined]
        ctx.defer("gather-forever", self.code, "asyncio.gather", node, targets=targets, labels=labels)


@link_check("gather-forever")
def _gather_forever(d: Deferred, program: Program) -> Iterable[Finding]:
    for q, label in zip(d.data.get("targets", ()), d.data.get("labels", ())):
        if not q:
            continue
        f = _local_func(program, q)
        if f is None or not _is_coroutine_function(f) or not f.notes.get("aex_forever"):
            continue
        return (
            _finding_at(
                GatherPartialFailure,
                d,
                forever=label or _short(q),
                call_chain=(f"{_short(f.qualname)} loops forever (while True at {f.path}:{f.notes['aex_forever'][0]})",),
            ),
        )
    return ()


@rule
class WaitPendingDropped(Rule):
    """``done, pending = await asyncio.wait(...)`` (``FIRST_COMPLETED``,
    ``FIRST_EXCEPTION`` or a timeout) and ``pending`` is never used: the tasks that
    did not finish keep running after the caller has moved on."""

    code = "AEX223"
    name = "wait-pending-dropped"
    kind = "leaked-task"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.MEDIUM
    message = "`{pending}` from `asyncio.wait()` is never used: the tasks that did not finish are neither cancelled nor awaited and keep running"
    explanation = (
        "asyncio.wait() returns when its condition is met (the first task done, the first exception, or the "
        "timeout) and leaves the other tasks running. Dropping the pending set leaks them: they run on after "
        "the caller returned, hold resources, and their errors are never seen."
    )
    fix = "Cancel what is still pending (`for t in pending: t.cancel()`) and await it, or use `asyncio.TaskGroup`/`asyncio.timeout` instead."
    fix_example = (
        "# before\ndone, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)\nreturn done.pop().result()\n\n"
        "# after\ndone, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)\n"
        "for t in pending:\n    t.cancel()\nawait asyncio.gather(*pending, return_exceptions=True)\nreturn done.pop().result()"
    )
    references = ("https://docs.python.org/3/library/asyncio-task.html#asyncio.wait", DOC_TASKGROUP)

    def visit_Assign(self, node: ast.Assign, ctx: FileContext) -> None:
        fn = ctx.function
        if fn is None or not fn.is_async or len(node.targets) != 1:
            return
        target, value = node.targets[0], node.value
        if not (isinstance(value, ast.Await) and isinstance(value.value, ast.Call)):
            return
        if call_name(value.value, ctx) != "asyncio.wait":
            return
        if not (isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(target.elts[1], ast.Name)):
            return
        pending = target.elts[1].id
        used = any(
            isinstance(n, ast.Name) and n.id == pending and isinstance(n.ctx, ast.Load)
            for n in ast.walk(fn.node)
        )
        if not used:
            self.report(ctx, node, pending=pending)
