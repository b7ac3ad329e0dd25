"""Locks in async code: threading locks on the loop thread, asyncio locks that are
not released, and asyncio locks held while awaiting slow I/O.

- :class:`SyncLockInAsync` (AEX401): ``with threading_lock:`` inside a coroutine. Taking
  it blocks the loop's thread while another thread (or a suspended task!) holds it; when
  the body awaits, the lock stays held while other tasks run, and a task of the same loop
  that then takes it freezes the loop for good (corpus case 21, from
  https://github.com/skypilot-org/skypilot/pull/7688).
- :class:`LockNotReleased` (AEX402): ``await lock.acquire()`` with no ``try/finally`` that
  releases it (the asyncio docs recommend ``async with lock`` or exactly that pattern:
  https://docs.python.org/3/library/asyncio-sync.html#asyncio.Lock).
- :class:`LockHeldAcrossAwait` (AEX403): ``async with lock:`` whose body awaits network
  I/O (a warning) or a coroutine of the scanned code that awaits (an info-level hint):
  every other user of the lock queues behind that round trip (corpus case 19, from
  https://github.com/Oaklight/zerodep/issues/76).

The body walkers here (:func:`walk_body`, :func:`enclosing_statement`) are shared by the
other families of this scanner (timeouts, sessions, hints).
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from typing import Any

from ...model import Confidence, Finding, Section, Severity
from ..context import FileContext, dotted_name
from ..link import Deferred, Program
from ..registry import Rule, link_check, rule
from .blocking import call_name

ASYNCIO_SYNC = "https://docs.python.org/3/library/asyncio-sync.html"
ASYNCIO_LOCK = "https://docs.python.org/3/library/asyncio-sync.html#asyncio.Lock"
ASYNCIO_DEV = "https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code"
THREADING_LOCK = "https://docs.python.org/3/library/threading.html#lock-objects"
FILELOCK_DOCS = "https://py-filelock.readthedocs.io/en/latest/index.html"

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)

#: object types (canonical names) of thread-blocking locks.
THREADING_LOCK_TYPES = frozenset(
    {
        "threading.Lock",
        "threading.RLock",
        "threading.Semaphore",
        "threading.BoundedSemaphore",
        "threading.Condition",
        "filelock.FileLock",
        "filelock.SoftFileLock",
        "filelock.UnixFileLock",
        "filelock.WindowsFileLock",
        "multiprocessing.Lock",
        "multiprocessing.RLock",
        "multiprocessing.Semaphore",
    }
)

#: object types of event-loop locks (acquired with ``await``).
ASYNC_LOCK_TYPES = frozenset(
    {
        "asyncio.Lock",
        "asyncio.Semaphore",
        "asyncio.BoundedSemaphore",
        "asyncio.Condition",
        "anyio.Lock",
        "anyio.Semaphore",
        "anyio.Condition",
        "trio.Lock",
        "trio.Semaphore",
        "trio.StrictFIFOLock",
    }
)

#: awaited calls that wait on a network peer (canonical names) - shared with timeouts.
NETWORK_AWAITS = frozenset(
    {
        "asyncio.open_connection",
        "asyncio.open_unix_connection",
        "asyncio.StreamReader.read",
        "asyncio.StreamReader.readline",
        "asyncio.StreamReader.readexactly",
        "asyncio.StreamReader.readuntil",
        "asyncio.AbstractEventLoop.sock_recv",
        "asyncio.AbstractEventLoop.sock_connect",
        "asyncio.AbstractEventLoop.sock_accept",
        "asyncio.AbstractEventLoop.create_connection",
        "asyncio.AbstractEventLoop.getaddrinfo",
        "websockets.Connection.recv",
        "websockets.connect",
        "aiohttp.ClientWebSocketResponse.receive",
        "aiohttp.ClientWebSocketResponse.receive_str",
        "aiohttp.ClientWebSocketResponse.receive_bytes",
        "aiohttp.ClientWebSocketResponse.receive_json",
        "aiohttp.ClientSession.ws_connect",
        *(f"aiohttp.ClientSession.{v}" for v in ("get", "post", "put", "patch", "delete", "head", "options", "request")),
        *(f"httpx.AsyncClient.{v}" for v in ("get", "post", "put", "patch", "delete", "head", "options", "request", "send", "stream")),
        *(f"aiohttp.{v}" for v in ("request",)),
    }
)

#: awaits under a lock that are its purpose, or release it while waiting.
_LOCK_FRIENDLY = frozenset(
    {
        "asyncio.Condition.wait",
        "asyncio.Condition.wait_for",
        "anyio.Condition.wait",
        "asyncio.StreamWriter.drain",
        "asyncio.StreamWriter.wait_closed",
        "asyncio.sleep",
        "asyncio.Event.wait",
        "asyncio.Queue.put",
        "asyncio.Queue.get",
    }
)


# ---------------------------------------------------------------------------
# helpers shared by this scanner's rule families


def walk_body(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``nodes`` (statements or expressions), not descending into
    nested functions, lambdas or classes (their code runs elsewhere)."""
    stack = list(nodes)
    stack.reverse()
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, _NESTED):
            continue
        children = list(ast.iter_child_nodes(n))
        children.reverse()
        stack.extend(children)


def has_await(nodes: Iterable[ast.AST]) -> bool:
    """True when the code (outside nested functions) awaits: ``await``, ``async for``,
    ``async with`` (a comprehension with ``async for`` too)."""
    for n in walk_body(nodes):
        if isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return True
        if isinstance(n, ast.comprehension) and n.is_async:
            return True
    return False


def enclosing_statement(ctx: FileContext) -> tuple[ast.stmt | None, ast.AST | None]:
    """The statement that contains the node being visited (or is it) and that
    statement's parent, from the walk's ancestor stack."""
    parents = ctx.parents
    for i in range(len(parents) - 1, -1, -1):
        if isinstance(parents[i], ast.stmt):
            return parents[i], (parents[i - 1] if i > 0 else None)  # type: ignore[return-value]
    return None, None


def statement_block(stmt: ast.stmt, parent: ast.AST | None) -> list[ast.stmt] | None:
    """The statement list of ``parent`` that holds ``stmt``."""
    if parent is None:
        return None
    for fld in ("body", "orelse", "finalbody"):
        block = getattr(parent, fld, None)
        if isinstance(block, list) and any(s is stmt for s in block):
            return block
    for h in getattr(parent, "handlers", ()) or ():
        if any(s is stmt for s in h.body):
            return h.body
    for c in getattr(parent, "cases", ()) or ():
        if any(s is stmt for s in c.body):
            return c.body
    return None


def expr_key(node: ast.AST) -> str:
    """A comparable spelling of an expression (``self._lock``)."""
    return dotted_name(node) or ast.dump(node, annotate_fields=False, include_attributes=False)


def calls_method_on(nodes: Iterable[ast.AST], key: str, methods: frozenset[str]) -> ast.Call | None:
    """The first ``<key>.<method>(...)`` call under ``nodes``."""
    for n in walk_body(nodes):
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in methods
            and expr_key(n.func.value) == key
        ):
            return n
    return None


def _type_of_lock(expr: ast.AST, ctx: FileContext) -> str | None:
    typ = ctx.type_of(expr)
    if isinstance(typ, str):
        return typ
    if isinstance(expr, ast.Call):
        q = call_name(expr, ctx)
        if q in THREADING_LOCK_TYPES or q in ASYNC_LOCK_TYPES:
            return q
    return None


def _threading_lock_expr(expr: ast.AST, ctx: FileContext) -> str | None:
    """The threading lock type when ``expr`` (a ``with`` item) takes a threading lock:
    the lock itself, a constructor call, or ``lock.acquire(...)`` (filelock style)."""
    typ = _type_of_lock(expr, ctx)
    if typ in THREADING_LOCK_TYPES:
        return typ
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "acquire":
        typ = _type_of_lock(expr.func.value, ctx)
        if typ in THREADING_LOCK_TYPES:
            return typ
    return None


def _first_await(nodes: Iterable[ast.AST]) -> ast.AST | None:
    for n in walk_body(nodes):
        if isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return n
    return None


# ---------------------------------------------------------------------------
# rules


@rule
class SyncLockInAsync(Rule):
    """``with <threading lock>:`` inside a coroutine."""

    code = "AEX401"
    name = "sync-lock-in-async"
    kind = "sync-lock-in-async"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.HIGH
    message = "`with {lock}:` takes a {typ} on the event loop thread{held}"
    explanation = (
        "A threading lock blocks the whole thread while it waits, and the event loop runs on that thread. "
        "If the body awaits, the lock stays held while other tasks run; when one of them (or a sync helper "
        "it calls) takes the same lock, the loop blocks waiting for a holder that can only resume on that "
        "very loop: a deadlock."
    )
    fix = "Use an `asyncio.Lock` (`async with lock:`) for coroutines; never hold a threading lock across an await."
    fix_example = (
        "# before\n_table_lock = threading.Lock()\n\nasync def execute(table):\n    with _table_lock:\n"
        "        table['x'] = 'RUNNING'\n        await asyncio.sleep(0.2)\n\n"
        "# after\n_table_lock = asyncio.Lock()\n\nasync def execute(table):\n    async with _table_lock:\n"
        "        table['x'] = 'RUNNING'\n        await asyncio.sleep(0.2)"
    )
    references = (ASYNCIO_SYNC, THREADING_LOCK, ASYNCIO_DEV, "https://github.com/skypilot-org/skypilot/pull/7688")

    def visit_With(self, node: ast.With, ctx: FileContext) -> None:
        if not ctx.in_coroutine:
            return
        for item in node.items:
            typ = _threading_lock_expr(item.context_expr, ctx)
            if typ is None:
                continue
            lock = expr_key(item.context_expr)
            if len(lock) > 40:
                lock = typ
            first = _first_await(node.body)
            if first is not None:
                self.report(
                    ctx,
                    node,
                    severity=Severity.CRITICAL,
                    lock=lock,
                    typ=typ,
                    held=f" and holds it across the await at line {first.lineno}",  # type: ignore[attr-defined]
                )
            else:
                # a short critical section shared with threads: usually fine, a hint only
                self.report(
                    ctx,
                    node,
                    severity=Severity.INFO,
                    confidence=Confidence.LOW,
                    lock=lock,
                    typ=typ,
                    held="; the loop blocks while another thread holds it",
                )
            return


_RELEASE = frozenset({"release"})


@rule
class LockNotReleased(Rule):
    """``await lock.acquire()`` with no ``try/finally`` release."""

    code = "AEX402"
    name = "lock-not-released"
    kind = "lock-not-released"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.HIGH
    message = "`await {lock}.acquire()` is not followed by a `try/finally` that releases it{why}"
    explanation = (
        "If anything between acquire() and release() raises - including cancellation of this task - the "
        "lock is never released, and every later `acquire()` waits forever."
    )
    fix = "Use `async with {lock}:`, or put `try:` right after the acquire and `{lock}.release()` in its `finally:`."
    fix_example = (
        "# before\nawait lock.acquire()\nawait write(row)\nlock.release()\n\n"
        "# after\nasync with lock:\n    await write(row)"
    )
    references = (ASYNCIO_LOCK, ASYNCIO_SYNC)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "acquire" and ctx.in_coroutine):
            return
        if not isinstance(ctx.parent, ast.Await) and not self._in_wait_for(ctx):
            return
        typ = _type_of_lock(func.value, ctx)
        # an awaited `.acquire()` on an object of unknown type (a global assigned later,
        # an untyped parameter) is an async lock or semaphore: medium confidence
        unknown = typ is None
        if not unknown and typ not in ASYNC_LOCK_TYPES:
            return
        fn = ctx.function
        if fn is None or getattr(fn.node, "name", "") in ("__aenter__", "acquire", "__enter__", "lock", "_acquire"):
            return  # a context manager's enter: the release is in __aexit__
        key = expr_key(func.value)
        if unknown and key in ("self", "cls"):
            return  # a lock-like class re-acquiring itself (Condition.wait): the caller releases
        stmt, parent = enclosing_statement(ctx)
        if stmt is None:
            return
        block = statement_block(stmt, parent)
        if block is not None:
            idx = next(i for i, s in enumerate(block) if s is stmt)
            nxt = block[idx + 1] if idx + 1 < len(block) else None
            if isinstance(nxt, ast.Try) and calls_method_on(nxt.finalbody, key, _RELEASE):
                return
            if isinstance(stmt, ast.If) and isinstance(nxt, ast.Try) and calls_method_on(nxt.finalbody, key, _RELEASE):
                return
        # acquire inside a try whose finally releases (also fine)
        for anc in ctx.ancestors():
            if isinstance(anc, ast.Try) and calls_method_on(anc.finalbody, key, _RELEASE):
                return
        fn_body = getattr(fn.node, "body", [])
        release = calls_method_on(fn_body, key, _RELEASE)
        if release is not None:
            why = f"; the release at line {release.lineno} is skipped when anything in between raises"
            self.report(ctx, node, lock=key, why=why, confidence=Confidence.MEDIUM if unknown else None)
        else:
            if _registers_release(fn_body, key):
                return
            self.report(
                ctx,
                node,
                confidence=Confidence.MEDIUM,
                lock=key,
                why="; this function never releases it",
            )

    @staticmethod
    def _in_wait_for(ctx: FileContext) -> bool:
        p = ctx.parent
        if isinstance(p, ast.Call):
            q = call_name(p, ctx) or ""
            if q.endswith("wait_for") and len(ctx.parents) > 1 and isinstance(ctx.parents[-2], ast.Await):
                return True
        return False


def _registers_release(body: list[ast.stmt], key: str) -> bool:
    """``stack.callback(lock.release)`` / ``add_done_callback(lambda _: lock.release())``:
    the release is handed to someone else."""
    for n in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(n, ast.Attribute) and n.attr == "release" and expr_key(n.value) == key:
            return True
    return False


@rule
class LockHeldAcrossAwait(Rule):
    """``async with <asyncio lock>:`` whose body awaits slow I/O."""

    code = "AEX403"
    name = "lock-held-across-await"
    kind = "lock-held-across-await"
    severity = Severity.INFO
    section = Section.CONCURRENCY
    confidence = Confidence.LOW
    message = "`{lock}` is held while awaiting `{what}()`{why}; every other user of the lock queues behind it"
    explanation = (
        "An asyncio lock held across a network round trip serializes every task that needs it: N concurrent "
        "requests take N round trips. If the awaited code can come back to the same lock (a self-call through "
        "a shared client), it deadlocks."
    )
    fix = "Hold `{lock}` only around the shared state, not around the I/O: copy what you need under the lock, await outside it."
    fix_example = (
        "# before\nasync def request(self, url):\n    async with self._lock:\n        return await self._round_trip(url)\n\n"
        "# after\nasync def request(self, url):\n    async with self._lock:\n        conn = self._pick_connection()\n"
        "    return await conn.round_trip(url)"
    )
    references = (ASYNCIO_LOCK, "https://github.com/Oaklight/zerodep/issues/76")

    # linker notes: "awaits" (the coroutine awaits at all) and "net_await" (it awaits
    # network I/O), read by the link check through other coroutines.
    def visit_Await(self, node: ast.Await, ctx: FileContext) -> None:
        if ctx.in_coroutine and isinstance(node.value, ast.Call):
            self._note(ctx, node.value, node.lineno)
        elif ctx.in_coroutine:
            ctx_note_once(ctx, "awaits", node.lineno)

    def _note(self, ctx: FileContext, call: ast.Call, line: int) -> None:
        ctx_note_once(ctx, "awaits", line)
        q = call_name(call, ctx)
        if q and (q in NETWORK_AWAITS or _is_network(q)):
            ctx_note_once(ctx, "net_await", (q, line))

    def visit_AsyncWith(self, node: ast.AsyncWith, ctx: FileContext) -> None:
        if not ctx.in_coroutine:
            return
        for item in node.items:
            if isinstance(item.context_expr, ast.Call):
                self._note(ctx, item.context_expr, node.lineno)
        for item in node.items:
            typ = _type_of_lock(item.context_expr, ctx)
            if typ not in ASYNC_LOCK_TYPES:
                continue
            lock = expr_key(item.context_expr)
            awaited: list[tuple[str, int, bool]] = []  # (callee, line, is_network)
            for n in walk_body(node.body):
                call: ast.AST | None = None
                if isinstance(n, ast.Await):
                    call = n.value
                elif isinstance(n, ast.AsyncWith):
                    for it in n.items:
                        if isinstance(it.context_expr, ast.Call):
                            call = it.context_expr
                            break
                if not isinstance(call, ast.Call):
                    continue
                q = call_name(call, ctx)
                if not q or q in _LOCK_FRIENDLY:
                    continue
                awaited.append((q, call.lineno, q in NETWORK_AWAITS or _is_network(q)))
                if len(awaited) > 20:
                    break
            if not awaited:
                return
            net = next((a for a in awaited if a[2]), None)
            if net is not None:
                self.report(
                    ctx,
                    node,
                    severity=Severity.WARNING,
                    confidence=Confidence.MEDIUM,
                    lock=lock,
                    what=_short_name(net[0]),
                    why=f" (network I/O at line {net[1]})",
                )
                return
            local = [a for a in awaited if not a[0].startswith(("asyncio.", "anyio.", "trio.", "builtins."))]
            if local:
                ctx.defer(
                    "lock-await-chain",
                    self.code,
                    local[0][0],
                    node,
                    lock=lock,
                    awaits=[(q, line) for q, line, _ in local[:8]],
                )
            return


def ctx_note_once(ctx: FileContext, key: str, value: Any) -> None:
    """Record linker note ``key`` on the enclosing function unless it already has one."""
    fn = ctx.function
    if fn is not None and fn.facts is not None and key not in fn.facts.notes:
        fn.facts.notes[key] = [value]


def _is_network(q: str) -> bool:
    typ, _, meth = q.rpartition(".")
    return typ in ("aiohttp.ClientSession", "httpx.AsyncClient") and meth in (
        "get", "post", "put", "patch", "delete", "head", "options", "request", "send", "stream", "ws_connect",
    )


def _short_name(q: str) -> str:
    parts = q.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 else q


@link_check("lock-await-chain")
def _lock_await_chain(d: Deferred, program: Program) -> Iterable[Finding]:
    """A lock body awaits coroutines of the scanned code: a warning when one of them
    (through other coroutines) awaits network I/O, else an info hint when it awaits at all."""
    hint: tuple[str, int] | None = None
    for q, line in d.data.get("awaits", ()):
        f = program.func(q)
        if f is None or not f.is_async:
            continue
        chain = program.chain(f.qualname, note="net_await", through_async=True)
        if chain:
            bottom = chain[-1]
            return (
                LockHeldAcrossAwait(severity=Severity.WARNING).make_finding(
                    path=d.path,
                    line=d.line,
                    col=d.col,
                    end_line=d.end_line,
                    symbol=d.symbol,
                    snippet=d.snippet,
                    confidence=Confidence.MEDIUM,
                    call_chain=(f"{d.caller} awaits {_short_name(q)}() ({d.path}:{line})", *[str(fr) for fr in chain]),
                    lock=d.data.get("lock", "lock"),
                    what=_short_name(q),
                    why=f" (line {line}), which reaches network I/O `{bottom.what}` at {bottom.path}:{bottom.line}",
                ),
            )
        if hint is None and f.notes.get("awaits"):
            hint = (q, line)
    if hint is None:
        return ()
    q, line = hint
    return (
        LockHeldAcrossAwait().make_finding(
            path=d.path,
            line=d.line,
            col=d.col,
            end_line=d.end_line,
            symbol=d.symbol,
            snippet=d.snippet,
            call_chain=(f"{d.caller} awaits {_short_name(q)}() ({d.path}:{line})",),
            lock=d.data.get("lock", "lock"),
            what=_short_name(q),
            why=f" (line {line}), a coroutine that itself awaits",
        ),
    )
