"""cancelled-error-swallowed: cancellation caught and not propagated (codes ``AEX3xx``).

``Task.cancel()`` works by throwing :class:`asyncio.CancelledError` into the
coroutine at its current ``await``. The asyncio docs say: "CancelledError ...
should generally be propagated when clean-up is complete"; a handler that
swallows it leaves the task running, so ``cancel()``, ``asyncio.timeout`` and
``TaskGroup`` stop working for it
(https://docs.python.org/3/library/asyncio-task.html#task-cancellation,
https://docs.python.org/3/library/asyncio-exceptions.html#asyncio.CancelledError).

Since Python 3.8 ``CancelledError`` derives from ``BaseException``
(https://docs.python.org/3/whatsnew/3.8.html#asyncio), so ``except Exception:``
does *not* catch it and is never reported here; ``except BaseException:`` and a
bare ``except:`` do.

A handler counts as propagating when its body contains any ``raise`` (a bare
re-raise or ``raise Other(...) from exc``), a ``return``, or a ``break`` out of
the enclosing loop. Only handlers in async code whose ``try`` body has an
``await`` (the only place where cancellation is delivered) are checked, except
an explicit ``except CancelledError`` in a coroutine, which is checked always.

Quiet by design: the "cancel, then await the task" idiom (``t.cancel()`` followed
by ``try: await t except CancelledError: pass``), where the ``CancelledError``
caught is the cancelled task's own.
"""
from __future__ import annotations

import ast
from types import SimpleNamespace
from typing import Any, ClassVar, Iterable

from ...model import Confidence, Finding, Section, Severity
from ..context import FileContext, dotted_name
from ..link import Deferred, Program
from ..registry import Rule, link_check, rule
from .blocking import call_name

__all__ = ["CancelledErrorSwallowed", "BroadExceptSwallowsCancel", "SuppressCancelledError", "CANCELLED_NAMES"]

DOC_CANCELLATION = "https://docs.python.org/3/library/asyncio-task.html#task-cancellation"
DOC_CANCELLED_ERROR = "https://docs.python.org/3/library/asyncio-exceptions.html#asyncio.CancelledError"
DOC_38 = "https://docs.python.org/3/whatsnew/3.8.html#asyncio"
DOC_SUPPRESS = "https://docs.python.org/3/library/contextlib.html#contextlib.suppress"

#: Canonical names of the cancellation exception (aliases resolve to these).
CANCELLED_NAMES: frozenset[str] = frozenset(
    {
        "asyncio.CancelledError",
        "asyncio.exceptions.CancelledError",
        "asyncio.futures.CancelledError",
        "concurrent.futures.CancelledError",  # the same class as asyncio's on 3.7 and before
    }
)
_BASE = frozenset({"builtins.BaseException"})
_TRY_TYPES: tuple[type, ...] = (ast.Try, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _caught(expr: ast.expr | None, ctx: FileContext) -> str | None:
    """``"cancelled"``, ``"base"`` or ``"bare"`` for what an ``except`` clause
    catches that includes CancelledError, else None."""
    if expr is None:
        return "bare"
    items = expr.elts if isinstance(expr, ast.Tuple) else [expr]
    kind = None
    for it in items:
        name = ctx.resolve(it) or dotted_name(it) or ""
        if name in CANCELLED_NAMES or name.endswith(".CancelledError") or name == "CancelledError":
            return "cancelled"
        if name in _BASE or name == "BaseException":
            kind = "base"
    return kind


def _walk_local(nodes: list[ast.AST]):
    """Nodes under ``nodes``, not descending into nested functions or classes."""
    stack = list(nodes)
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, _SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(n))


def propagates(body: list[ast.stmt]) -> bool:
    """Whether an ``except`` body re-raises (any ``raise``), returns, or breaks out
    of the enclosing loop (a ``break`` not inside a loop of its own)."""
    stack: list[tuple[ast.AST, bool]] = [(s, False) for s in body]
    while stack:
        n, in_loop = stack.pop()
        if isinstance(n, _SCOPES):
            continue
        if isinstance(n, (ast.Raise, ast.Return)):
            return True
        if isinstance(n, ast.Break) and not in_loop:
            return True
        inner = in_loop or isinstance(n, (ast.For, ast.AsyncFor, ast.While))
        stack.extend((c, inner) for c in ast.iter_child_nodes(n))
    return False


def _has_await(body: list[ast.stmt]) -> bool:
    return any(isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)) for n in _walk_local(body))


def _awaits_cancelled_task(body: list[ast.stmt], ctx: FileContext) -> bool:
    """True when every await in ``body`` awaits something the enclosing function
    cancelled (``t.cancel()`` ... ``await t``): the CancelledError is that task's."""
    fn = ctx.function
    if fn is None:
        return False
    node = fn.node
    cancelled = getattr(node, "_aex_cancelled", None)
    if cancelled is None:
        cancelled = set()
        for n in _walk_local(list(getattr(node, "body", ()))):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "cancel":
                recv = dotted_name(n.func.value)
                if recv:
                    cancelled.add(recv)
        node._aex_cancelled = cancelled  # type: ignore[attr-defined]
    if not cancelled:
        return False
    awaited = [n for n in _walk_local(body) if isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith))]
    if not awaited:
        return False
    for a in awaited:
        if not isinstance(a, ast.Await):
            return False
        target = a.value
        if isinstance(target, ast.Call) and call_name(target, ctx) in ("asyncio.wait_for", "asyncio.shield") and target.args:
            target = target.args[0]
        if isinstance(target, ast.Call) and call_name(target, ctx) == "asyncio.gather":
            names = [dotted_name(x.value if isinstance(x, ast.Starred) else x) for x in target.args]
            if names and all(nm in cancelled for nm in names):
                continue
            return False
        if dotted_name(target) not in cancelled:
            return False
    return True


def _at(node: ast.AST) -> SimpleNamespace:
    """A location covering only the first line of ``node`` (so a ``noqa`` on the
    handler's last line does not silence it, and the report points at the clause)."""
    return SimpleNamespace(lineno=node.lineno, col_offset=node.col_offset, end_lineno=node.lineno)  # type: ignore[attr-defined]


def _keeps_exception(handler: ast.ExceptHandler) -> bool:
    """The handler stores the caught exception for a later re-raise
    (``exc_val = exc``, ``errors.append(exc)``, ``self._error = exc``, ``fut.set_exception(exc)``)."""
    if not handler.name:
        return False
    name = handler.name
    for n in _walk_local(list(handler.body)):
        if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and isinstance(n.value, ast.Name) and n.value.id == name:
            return True
        if isinstance(n, ast.Call) and any(isinstance(a, ast.Name) and a.id == name for a in n.args):
            callee = (dotted_name(n.func) or "").rpartition(".")[2].lower()
            if callee in ("send", "throw") or any(w in callee for w in _STORE_WORDS):
                return True
    return False


#: callee-name fragments of "keep this exception for later" (``errors.append(exc)``,
#: ``self._add_exc(exc)``, ``fut.set_exception(exc)``, ``q.put_nowait(exc)``)
_STORE_WORDS = ("append", "add", "extend", "store", "save", "record", "collect", "set_exc", "put", "push")


def _handler_helpers(handler: ast.ExceptHandler, ctx: FileContext) -> list[str]:
    """Resolved callees the handler hands the caught exception to
    (``self._convert_socket_error(exc)``): they may re-raise it."""
    if not handler.name:
        return []
    out = []
    for n in _walk_local(list(handler.body)):
        if isinstance(n, ast.Call) and any(isinstance(a, ast.Name) and a.id == handler.name for a in n.args):
            q = call_name(n, ctx)
            if q and not q.startswith(("builtins.", "logging.", "traceback.", "warnings.")):
                out.append(q)
    return out


def _falls_off_the_end(ctx: FileContext) -> bool:
    """True when the ``try`` being visited (``ctx.parent``) is the last thing its
    function runs: after the handler the coroutine simply returns. Loops break
    this (the handler then leads to the next iteration)."""
    parents = ctx.parents
    child = parents[-1] if parents else None
    for anc in reversed(parents[:-1]):
        if isinstance(anc, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return bool(anc.body) and anc.body[-1] is child
        if isinstance(anc, (ast.For, ast.AsyncFor, ast.While, ast.Lambda, ast.ClassDef, ast.Module)):
            return False
        if isinstance(anc, _TRY_TYPES) and child in getattr(anc, "finalbody", ()):
            return False
        if isinstance(anc, _TRY_TYPES) and child in anc.handlers:  # type: ignore[attr-defined]
            if anc.finalbody:  # type: ignore[attr-defined]
                return False
            child = anc
            continue
        body = None
        for field in ("body", "orelse", "finalbody"):
            seq = getattr(anc, field, None)
            if isinstance(seq, list) and child in seq:
                body = seq
                break
        if body is None:
            if isinstance(anc, ast.ExceptHandler):
                body = anc.body
            else:
                return False
        if body[-1] is not child:
            return False
        if isinstance(anc, _TRY_TYPES) and body is anc.body and (anc.orelse or anc.finalbody):  # type: ignore[attr-defined]
            return False
        child = anc
    return False


def _exits_or_defers(handler: ast.ExceptHandler, ctx: FileContext) -> bool:
    """Handlers that do not swallow: re-raise/return/break, keep the exception for
    later, or end the coroutine anyway."""
    return propagates(handler.body) or _keeps_exception(handler) or _falls_off_the_end(ctx)


def _report_or_defer(rule_obj: Rule, handler: ast.ExceptHandler, ctx: FileContext, **fields: Any) -> None:
    helpers = _handler_helpers(handler, ctx)
    if helpers:
        loc = _at(handler)
        ctx.defer("cancel-helper", rule_obj.code, helpers[0], loc, helpers=helpers, fields=fields)
        return
    rule_obj.report(ctx, _at(handler), **fields)


def _record_noreturn(node: ast.AST, ctx: FileContext) -> None:
    """A function annotated ``-> NoReturn`` / ``-> Never`` raises (the ``raise``
    statements themselves are recorded by ``visit_Raise`` during the walk)."""
    fn = ctx.function
    returns = getattr(node, "returns", None)
    if fn is None or fn.facts is None or fn.node is not node or returns is None:
        return
    head = returns.value if isinstance(returns, ast.Constant) and isinstance(returns.value, str) else dotted_name(returns)
    if isinstance(head, str) and head.rpartition(".")[2] in ("NoReturn", "Never"):
        fn.facts.notes["aex_raises"] = [node.lineno]  # type: ignore[attr-defined]


def _helper_raises(program: Program, q: str, depth: int = 3) -> bool:
    """The helper raises, directly or through the functions it calls (up to
    ``depth`` levels); an unknown helper is assumed to raise (stay quiet)."""
    f = program.funcs.get(program.canonical(q))
    if f is None or f.notes.get("aex_raises"):
        return True
    if depth <= 0:
        return False
    return any(
        program.funcs.get(program.canonical(callee)) is not None and _helper_raises(program, callee, depth - 1)
        for callee, _line in f.calls
    )


@link_check("cancel-helper")
def _cancel_helper(d: Deferred, program: Program) -> Iterable[Finding]:
    """The handler hands the exception to helpers: quiet when one of them raises."""
    for q in d.data.get("helpers", ()):
        if _helper_raises(program, q):
            return ()  # it raises (or we cannot see it): assume it re-raises
    from ..registry import get_rule

    cls = get_rule(d.rule_code)
    return (
        cls().make_finding(
            path=d.path,
            line=d.line,
            col=d.col,
            end_line=d.end_line,
            symbol=d.symbol,
            snippet=d.snippet,
            **d.data.get("fields", {}),
        ),
    )


class _CancelBase(Rule):
    kind = "cancelled-error-swallowed"
    section = Section.ERROR_HANDLING
    references: ClassVar[tuple[str, ...]] = (DOC_CANCELLATION, DOC_CANCELLED_ERROR, DOC_38)

    # every function's "does it raise" fact, for handlers that delegate to a helper
    def visit_FunctionDef(self, node: ast.FunctionDef, ctx: FileContext) -> None:
        _record_noreturn(node, ctx)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef, ctx: FileContext) -> None:
        _record_noreturn(node, ctx)

    def visit_Raise(self, node: ast.Raise, ctx: FileContext) -> None:
        fn = ctx.function
        if fn is not None and fn.facts is not None and not fn.facts.notes.get("aex_raises"):
            fn.facts.notes["aex_raises"] = [node.lineno]


@rule
class CancelledErrorSwallowed(_CancelBase):
    """``except asyncio.CancelledError:`` (any alias, also inside a tuple) whose body
    neither re-raises nor leaves (return/break)."""

    code = "AEX301"
    name = "cancelled-error-swallowed"
    severity = Severity.CRITICAL
    confidence = Confidence.HIGH
    message = "`except {caught}` swallows cancellation: the task keeps running after `cancel()`"
    explanation = (
        "Task.cancel() throws CancelledError into the coroutine at its current await. Catching it without "
        "re-raising turns the cancellation into a no-op: shutdown hangs, asyncio.timeout() and TaskGroup "
        "cannot stop the task, and `await task` after cancel() waits forever."
    )
    fix = "Do the clean-up, then re-raise with a bare `raise` (or use `try/finally` for the clean-up)."
    fix_example = (
        "# before\nwhile True:\n    try:\n        msg = await inbox.get()\n    except asyncio.CancelledError:\n"
        "        log.debug('cancelled, keep listening')\n        continue\n\n"
        "# after\nwhile True:\n    try:\n        msg = await inbox.get()\n    except asyncio.CancelledError:\n"
        "        log.debug('listener cancelled')\n        raise"
    )

    def visit_ExceptHandler(self, node: ast.ExceptHandler, ctx: FileContext) -> None:
        what = _caught(node.type, ctx)
        if what is None:
            return
        try_node = ctx.parent
        if what != "cancelled" or not isinstance(try_node, _TRY_TYPES) or not ctx.in_coroutine:
            return
        if _exits_or_defers(node, ctx):
            return
        body = try_node.body  # type: ignore[attr-defined]
        if _has_await(body) and _awaits_cancelled_task(body, ctx):
            return
        caught = ast.unparse(node.type) if node.type is not None else "CancelledError"
        _report_or_defer(self, node, ctx, caught=caught)
        # BaseException / bare except: see BroadExceptSwallowsCancel


@rule
class BroadExceptSwallowsCancel(_CancelBase):
    """``except BaseException:`` or a bare ``except:`` around an ``await`` in a
    coroutine, whose body neither re-raises nor leaves."""

    code = "AEX302"
    name = "broad-except-swallows-cancel"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    message = "`{clause}` around an await also catches CancelledError and does not re-raise: `cancel()` cannot stop this task"
    explanation = (
        "A bare `except:` or `except BaseException:` catches CancelledError (a BaseException since Python 3.8). "
        "Without a re-raise, cancelling the task only interrupts the current await and the coroutine carries on."
    )
    fix = "Catch `Exception` instead (it does not include CancelledError), or re-raise CancelledError first: `except asyncio.CancelledError: raise`."
    fix_example = (
        "# before\nwhile True:\n    try:\n        item = await inbox.get()\n    except:\n        pass\n\n"
        "# after\nwhile True:\n    try:\n        item = await inbox.get()\n    except Exception:\n        log.exception('reader failed')"
    )

    def visit_ExceptHandler(self, node: ast.ExceptHandler, ctx: FileContext) -> None:
        what = _caught(node.type, ctx)
        if what not in ("base", "bare"):
            return
        try_node = ctx.parent
        if not isinstance(try_node, _TRY_TYPES) or not ctx.in_coroutine:
            return
        if _exits_or_defers(node, ctx):
            return
        if _earlier_handler_reraises_cancel(try_node, node, ctx):
            return
        body = try_node.body  # type: ignore[attr-defined]
        if not _has_await(body) or _awaits_cancelled_task(body, ctx):
            return
        clause = "except:" if node.type is None else f"except {ast.unparse(node.type)}:"
        _report_or_defer(self, node, ctx, clause=clause)


def _earlier_handler_reraises_cancel(try_node: ast.AST, handler: ast.ExceptHandler, ctx: FileContext) -> bool:
    """``except CancelledError: raise`` before the broad handler: cancellation never reaches it."""
    for h in try_node.handlers:  # type: ignore[attr-defined]
        if h is handler:
            return False
        if _caught(h.type, ctx) == "cancelled" and propagates(h.body):
            return True
    return False


@rule
class SuppressCancelledError(_CancelBase):
    """``with contextlib.suppress(asyncio.CancelledError):`` (or ``BaseException``)
    around awaits in a coroutine."""

    code = "AEX303"
    name = "suppress-cancelled-error"
    severity = Severity.CRITICAL
    confidence = Confidence.HIGH
    message = "`suppress({caught})` swallows cancellation of this task: `cancel()` cannot stop it"
    explanation = (
        "contextlib.suppress(CancelledError) silently ends the with-block when the task is cancelled and "
        "carries on after it, so the cancellation requested by cancel(), a timeout or a TaskGroup is lost."
    )
    fix = "Let CancelledError propagate; if you await a task you cancelled yourself, check `asyncio.current_task().cancelling()` and re-raise."
    fix_example = (
        "# before\nwith contextlib.suppress(asyncio.CancelledError):\n    await worker_loop()\n\n"
        "# after\ntry:\n    await worker_loop()\nfinally:\n    await cleanup()"
    )
    references = (DOC_CANCELLATION, DOC_CANCELLED_ERROR, DOC_SUPPRESS)

    def _check(self, node: ast.With | ast.AsyncWith, ctx: FileContext) -> None:
        if not ctx.in_coroutine:
            return
        for item in node.items:
            call = item.context_expr
            if not isinstance(call, ast.Call) or call_name(call, ctx) != "contextlib.suppress":
                continue
            names = [a for a in call.args if not isinstance(a, ast.Starred)]
            hits = [a for a in names if _caught(a, ctx) in ("cancelled", "base")]
            if not hits:
                continue
            if not _has_await(node.body) or _awaits_cancelled_task(node.body, ctx):
                continue
            self.report(ctx, _at(call), caught=", ".join(ast.unparse(a) for a in hits))

    def visit_With(self, node: ast.With, ctx: FileContext) -> None:
        self._check(node, ctx)

    def visit_AsyncWith(self, node: ast.AsyncWith, ctx: FileContext) -> None:
        self._check(node, ctx)
