"""missing-timeout: awaits on a network peer that can hang forever, and timeout
blocks that can never fire.

asyncio stream reads, websocket receives and connects have no timeout of their own:
a silent peer leaves the task suspended forever (corpus case 23, from
https://github.com/pyserial/pyserial-asyncio/issues/108). The asyncio docs give the
remedy: ``async with asyncio.timeout(...)`` or ``asyncio.wait_for``
(https://docs.python.org/3/library/asyncio-task.html#timeouts).

A call is quiet when it is wrapped in a timeout context manager in the same function
(``asyncio.timeout``/``timeout_at``, ``anyio.fail_after``/``move_on_after``,
``async_timeout.timeout``, trio's equivalents), passed to ``wait_for`` instead of being
awaited directly, or given a ``timeout=`` keyword. A timeout set by a caller is not
visible to the scanner; hence a warning at medium confidence.
"""
from __future__ import annotations

import ast

from ...model import Confidence, Section, Severity
from ..context import FileContext, dotted_name
from ..registry import Rule, rule
from .blocking import call_name
from .locks import has_await

TIMEOUTS_DOC = "https://docs.python.org/3/library/asyncio-task.html#timeouts"
WAIT_FOR_DOC = "https://docs.python.org/3/library/asyncio-task.html#asyncio.wait_for"
STREAMS_DOC = "https://docs.python.org/3/library/asyncio-stream.html"
ANYIO_CANCEL = "https://anyio.readthedocs.io/en/stable/cancellation.html#timeouts"

#: context managers that bound the time of the awaits in their body (canonical names).
TIMEOUT_CMS = frozenset(
    {
        "asyncio.timeout",
        "asyncio.timeout_at",
        "asyncio.timeouts.timeout",
        "asyncio.timeouts.timeout_at",
        "asyncio.Timeout",
        "anyio.fail_after",
        "anyio.move_on_after",
        "anyio.fail_at",
        "anyio.move_on_at",
        "anyio.CancelScope",
        "async_timeout.timeout",
        "async_timeout.timeout_at",
        "trio.fail_after",
        "trio.move_on_after",
        "trio.fail_at",
        "trio.move_on_at",
    }
)

#: awaited reads that wait for a peer -> a short description.
READS = {
    "asyncio.StreamReader.read": "a stream read",
    "asyncio.StreamReader.readline": "a stream read",
    "asyncio.StreamReader.readexactly": "a stream read",
    "asyncio.StreamReader.readuntil": "a stream read",
    "asyncio.AbstractEventLoop.sock_recv": "a socket receive",
    "asyncio.AbstractEventLoop.sock_recv_into": "a socket receive",
    "websockets.Connection.recv": "a websocket receive",
    "aiohttp.ClientWebSocketResponse.receive": "a websocket receive",
    "aiohttp.ClientWebSocketResponse.receive_str": "a websocket receive",
    "aiohttp.ClientWebSocketResponse.receive_bytes": "a websocket receive",
    "aiohttp.ClientWebSocketResponse.receive_json": "a websocket receive",
}

#: awaited connects (the OS connect timeout is minutes).
CONNECTS = {
    "asyncio.open_connection": "a TCP connect",
    "asyncio.open_unix_connection": "a socket connect",
    "asyncio.AbstractEventLoop.sock_connect": "a socket connect",
    "asyncio.AbstractEventLoop.create_connection": "a TCP connect",
}


def _is_timeout_cm(expr: ast.AST, ctx: FileContext) -> bool:
    if not isinstance(expr, ast.Call):
        return False
    q = call_name(expr, ctx) or ""
    if q in TIMEOUT_CMS:
        return True
    # unknown libraries: `timeout(...)`, `fail_after(...)`, `deadline(...)` helpers
    tail = q.rpartition(".")[2] if q else (expr.func.attr if isinstance(expr.func, ast.Attribute) else getattr(expr.func, "id", ""))
    return tail in ("timeout", "timeout_at", "fail_after", "move_on_after", "fail_at", "move_on_at", "deadline")


def under_timeout(ctx: FileContext) -> bool:
    """True when the node being visited is inside a timeout context manager of the
    same function (``async with asyncio.timeout(5):`` / ``with anyio.fail_after(5):``)."""
    for anc in ctx.ancestors():
        if isinstance(anc, (ast.With, ast.AsyncWith)):
            if any(_is_timeout_cm(it.context_expr, ctx) for it in anc.items):
                return True
    return False


#: functions that are themselves read/connect primitives (stream wrappers, transports).
_WRAPPER_NAMES = frozenset(
    {"read", "readline", "readexactly", "readuntil", "recv", "receive", "receive_some", "receive_bytes",
     "receive_text", "receive_json", "receive_str", "recv_into", "__anext__", "connect", "open_connection",
     "connect_tcp", "connect_unix", "_connect", "create_connection"}
)


class _MissingTimeout(Rule):
    kind = "missing-timeout"
    severity = Severity.WARNING
    section = Section.ERROR_HANDLING
    confidence = Confidence.MEDIUM
    table: dict[str, str] = {}

    def visit_Await(self, node: ast.Await, ctx: FileContext) -> None:
        call = node.value
        if not isinstance(call, ast.Call) or not ctx.in_coroutine:
            return
        q = call_name(call, ctx)
        if q is None or q not in self.table:
            return
        if any(k.arg == "timeout" for k in call.keywords):
            return
        if under_timeout(ctx):
            return
        fn = ctx.function
        if fn is not None and fn.name.lstrip("_") in _WRAPPER_NAMES:
            return  # a read primitive wrapping another: the timeout belongs to its callers
        shown = dotted_name(call.func) or q.replace("asyncio.AbstractEventLoop.", "loop.")
        self.report(ctx, call, name=shown, what=self.table[q])


@rule
class ReadWithoutTimeout(_MissingTimeout):
    """An awaited read from a peer (stream, socket, websocket) with no timeout."""

    code = "AEX501"
    name = "read-without-timeout"
    table = READS
    message = "`await {name}()` is {what} with no timeout; a silent peer leaves this task waiting forever"
    explanation = (
        "Stream and websocket reads have no timeout of their own. When the peer stops sending (a dead device, "
        "a half-open TCP connection, a stuck server) the await never returns and the task - and whoever awaits "
        "it - hangs."
    )
    fix = "Bound the read: `async with asyncio.timeout(10): data = await reader.readexactly(8)` (or `asyncio.wait_for(..., 10)`)."
    fix_example = (
        "# before\nheader = await reader.readexactly(8)\n\n"
        "# after\nasync with asyncio.timeout(5):\n    header = await reader.readexactly(8)"
    )
    references = (TIMEOUTS_DOC, WAIT_FOR_DOC, STREAMS_DOC, "https://websockets.readthedocs.io/en/stable/reference/asyncio/client.html")


@rule
class ConnectWithoutTimeout(_MissingTimeout):
    """An awaited connect with no timeout."""

    code = "AEX502"
    name = "connect-without-timeout"
    confidence = Confidence.LOW
    severity = Severity.INFO
    table = CONNECTS
    message = "`await {name}()` is {what} with no timeout; an unreachable host holds this task for minutes"
    explanation = (
        "A TCP connect to a host that drops packets waits for the operating system's connect timeout, often "
        "more than two minutes, before it fails."
    )
    fix = "Wrap it: `async with asyncio.timeout(5): reader, writer = await asyncio.open_connection(host, port)`."
    fix_example = (
        "# before\nreader, writer = await asyncio.open_connection(host, port)\n\n"
        "# after\nasync with asyncio.timeout(5):\n    reader, writer = await asyncio.open_connection(host, port)"
    )
    references = (TIMEOUTS_DOC, WAIT_FOR_DOC, STREAMS_DOC)


@rule
class TimeoutWithoutAwait(Rule):
    """A timeout block whose body never awaits: cancellation can only be delivered at
    an await, so the timeout can never fire."""

    code = "AEX503"
    name = "timeout-without-await"
    kind = "timeout-without-await"
    severity = Severity.INFO
    section = Section.ERROR_HANDLING
    confidence = Confidence.HIGH
    message = "`{cm}` has no await inside its block, so it can never time out"
    explanation = (
        "asyncio and anyio timeouts work by cancelling the task, and cancellation is delivered only at an "
        "await. A block without one runs to the end however long it takes; if it blocks, the timeout does not help."
    )
    fix = "Put the awaited operation inside the block, or move blocking work to `await asyncio.to_thread(...)` inside it."
    fix_example = (
        "# before\nasync with asyncio.timeout(5):\n    data = sock.recv(1024)\n\n"
        "# after\nasync with asyncio.timeout(5):\n    data = await loop.sock_recv(sock, 1024)"
    )
    references = (TIMEOUTS_DOC, ANYIO_CANCEL)

    def _check(self, node: ast.With | ast.AsyncWith, ctx: FileContext) -> None:
        if not ctx.in_coroutine:
            return
        for it in node.items:
            if not isinstance(it.context_expr, ast.Call):
                continue
            q = call_name(it.context_expr, ctx)
            if q not in TIMEOUT_CMS or q == "anyio.CancelScope":
                continue
            if not has_await(node.body):
                self.report(ctx, node, cm=f"{q}(...)")
            return

    def visit_AsyncWith(self, node: ast.AsyncWith, ctx: FileContext) -> None:
        self._check(node, ctx)

    def visit_With(self, node: ast.With, ctx: FileContext) -> None:
        self._check(node, ctx)
