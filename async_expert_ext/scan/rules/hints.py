"""Info-level hints: patterns that are not bugs by themselves but usually cost
latency or hide intent.

- :class:`BusyWait` (AEX801): ``while <flag>: await asyncio.sleep(...)`` polling a
  condition; an ``asyncio.Event`` wakes the waiter at once and costs nothing meanwhile
  (https://docs.python.org/3/library/asyncio-sync.html#asyncio.Event).
- :class:`AsyncWithoutAwait` (AEX802): an ``async def`` that never awaits. Calling it
  still needs ``await`` and a trip through the loop; if it does sync work, it blocks
  the loop like any sync code. Quiet for overrides (methods of classes with bases),
  dunders, decorated functions (route handlers, fixtures, abstract methods, framework
  callbacks all need a coroutine function), functions passed by reference (callbacks),
  async generators, and stubs (``pass``/docstring/``...``/``raise NotImplementedError``).
- :class:`CpuBoundSerialization` (AEX803): JSON/pickle/marshal (de)serialization and
  hashing inside a coroutine: slow in proportion to the payload, so a weak hint
  (corpus case 06, from https://github.com/ray-project/ray/pull/45048). Compression and
  password hashing are covered by :mod:`.cpu`.
"""
from __future__ import annotations

import ast

from ...model import Confidence, Section, Severity
from ..context import FileContext, dotted_name
from ..registry import Rule, rule
from .blocking import ASYNCIO_DEV, TO_THREAD, call_name, is_awaited
from .locks import has_await, walk_body
from .sessions import is_request_handler

EVENT_DOC = "https://docs.python.org/3/library/asyncio-sync.html#asyncio.Event"
COROUTINES_DOC = "https://docs.python.org/3/library/asyncio-task.html#coroutines"
FASTAPI_ASYNC = "https://fastapi.tiangolo.com/async/"


def _is_sleep(node: ast.AST, ctx: FileContext) -> bool:
    if isinstance(node, ast.Expr):
        node = node.value
    if not isinstance(node, ast.Await) or not isinstance(node.value, ast.Call):
        return False
    q = call_name(node.value, ctx) or ""
    return q in ("asyncio.sleep", "anyio.sleep", "trio.sleep")


def _is_trivial(stmt: ast.stmt) -> bool:
    """No work: pass, continue, counters, and ``if cond: break/return/continue``."""
    if isinstance(stmt, (ast.Pass, ast.Continue)):
        return True
    if isinstance(stmt, ast.AugAssign):
        return not any(isinstance(n, (ast.Call, ast.Await)) for n in ast.walk(stmt))
    if isinstance(stmt, ast.If):
        if any(isinstance(n, ast.Await) for n in ast.walk(stmt.test)):
            return False
        return all(isinstance(s, (ast.Break, ast.Return, ast.Continue, ast.Raise, ast.Pass)) for s in [*stmt.body, *stmt.orelse])
    return False


@rule
class BusyWait(Rule):
    """A loop that polls a condition with ``asyncio.sleep``."""

    code = "AEX801"
    name = "busy-wait"
    kind = "busy-wait"
    severity = Severity.INFO
    section = Section.ASYNC_PATTERNS
    confidence = Confidence.MEDIUM
    message = "this loop polls `{cond}` with `asyncio.sleep({delay})`; wait on an `asyncio.Event` instead"
    explanation = (
        "Polling wakes the task every interval just to check a flag, and reacts up to one interval late. An "
        "asyncio.Event (or Condition, or a Future) wakes the waiter exactly when the state changes."
    )
    fix = "Have the producer call `event.set()` and the waiter `await event.wait()` (with `asyncio.timeout` if it may never come)."
    fix_example = (
        "# before\nwhile not self.ready:\n    await asyncio.sleep(0.1)\n\n"
        "# after\nawait self.ready_event.wait()   # the producer calls self.ready_event.set()"
    )
    references = (EVENT_DOC, "https://docs.python.org/3/library/asyncio-sync.html#asyncio.Condition")

    def visit_While(self, node: ast.While, ctx: FileContext) -> None:
        if not ctx.in_coroutine or node.orelse:
            return
        sleeps = [s for s in node.body if _is_sleep(s, ctx)]
        if len(sleeps) != 1:
            return
        rest = [s for s in node.body if s is not sleeps[0]]
        if not all(_is_trivial(s) for s in rest):
            return
        test = node.test
        if isinstance(test, ast.Constant):
            if not test.value:
                return
            # `while True:` polls only when an `if cond: break/return` decides when to stop
            conds = [s for s in rest if isinstance(s, ast.If)]
            if not conds:
                return
            test = conds[0].test
        if any(isinstance(n, ast.Await) for n in ast.walk(test)):
            return
        sleep_call = sleeps[0].value.value  # type: ignore[attr-defined]
        delay = ast.unparse(sleep_call.args[0]) if sleep_call.args else ""
        cond = ast.unparse(test)
        if len(cond) > 50:
            cond = cond[:47] + "..."
        self.report(ctx, node, cond=cond, delay=delay)


_TRANSPARENT_DECORATORS = ("staticmethod", "classmethod", "functools.wraps", "wraps", "typing.final", "final")


def _is_stub(body: list[ast.stmt], method: bool = False) -> bool:
    stmts = list(body)
    if stmts and isinstance(stmts[0], ast.Expr) and isinstance(stmts[0].value, ast.Constant) and isinstance(stmts[0].value.value, str):
        stmts = stmts[1:]
    if not stmts:
        return True
    if len(stmts) != 1:
        return False
    s = stmts[0]
    if isinstance(s, ast.Pass):
        return True
    if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
        return True  # `...`
    if isinstance(s, ast.Raise):
        return True  # raise NotImplementedError / a stub that always fails
    if method and isinstance(s, ast.Return) and (s.value is None or isinstance(s.value, ast.Constant)):
        return True  # `return None` / `return True`: a no-op implementation of an async interface
    return False


@rule
class AsyncWithoutAwait(Rule):
    """An ``async def`` that never awaits (and is not an override, endpoint or callback)."""

    code = "AEX802"
    name = "async-without-await"
    kind = "async-without-await"
    severity = Severity.INFO
    section = Section.ASYNC_PATTERNS
    confidence = Confidence.MEDIUM
    message = "`async def {func}` never awaits; make it a plain `def`, or await the async work it should do"
    explanation = (
        "A coroutine function without await runs synchronously on the loop when awaited: it only adds a "
        "coroutine object and a scheduling step, and it suggests non-blocking behaviour it does not have. "
        "Any sync I/O inside it blocks the loop."
    )
    fix = "Make `{func}` a plain `def` (and drop the `await` at its call sites), or use the async APIs it was meant to call."
    fix_example = (
        "# before\nasync def total(items):\n    return sum(i.price for i in items)\n\n"
        "# after\ndef total(items):\n    return sum(i.price for i in items)"
    )
    references = (COROUTINES_DOC, FASTAPI_ASYNC)

    def __init__(self, severity: Severity | None = None) -> None:
        super().__init__(severity)
        self._candidates: list[tuple[ast.AsyncFunctionDef, str, bool]] = []

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef, ctx: FileContext) -> None:
        if node.name.startswith("__") and node.name.endswith("__"):
            return
        if node.name.startswith("test") or ctx.path.rpartition("/")[2].startswith(("test_", "conftest")):
            return  # tests and fixtures: the runner (pytest-asyncio, anyio, trio) needs a coroutine function
        if any((dotted_name(d) or "") not in _TRANSPARENT_DECORATORS for d in node.decorator_list):
            return
        fn = ctx.function
        if _is_stub(node.body, method=bool(fn is not None and fn.class_name)):
            return
        if fn is not None and fn.class_name:
            cls_node = next((s.node for s in reversed(ctx.scopes) if s.kind == "class"), None)
            if cls_node is None or getattr(cls_node, "bases", None) or getattr(cls_node, "keywords", None):
                return  # an override of a base class's coroutine method
            if fn.params and fn.params[0] in ("self", "cls") and _uses_protocol_name(node.name):
                return
        if has_await(node.body) or _is_async_generator(node):
            return
        if is_request_handler(node, ctx):
            return  # an ASGI/aiohttp handler or exception handler registered elsewhere
        self._candidates.append((node, fn.symbol if fn is not None else node.name, bool(fn is not None and fn.class_name)))

    def finish(self, ctx: FileContext) -> None:
        if not self._candidates:
            return
        referenced = _referenced_names(ctx.tree)
        overridden = _subclass_method_names(ctx)
        for node, symbol, is_method in self._candidates:
            if node.name in referenced:
                continue  # passed as a callback / registered: the caller needs a coroutine function
            if is_method and node.name in overridden:
                continue  # a base implementation that subclasses override with real async work
            ctx.add(
                self.make_finding(
                    path=ctx.path,
                    line=node.lineno,
                    col=node.col_offset,
                    end_line=node.lineno,
                    symbol=symbol,
                    snippet=ctx.line_text(node.lineno),
                    func=node.name,
                )
            )
        self._candidates = []


_PROTOCOL_NAMES = frozenset(
    {"handle", "dispatch", "run", "start", "stop", "close", "aclose", "connect", "send", "receive", "process",
     "acquire", "release", "wait", "get", "put", "read", "write", "flush", "drain", "shutdown", "cancel"}
)


def _uses_protocol_name(name: str) -> bool:
    """Method names of async interfaces (lock, stream, transport): a sync-looking
    implementation keeps the interface awaitable."""
    return name in _PROTOCOL_NAMES


def _subclass_method_names(ctx: FileContext) -> set[str]:
    """Names of the methods defined in classes that have bases (overrides)."""
    out: set[str] = set()
    for n in ast.walk(ctx.tree):
        if isinstance(n, ast.ClassDef) and (n.bases or n.keywords):
            for item in n.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.add(item.name)
    return out


def _is_async_generator(node: ast.AsyncFunctionDef) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in walk_body(node.body))


def _referenced_names(tree: ast.AST) -> set[str]:
    """Names used as values other than as the callee of a call (``f`` in
    ``app.add_route('/', f)``, ``callbacks=[f]``, ``obj.method`` passed along)."""
    called: set[int] = set()
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            called.add(id(n.func))
    for n in ast.walk(tree):
        if id(n) in called:
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
            out.add(n.attr)
    return out


#: (de)serialization and hashing: cost proportional to the payload.
_SERIALIZERS = frozenset(
    {
        "json.loads",
        "json.dumps",
        "json.load",
        "pickle.loads",
        "pickle.dumps",
        "marshal.loads",
        "marshal.dumps",
        "orjson.loads",
        "ujson.loads",
        "ujson.dumps",
        "yaml.dump",
        "yaml.safe_dump",
        "xml.dom.minidom.parseString",
        "csv.reader",
        "copy.deepcopy",
    }
)
#: hashing a whole file object in one call (small-string digests are too cheap to mention).
_HASHES = ("hashlib.file_digest",)


@rule
class CpuBoundSerialization(Rule):
    """Payload-sized CPU work (parse, serialize, hash) inside a coroutine: a weak hint."""

    code = "AEX803"
    name = "serialization-in-async"
    kind = "cpu-bound-in-async"
    severity = Severity.INFO
    section = Section.ASYNC_PATTERNS
    confidence = Confidence.LOW
    message = "`{name}()` runs on the event loop; with a large payload it stalls every other task"
    explanation = (
        "Parsing, serializing or hashing is pure CPU work that holds the loop's thread for as long as it runs: "
        "microseconds for small payloads, hundreds of milliseconds for multi-megabyte messages."
    )
    fix = "If the payload can be large, run it in a worker: `data = await asyncio.to_thread({name}, raw)`."
    fix_example = (
        "# before\nasync def subscriber(inbox):\n    key, raw = await inbox.get()\n    store[key] = json.loads(raw)\n\n"
        "# after\nasync def subscriber(inbox):\n    key, raw = await inbox.get()\n"
        "    store[key] = await asyncio.to_thread(json.loads, raw)"
    )
    references = (ASYNCIO_DEV, TO_THREAD, "https://github.com/ray-project/ray/pull/45048")

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if not ctx.in_coroutine:
            return
        q = call_name(node, ctx)
        if q is None or not (q in _SERIALIZERS or q in _HASHES):
            return
        if is_awaited(node, ctx) or not node.args:
            return
        first = node.args[0]
        if isinstance(first, ast.Constant) or (isinstance(first, (ast.Dict, ast.List, ast.Tuple)) and len(ast.unparse(first)) < 200):
            return  # a literal: small by construction
        if q in _HASHES and not node.args:
            return
        self.report(ctx, node, name=q)
