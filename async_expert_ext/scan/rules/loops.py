"""The event loop itself: running a loop inside a running loop, asking for the loop
the old way, and calling loop methods from another thread.

- :class:`LoopRunInCoroutine` (AEX601): ``asyncio.run()`` / ``loop.run_until_complete()`` /
  ``loop.run_forever()`` inside a coroutine - or at the top level of a notebook cell,
  where the kernel's loop is already running (corpus case 24, from
  https://github.com/jupyter/notebook/issues/4312). They raise ``RuntimeError`` ("cannot be
  called from a running event loop"); the coroutine passed in is never awaited.
- :class:`LoopRunnerHelper` (AEX602): the same call hidden in a sync function of the scanned
  code that a coroutine calls - directly, through other sync functions, or by receiving it
  as an argument and calling its parameter (found by the linker, with the call chain).
- :class:`GetEventLoopInCoroutine` (AEX603): ``asyncio.get_event_loop()`` in a coroutine;
  ``get_running_loop()`` says what is meant and cannot create a second loop
  (https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.get_event_loop).
- :class:`LoopMethodFromThread` (AEX610): a sync function used as a thread's target
  (``threading.Thread``/``Timer``, ``executor.submit``, ``run_in_executor``, ``to_thread``)
  calls ``loop.call_soon``/``call_later``/``stop``/``create_task`` ... on a loop it does not
  run. Those methods are not thread-safe
  (https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading;
  corpus case 27, from https://github.com/python/asyncio/issues/244). A weak hint: the
  scanner cannot see which thread really runs the loop.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable

from ...model import Confidence, Finding, Section, Severity
from ..context import FileContext, dotted_name
from ..link import Deferred, Frame, Program
from ..registry import Rule, link_check, rule
from .blocking import call_name, is_awaited
from .locks import walk_body

RUNNER_DOC = "https://docs.python.org/3/library/asyncio-runner.html#asyncio.run"
RUN_UNTIL = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.run_until_complete"
IPY_AUTOAWAIT = "https://ipython.readthedocs.io/en/stable/interactive/autoawait.html"
GET_EVENT_LOOP = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.get_event_loop"
GET_RUNNING_LOOP = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.get_running_loop"
THREADSAFE_DOC = "https://docs.python.org/3/library/asyncio-dev.html#concurrency-and-multithreading"
CALL_SOON_TS = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.call_soon_threadsafe"
RUN_CORO_TS = "https://docs.python.org/3/library/asyncio-task.html#asyncio.run_coroutine_threadsafe"

_LOOP = "asyncio.AbstractEventLoop"

#: calls that run an event loop in the current thread.
LOOP_RUNNERS = frozenset(
    {
        "asyncio.run",
        "asyncio.Runner.run",
        f"{_LOOP}.run_until_complete",
        f"{_LOOP}.run_forever",
        "anyio.run",
        "uvicorn.run",
    }
)

#: loop methods that must be called from the loop's own thread.
#: asyncio primitives' methods that wake waiters through the loop (not thread-safe),
#: by method name -> the resolved names that count
PRIMITIVE_NOT_THREADSAFE: dict[str, frozenset[str]] = {
    "put_nowait": frozenset({"asyncio.Queue.put_nowait"}),
    "get_nowait": frozenset({"asyncio.Queue.get_nowait"}),
    "set": frozenset({"asyncio.Event.set"}),
    "set_result": frozenset({"asyncio.Future.set_result"}),
    "set_exception": frozenset({"asyncio.Future.set_exception"}),
    "notify": frozenset({"asyncio.Condition.notify"}),
    "notify_all": frozenset({"asyncio.Condition.notify_all"}),
}

NOT_THREADSAFE = frozenset({"call_soon", "call_later", "call_at", "stop", "create_task", "add_reader", "add_writer", "remove_reader", "remove_writer", "create_future"})

_NOT_LOCAL = ("asyncio.", "builtins.", "anyio.", "trio.", "typing.", "functools.", "contextlib.", "logging.", "threading.")


def _looks_like_loop(expr: ast.AST) -> bool:
    name = dotted_name(expr) or ""
    tail = name.rpartition(".")[2]
    return tail in ("loop", "_loop", "event_loop", "_event_loop", "ioloop")


def loop_runner_name(node: ast.Call, ctx: FileContext) -> str | None:
    """The loop-running call ``node`` makes (``"asyncio.run"``, ``"loop.run_until_complete"``), or None."""
    q = call_name(node, ctx)
    if q in LOOP_RUNNERS:
        return q
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in ("run_until_complete", "run_forever") and _looks_like_loop(func.value):
        return f"{_LOOP}.{func.attr}"
    return None


def _display(q: str) -> str:
    return q.replace(f"{_LOOP}.", "loop.")


@rule
class LoopRunInCoroutine(Rule):
    """A loop is started where one is already running."""

    code = "AEX601"
    name = "loop-run-in-running-loop"
    kind = "event-loop-already-running"
    severity = Severity.CRITICAL
    section = Section.CRITICAL_ISSUES
    confidence = Confidence.HIGH
    message = "`{name}()` starts an event loop inside a running one; it raises RuntimeError"
    explanation = (
        "Only one event loop runs per thread. asyncio.run() and run_until_complete() called while a loop is "
        "running raise RuntimeError ('cannot be called from a running event loop'), and the coroutine passed "
        "in is never awaited."
    )
    fix = "Await the coroutine instead: `result = await coro()`."
    fix_example = (
        "# before\nasync def handler():\n    data = asyncio.run(fetch())\n\n"
        "# after\nasync def handler():\n    data = await fetch()"
    )
    references = (RUNNER_DOC, RUN_UNTIL, IPY_AUTOAWAIT)

    _NOTEBOOK_MSG = (
        "`{name}()` at the top of a notebook cell: the kernel's event loop is already running, so it raises RuntimeError"
    )
    _NOTEBOOK_FIX = (
        "IPython runs top-level `await`: write `result = await main()` in the cell instead of `{name}(main())`."
    )

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        name = loop_runner_name(node, ctx)
        if name is None:
            return
        fn = ctx.function
        shown = _display(name)
        if fn is None or (fn.kind == "module" and ctx.notebook):
            if ctx.notebook:
                self.report(
                    ctx,
                    node,
                    message=self._NOTEBOOK_MSG.format(name=shown),
                    fix=self._NOTEBOOK_FIX.format(name=shown),
                    name=shown,
                )
            return
        if ctx.in_coroutine:
            self.report(ctx, node, name=shown)


@rule
class LoopRunnerHelper(Rule):
    """A coroutine (or a notebook cell's top level) runs a sync function that starts
    an event loop: directly, through other sync functions, or passed as an argument
    to a coroutine that calls its parameter."""

    code = "AEX602"
    name = "loop-runner-helper"
    kind = "event-loop-already-running"
    severity = Severity.CRITICAL
    section = Section.CRITICAL_ISSUES
    confidence = Confidence.HIGH
    message = "`{callee}()` starts an event loop (`{bottom}` at {where}) but runs inside a running loop"
    explanation = (
        "The sync function reaches asyncio.run()/run_until_complete(); called from a coroutine (or a notebook "
        "cell, where the kernel's loop runs) that raises RuntimeError and the coroutine it was given is never awaited."
    )
    fix = "Make the helper `async def` and `await` the coroutine inside it; from a notebook cell use top-level `await`."
    fix_example = (
        "# before\ndef cell_1():\n    return asyncio.run(fetch_greeting())\n\nasync def execute(cell):\n    return cell()\n\n"
        "# after\nasync def cell_1():\n    return await fetch_greeting()\n\nasync def execute(cell):\n    return await cell()"
    )
    references = (RUNNER_DOC, RUN_UNTIL, IPY_AUTOAWAIT)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        fn = ctx.function
        if fn is not None and not fn.is_async:
            runner = loop_runner_name(node, ctx)
            if runner is not None:
                # a sync function that starts a loop: the linker fact this rule follows
                ctx.note("runs_loop", (_display(runner), node.lineno))
                return
        on_loop = ctx.in_coroutine or (ctx.notebook and (fn is None or fn.kind == "module"))
        if on_loop and not is_awaited(node, ctx):
            name = call_name(node, ctx)
            if name and not name.startswith(_NOT_LOCAL) and loop_runner_name(node, ctx) is None:
                ctx.defer("runs-loop-chain", self.code, name, node)
            # a coroutine calling one of its own parameters: remember which one
            if ctx.in_coroutine and fn is not None and isinstance(node.func, ast.Name) and node.func.id in fn.params:
                if ctx.lookup_type(node.func.id) is None:
                    ctx.note("calls_param", (fn.params.index(node.func.id), node.func.id, node.lineno))
        # functions of the scanned code passed as arguments: the callee may run them
        self._defer_passed(node, ctx)

    def _defer_passed(self, node: ast.Call, ctx: FileContext) -> None:
        if not node.args and not node.keywords:
            return
        callee = call_name(node, ctx)
        if not callee or callee.startswith(_NOT_LOCAL):
            return
        local = ctx.module + "."
        pkg = (ctx.package.split(".")[0] + ".") if ctx.package else local
        passed: list[tuple[int | None, str | None, str]] = []
        for i, a in enumerate(node.args):
            if isinstance(a, (ast.Name, ast.Attribute)):
                q = ctx.resolve(a)
                if q and (q.startswith(local) or q.startswith(pkg)):
                    passed.append((i, None, q))
        for k in node.keywords:
            if k.arg and isinstance(k.value, (ast.Name, ast.Attribute)):
                q = ctx.resolve(k.value)
                if q and (q.startswith(local) or q.startswith(pkg)):
                    passed.append((None, k.arg, q))
        if passed:
            ctx.defer("runs-loop-param", self.code, callee, node, passed=passed, method=isinstance(node.func, ast.Attribute))


def _short(q: str, program: Program | None = None) -> str:
    """``Class.method`` / ``function`` for a qualname: the module prefix is dropped
    when the program knows the module, else the last two parts are kept."""
    if program is not None:
        best = ""
        for r in program.results:
            if q.startswith(r.module + ".") and len(r.module) > len(best):
                best = r.module
        if best:
            return q[len(best) + 1 :]
    parts = q.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 else q


@link_check("runs-loop-chain")
def _runs_loop_chain(d: Deferred, program: Program) -> Iterable[Finding]:
    f = program.func(d.target)
    if f is None or f.is_async or f.qualname == d.caller:
        return ()
    chain = program.chain(f.qualname, note="runs_loop")
    if not chain:
        return ()
    bottom = chain[-1]
    callee = d.target.rpartition(".")[2]
    return (
        LoopRunnerHelper().make_finding(
            path=d.path,
            line=d.line,
            col=d.col,
            end_line=d.end_line,
            symbol=d.symbol,
            snippet=d.snippet,
            call_chain=(f"{d.caller} calls {callee}() ({d.path}:{d.line})", *[str(fr) for fr in chain]),
            callee=callee,
            bottom=bottom.what,
            where=f"{bottom.path}:{bottom.line}",
        ),
    )


@link_check("runs-loop-param")
def _runs_loop_param(d: Deferred, program: Program) -> Iterable[Finding]:
    """``await execute(cell_1)`` where ``execute`` is a coroutine that calls its
    parameter and ``cell_1`` starts a loop: reported at the loop-starting line."""
    f = program.func(d.target)
    if f is None or not f.is_async:
        return ()
    called = f.notes.get("calls_param")
    if not called:
        return ()
    shift = 1 if (d.data.get("method") and f.params and f.params[0] in ("self", "cls")) else 0
    out = []
    for index, kw, q in d.data.get("passed", ()):
        hit = None
        for p_index, p_name, p_line in called:
            if (index is not None and index + shift == p_index) or (kw is not None and kw == p_name):
                hit = (p_name, p_line)
                break
        if hit is None:
            continue
        g = program.func(q)
        if g is None or g.is_async:
            continue
        chain = program.chain(g.qualname, note="runs_loop")
        if not chain:
            continue
        bottom = chain[-1]
        frames = (
            f"{d.caller} passes {_short(q, program)} to {_short(f.qualname, program)}() ({d.path}:{d.line})",
            str(Frame(f.qualname, f.path, hit[1], f"{_short(f.qualname, program)} calls {hit[0]}()")),
            *[str(fr) for fr in chain],
        )
        bottom_f = program.funcs.get(bottom.qualname)
        out.append(
            LoopRunnerHelper().make_finding(
                path=bottom.path,
                line=bottom.line,
                symbol=_short(bottom.qualname, program) if bottom_f else d.symbol,
                call_chain=frames,
                message=(
                    f"`{bottom.what}()` in `{_short(bottom.qualname, program)}` runs inside a running loop: "
                    f"`{_short(f.qualname, program)}()` (a coroutine) calls it through its parameter `{hit[0]}` "
                    f"({d.path}:{d.line})"
                ),
                callee=_short(q, program),
            )
        )
    return out


@rule
class GetEventLoopInCoroutine(Rule):
    """``asyncio.get_event_loop()`` inside a coroutine."""

    code = "AEX603"
    name = "get-event-loop-in-coroutine"
    kind = "get-event-loop-in-coroutine"
    severity = Severity.INFO
    section = Section.ASYNC_PATTERNS
    confidence = Confidence.HIGH
    message = "`asyncio.get_event_loop()` inside a coroutine; use `asyncio.get_running_loop()`"
    explanation = (
        "Inside a coroutine the running loop is what you want; get_event_loop() has policy-dependent behaviour "
        "(it may create a new loop where none is set, and is deprecated in that role since Python 3.10-3.12)."
    )
    fix = "Replace it with `asyncio.get_running_loop()`."
    fix_example = (
        "# before\nasync def main():\n    loop = asyncio.get_event_loop()\n\n"
        "# after\nasync def main():\n    loop = asyncio.get_running_loop()"
    )
    references = (GET_EVENT_LOOP, GET_RUNNING_LOOP)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if call_name(node, ctx) != "asyncio.get_event_loop" or not ctx.in_coroutine:
            return
        fn = ctx.function
        if fn is not None and fn.kind == "module":
            return  # a notebook cell's top level: it is the kernel's loop
        self.report(ctx, node)


# ---------------------------------------------------------------------------
# threadsafe-misuse

#: calls that run a callable in another thread -> (positional index, keyword) of the callable.
THREAD_STARTERS: dict[str, tuple[int | None, str | None]] = {
    "threading.Thread": (None, "target"),
    "threading.Timer": (1, "function"),
    "concurrent.futures.Executor.submit": (0, "fn"),
    f"{_LOOP}.run_in_executor": (1, None),
    "asyncio.to_thread": (0, "func"),
    "anyio.to_thread.run_sync": (0, None),
    "starlette.concurrency.run_in_threadpool": (0, None),
}


def _thread_callable(node: ast.Call, ctx: FileContext) -> ast.AST | None:
    q = call_name(node, ctx)
    spec = THREAD_STARTERS.get(q or "")
    func = node.func
    if spec is None and isinstance(func, ast.Attribute):
        recv = (dotted_name(func.value) or "").lower()
        if func.attr == "run_in_executor":
            spec = (1, None)
        elif func.attr == "submit" and ("executor" in recv or "pool" in recv):
            spec = (0, "fn")
    if spec is None:
        return None
    index, kw = spec
    target = None
    if kw is not None:
        target = next((k.value for k in node.keywords if k.arg == kw), None)
    if target is None and index is not None and len(node.args) > index:
        target = node.args[index]
    if isinstance(target, ast.Call) and (call_name(target, ctx) or "").endswith("partial") and target.args:
        target = target.args[0]
    return target


def _owned_loops(fn_node: ast.AST) -> set[str]:
    """Names of loops this function runs itself (created with new_event_loop, run with
    run_forever/run_until_complete, or set as the thread's loop)."""
    owned: set[str] = set()
    for n in walk_body(getattr(fn_node, "body", [])):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
            callee = dotted_name(n.value.func) or ""
            if callee.rpartition(".")[2] in ("new_event_loop", "get_event_loop", "get_loop", "EventLoop", "SelectorEventLoop", "ProactorEventLoop", "IOLoop"):
                for t in n.targets:
                    if dotted_name(t):
                        owned.add(dotted_name(t))  # type: ignore[arg-type]
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            if n.func.attr in ("run_forever", "run_until_complete") and dotted_name(n.func.value):
                owned.add(dotted_name(n.func.value))  # type: ignore[arg-type]
            elif n.func.attr == "set_event_loop" and n.args and dotted_name(n.args[0]):
                owned.add(dotted_name(n.args[0]))  # type: ignore[arg-type]
    return owned


@rule
class LoopMethodFromThread(Rule):
    """A function run in another thread calls a loop method that is not thread-safe."""

    code = "AEX610"
    name = "loop-method-from-thread"
    kind = "threadsafe-misuse"
    severity = Severity.WARNING
    section = Section.CONCURRENCY
    confidence = Confidence.LOW
    message = "`{meth}()` is called from a function that runs in another thread ({how}); it is not thread-safe"
    explanation = (
        "Event loop methods other than call_soon_threadsafe() must be called from the loop's own thread. From "
        "another thread the loop, asleep in select(), does not wake up: the callback or stop() waits until "
        "some unrelated event arrives, and the loop's internals can be corrupted."
    )
    fix = "Use `loop.call_soon_threadsafe(...)` (e.g. `loop.call_soon_threadsafe(loop.stop)`), or `asyncio.run_coroutine_threadsafe(coro, loop)` for coroutines."
    fix_example = (
        "# before\ndef watchdog(loop):\n    time.sleep(5)\n    loop.stop()\n\n"
        "# after\ndef watchdog(loop):\n    time.sleep(5)\n    loop.call_soon_threadsafe(loop.stop)"
    )
    references = (THREADSAFE_DOC, CALL_SOON_TS, RUN_CORO_TS)

    def __init__(self, severity: Severity | None = None) -> None:
        super().__init__(severity)
        self._owned: dict[int, set[str]] = {}

    def _loop_method(self, node: ast.Call, ctx: FileContext) -> str | None:
        """``"loop.call_soon"`` / ``"asyncio.Queue.put_nowait"`` ... for a call that must
        run on the loop's thread, else None."""
        func = node.func
        if not isinstance(func, ast.Attribute):
            return None
        if func.attr in PRIMITIVE_NOT_THREADSAFE:
            # asyncio primitives wake their waiters with loop.call_soon: same rule
            q = call_name(node, ctx) or ""
            return q if q in PRIMITIVE_NOT_THREADSAFE[func.attr] else None
        if func.attr not in NOT_THREADSAFE:
            return None
        q = call_name(node, ctx) or ""
        if not (q == f"{_LOOP}.{func.attr}" or _looks_like_loop(func.value)):
            return None
        return f"loop.{func.attr}"

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        fn = ctx.function
        if fn is not None and not fn.is_async and fn.kind == "function":
            meth = self._loop_method(node, ctx)
            if meth is not None:
                owned = self._owned.get(id(fn.node))
                if owned is None:
                    owned = self._owned[id(fn.node)] = _owned_loops(fn.node)
                recv = dotted_name(node.func.value) or ""  # type: ignore[attr-defined]
                if recv not in owned:
                    ctx.note("loop_call", (meth, node.lineno))
        target = _thread_callable(node, ctx)
        if target is None:
            return
        starter = dotted_name(node.func) or "a thread"
        if isinstance(target, ast.Lambda):
            for n in walk_body([target.body]):
                if isinstance(n, ast.Call):
                    meth = self._loop_method(n, ctx)
                    if meth is not None:
                        self.report(ctx, n, meth=meth, how=f"a lambda given to {starter}()")
            return
        if isinstance(target, (ast.Name, ast.Attribute)):
            q = ctx.resolve(target)
            if q and not q.startswith(_NOT_LOCAL):
                ctx.defer("thread-loop-call", self.code, q, node, starter=starter)


@link_check("thread-loop-call")
def _thread_loop_call(d: Deferred, program: Program) -> Iterable[Finding]:
    f = program.func(d.target)
    if f is None or f.is_async:
        return ()
    chain = program.chain(f.qualname, note="loop_call")
    if not chain:
        return ()
    bottom = chain[-1]
    meth = bottom.what
    how = f"{_short(f.qualname, program)} is passed to {d.data.get('starter', 'a thread')}() at {d.path}:{d.line}"
    return (
        LoopMethodFromThread().make_finding(
            path=bottom.path,
            line=bottom.line,
            symbol=_short(bottom.qualname, program),
            call_chain=(f"{d.caller} runs {_short(f.qualname, program)} in a thread ({d.path}:{d.line})", *[str(fr) for fr in chain]),
            meth=meth,
            how=how,
        ),
    )
