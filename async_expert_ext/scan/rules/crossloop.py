"""cross-loop-resource: objects bound to one event loop, used from another.

Futures, tasks, streams and the connection pools of async clients belong to the
loop that was running when they were first used. ``asyncio.run()`` makes a new
loop each time it is called, so an object created at import time or during one
``asyncio.run()`` and used in the next fails with "attached to a different loop"
or "Event loop is closed" (https://docs.python.org/3/library/asyncio-runner.html#asyncio.run,
https://github.com/aio-libs/aiohttp/issues/3331, https://github.com/encode/httpx/discussions/2959).

Rules:
- AEX690: a loop object captured at import time (``loop = asyncio.get_event_loop()``
  or ``new_event_loop()`` at module level) and used inside a coroutine, where the
  running loop is another one.
- AEX691: an async client or loop-bound asyncio object created at import time in
  a module that starts more than one event loop (several ``asyncio.run()`` calls,
  or one inside a loop).
- AEX692: ``aiohttp.ClientSession`` created outside a coroutine: aiohttp binds it
  to the loop of the creating thread and warns (it needs a running loop).
"""
from __future__ import annotations

import ast

from ...model import Confidence, Section, Severity
from ..context import FileContext
from ..registry import Rule, rule
from .blocking import call_name

RUNNER_DOC = "https://docs.python.org/3/library/asyncio-runner.html#asyncio.run"
GET_RUNNING = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.get_running_loop"

#: types whose objects bind to the loop that first uses them
LOOP_BOUND = frozenset(
    {
        "aiohttp.ClientSession",
        "httpx.AsyncClient",
        "asyncio.Queue",
        "asyncio.Lock",
        "asyncio.Event",
        "asyncio.Semaphore",
        "asyncio.Condition",
        "asyncio.Task",
    }
)
_LOOP_FACTORIES = frozenset({"asyncio.get_event_loop", "asyncio.new_event_loop"})
_RUNNERS = frozenset({"asyncio.run", "asyncio.AbstractEventLoop.run_until_complete", "asyncio.Runner"})


def _at_module_level(ctx: FileContext) -> bool:
    return ctx.function is None or (ctx.function is ctx.module_scope and not ctx.notebook)


@rule
class ImportTimeLoop(Rule):
    code = "AEX690"
    name = "import-time-loop"
    kind = "cross-loop-resource"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.MEDIUM
    message = "`{name}` is the loop captured at import time (line {at}); inside a coroutine the running loop may be another one"
    explanation = (
        "asyncio.run() and every test runner create a fresh loop. A loop object saved at import time is not "
        "that loop: futures and callbacks scheduled on it never run, or fail with 'attached to a different loop'."
    )
    fix = "Inside coroutines use `asyncio.get_running_loop()` instead of a loop saved at import time."
    fix_example = (
        "# before\nloop = asyncio.get_event_loop()\n\nasync def work():\n    return await loop.run_in_executor(None, compute)\n\n"
        "# after\nasync def work():\n    loop = asyncio.get_running_loop()\n    return await loop.run_in_executor(None, compute)"
    )
    references = (RUNNER_DOC, GET_RUNNING)

    def __init__(self, severity: Severity | None = None) -> None:
        super().__init__(severity)
        self.loops: dict[str, int] = {}
        self.reported: set[int] = set()

    def visit_Assign(self, node: ast.Assign, ctx: FileContext) -> None:
        if not _at_module_level(ctx) or not isinstance(node.value, ast.Call):
            return
        if call_name(node.value, ctx) in _LOOP_FACTORIES:
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.loops[t.id] = node.lineno

    def visit_Name(self, node: ast.Name, ctx: FileContext) -> None:
        if node.id not in self.loops or not isinstance(node.ctx, ast.Load) or not ctx.in_coroutine:
            return
        # a local rebinding (loop = asyncio.get_running_loop()) shadows the module name
        fn = ctx.function
        if fn is not None and (node.id in fn.types or node.id in fn.aliases):
            return
        if node.lineno in self.reported:
            return
        self.reported.add(node.lineno)
        self.report(ctx, node, name=node.id, at=self.loops[node.id])


@rule
class ImportTimeLoopBound(Rule):
    code = "AEX691"
    name = "loop-bound-object-across-runs"
    kind = "cross-loop-resource"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.MEDIUM
    message = "`{name}` ({typ}) is created at import time, but this module starts {runs} event loops; it can only work in one of them"
    explanation = (
        "Async clients, queues, locks and tasks bind to the first loop that uses them. Each asyncio.run() "
        "makes a new loop, so the second run fails with 'attached to a different loop' or 'Event loop is closed'."
    )
    fix = "Create the object inside the coroutine that asyncio.run() runs (or in the app's lifespan), and pass it down."
    fix_example = (
        "# before\nclient = httpx.AsyncClient()\nfor url in urls:\n    asyncio.run(fetch(client, url))\n\n"
        "# after\nasync def main():\n    async with httpx.AsyncClient() as client:\n"
        "        for url in urls:\n            await fetch(client, url)\n\nasyncio.run(main())"
    )
    references = (RUNNER_DOC, "https://github.com/aio-libs/aiohttp/issues/3331")

    def __init__(self, severity: Severity | None = None) -> None:
        super().__init__(severity)
        self.objects: list[tuple[ast.AST, str, str]] = []
        self.runs = 0
        self.run_in_loop = False

    def visit_Assign(self, node: ast.Assign, ctx: FileContext) -> None:
        if not _at_module_level(ctx) or not isinstance(node.value, ast.Call):
            return
        typ = ctx.type_of(node.value)
        if typ in LOOP_BOUND:
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.objects.append((node, t.id, str(typ)))

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        name = call_name(node, ctx)
        if name in _RUNNERS:
            self.runs += 1
            if any(isinstance(a, (ast.For, ast.While, ast.comprehension)) for a in ctx.ancestors()):
                self.run_in_loop = True

    def finish(self, ctx: FileContext) -> None:
        if not self.objects or (self.runs < 2 and not self.run_in_loop):
            return
        runs = "several" if self.run_in_loop else str(self.runs)
        for node, name, typ in self.objects:
            self.report(ctx, node, name=name, typ=typ, runs=runs)


@rule
class SessionOutsideCoroutine(Rule):
    code = "AEX692"
    name = "client-session-outside-coroutine"
    kind = "cross-loop-resource"
    severity = Severity.INFO
    section = Section.CONCURRENCY
    confidence = Confidence.MEDIUM
    message = "`aiohttp.ClientSession()` is created outside a coroutine; it binds to whatever loop is current then"
    explanation = (
        "aiohttp expects a ClientSession to be created inside a coroutine, on the loop that will use it; made at "
        "import time or in sync code it can end up on another loop, and aiohttp warns about it."
    )
    fix = "Create the session inside a coroutine (or the app's startup/lifespan) and close it there."
    fix_example = (
        "# before\nsession = aiohttp.ClientSession()\n\n"
        "# after\nasync def main():\n    async with aiohttp.ClientSession() as session:\n        ..."
    )
    references = ("https://docs.aiohttp.org/en/stable/client_advanced.html#client-session", RUNNER_DOC)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if call_name(node, ctx) != "aiohttp.ClientSession" or ctx.in_coroutine:
            return
        fn = ctx.function
        if fn is not None and fn.kind == "lambda":
            return
        # a sync factory whose result is returned is the caller's business (checked where it is called)
        if isinstance(ctx.parent, ast.Return):
            return
        self.report(ctx, node)
