"""Live inspection of a FastAPI or Starlette application object.

:func:`inspect_app` reads what the running app object knows - its routes (path,
methods, endpoint, ``async def`` or not, the dependency tree FastAPI built for
each route in ``route.dependant``) and its middleware stack (``user_middleware``,
each marked BaseHTTPMiddleware or pure ASGI) - and scans the source of every
endpoint, dependency and middleware with the static scanner, following imports
into the project's own modules (never site-packages or the standard library).
Findings are then attributed to routes: those located inside a route's endpoint
or dependency functions, and those the FastAPI rules annotated with the route.

What FastAPI does with sync and async functions (which is what ``is_async``
means here) is documented at https://fastapi.tiangolo.com/async/ : ``async def``
endpoints and dependencies run on the event loop, plain ``def`` ones in the
threadpool; ``@app.middleware("http")`` is BaseHTTPMiddleware
(https://www.starlette.io/middleware/#limitations).

pandas is imported only by :meth:`AppInspection.frame`.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import linecache
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .config import Settings
from .model import Finding, ScanReport

__all__ = ["ROUTE_COLUMNS", "AppInspection", "DependencyInfo", "MiddlewareInfo", "RouteInfo", "classify", "inspect_app", "is_app"]

#: Columns of :meth:`AppInspection.frame`, with their pandas dtypes.
ROUTE_COLUMNS: dict[str, str] = {
    "path": "string",  # the route's path template, "/items/{item_id}"
    "methods": "string",  # "GET,HEAD"; "WS" for websocket routes; "" for mounts
    "endpoint": "string",  # module-qualified name of the endpoint function
    "is_async": "bool",  # True: runs on the event loop; False: runs in the threadpool
    "dependencies": "string",  # "get_db (sync generator), get_user (async)"
    "critical": "int64",  # findings attributed to the route, by severity
    "warning": "int64",
    "info": "int64",
}

_APP_CLASSES = {("fastapi", "FastAPI"), ("fastapi", "APIRouter"), ("starlette", "Starlette"), ("starlette", "Router")}
#: at most this many project files are scanned when following imports
MAX_FILES = 200


def is_app(obj: Any) -> bool:
    """True for a FastAPI, APIRouter, Starlette or Router instance (or a subclass)."""
    for klass in getattr(type(obj), "__mro__", ()):
        mod = (getattr(klass, "__module__", "") or "").split(".")[0]
        if (mod, klass.__name__) in _APP_CLASSES:
            return True
    return False


@dataclass
class DependencyInfo:
    """One node of a route's dependency tree.

    Attributes:
        name: module-qualified name of the dependency callable.
        is_async: True when FastAPI awaits it on the event loop (``async def`` or an
            async generator); False when it runs in the threadpool.
        is_generator: a yield-dependency (sync or async generator).
        path: its source file ("" when unknown); line: first line of its definition.
        dependencies: its own sub-dependencies.
    """

    name: str
    is_async: bool
    is_generator: bool = False
    path: str = ""
    line: int = 0
    dependencies: list[DependencyInfo] = field(default_factory=list)
    call: Any = field(default=None, repr=False, compare=False)

    def walk(self) -> Iterable[DependencyInfo]:
        """This node and every node below it, depth first."""
        yield self
        for d in self.dependencies:
            yield from d.walk()

    @property
    def label(self) -> str:
        kind = ("async" if self.is_async else "sync") + (" generator" if self.is_generator else "")
        return f"{self.name.rpartition('.')[2] or self.name} ({kind})"


@dataclass
class RouteInfo:
    """One route of the app.

    Attributes:
        path: the path template (mount prefixes included).
        methods: HTTP methods, sorted (``("WS",)`` for websockets, ``()`` for mounts).
        name: the route name.
        endpoint: module-qualified name of the endpoint ("" when there is none).
        is_async: the endpoint runs on the event loop (False: in the threadpool).
        kind: ``"http"``, ``"websocket"`` or ``"mount"``.
        dependencies: the dependency tree (FastAPI routes; empty for Starlette routes).
        path_file, line: where the endpoint is defined.
        findings: the static findings attributed to this route.
    """

    path: str
    methods: tuple[str, ...]
    name: str
    endpoint: str
    is_async: bool
    kind: str = "http"
    dependencies: list[DependencyInfo] = field(default_factory=list)
    path_file: str = ""
    line: int = 0
    findings: list[Finding] = field(default_factory=list)
    call: Any = field(default=None, repr=False, compare=False)

    def all_dependencies(self) -> list[DependencyInfo]:
        """Every dependency of the tree, depth first (a shared one may repeat)."""
        return [d for top in self.dependencies for d in top.walk()]


@dataclass
class MiddlewareInfo:
    """One entry of ``app.user_middleware`` (outermost first).

    Attributes:
        name: the middleware class's qualified name.
        kind: ``"BaseHTTPMiddleware"`` (a subclass, or ``@app.middleware("http")``)
            or ``"pure ASGI"``.
        dispatch: module-qualified name of the dispatch function given with
            ``dispatch=`` (``@app.middleware("http")``), else "".
        options: the keyword options it was added with (``repr`` of each value).
        findings: static findings located in its class or dispatch function.
    """

    name: str
    kind: str
    dispatch: str = ""
    options: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def is_base_http(self) -> bool:
        return self.kind == "BaseHTTPMiddleware"


@dataclass
class AppInspection:
    """What :func:`inspect_app` found.

    Attributes:
        app_type: the app's class name (``"FastAPI"``, ``"Starlette"`` ...).
        routes: user routes (FastAPI's own /docs, /redoc and /openapi.json are left out
            unless asked for).
        middleware: the user middleware stack, outermost first.
        report: the static scan of the app's source files (every finding, including
            those not attributed to a route).
        files: the source files scanned.
        skipped: one-line notes on what could not be inspected or scanned.
    """

    app_type: str
    routes: list[RouteInfo] = field(default_factory=list)
    middleware: list[MiddlewareInfo] = field(default_factory=list)
    report: ScanReport = field(default_factory=ScanReport)
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        """Every finding of the scan (critical first)."""
        return self.report.findings

    def frame(self) -> Any:
        """A pandas DataFrame, one row per route; columns and dtypes are those of
        :data:`ROUTE_COLUMNS` (``critical``/``warning``/``info`` count the findings
        attributed to the route)."""
        import pandas as pd

        rows = []
        for r in self.routes:
            counts = {"critical": 0, "warning": 0, "info": 0}
            for f in r.findings:
                counts[f.severity.value] += 1
            rows.append(
                {
                    "path": r.path,
                    "methods": ",".join(r.methods),
                    "endpoint": r.endpoint,
                    "is_async": r.is_async,
                    "dependencies": ", ".join(d.label for d in r.all_dependencies()),
                    **counts,
                }
            )
        frame = pd.DataFrame(rows, columns=list(ROUTE_COLUMNS))
        return frame.astype(ROUTE_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``{"app_type", "routes": [...], "middleware": [...], "findings": [...], "files", "skipped"}``."""
        return {
            "app_type": self.app_type,
            "routes": [
                {
                    "path": r.path,
                    "methods": list(r.methods),
                    "endpoint": r.endpoint,
                    "is_async": r.is_async,
                    "kind": r.kind,
                    "dependencies": [_dep_dict(d) for d in r.dependencies],
                    "findings": [f.fingerprint for f in r.findings],
                }
                for r in self.routes
            ],
            "middleware": [
                {"name": m.name, "kind": m.kind, "dispatch": m.dispatch, "options": dict(m.options), "findings": [f.fingerprint for f in m.findings]}
                for m in self.middleware
            ],
            "findings": [f.to_dict() for f in self.findings],
            "files": list(self.files),
            "skipped": list(self.skipped),
        }

    def __repr__(self) -> str:
        c = self.report.counts()
        return (
            f"<AppInspection {self.app_type} routes={len(self.routes)} middleware={len(self.middleware)} "
            f"critical={c['critical']} warning={c['warning']} info={c['info']}>"
        )


def _dep_dict(d: DependencyInfo) -> dict[str, Any]:
    return {"name": d.name, "is_async": d.is_async, "is_generator": d.is_generator, "dependencies": [_dep_dict(x) for x in d.dependencies]}


# ---------------------------------------------------------------------------
# callables


def _unwrap(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    try:
        return inspect.unwrap(fn)
    except ValueError:
        return fn


def _qualname(fn: Any) -> str:
    fn = _unwrap(fn)
    mod = getattr(fn, "__module__", None) or getattr(type(fn), "__module__", "")
    qual = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{mod}.{qual}" if mod else qual


def classify(call: Any) -> tuple[bool, bool]:
    """``(is_async, is_generator)`` of a callable as FastAPI/Starlette treat it:
    coroutine functions and async generator functions are awaited on the event loop;
    everything else (plain functions, sync generators, classes) runs in the threadpool.
    A callable instance is judged by its ``__call__``."""
    fn = _unwrap(call)
    if inspect.isclass(fn):
        return False, False
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)) and callable(fn):
        fn = _unwrap(type(fn).__call__)
    if inspect.isasyncgenfunction(fn):
        return True, True
    if inspect.isgeneratorfunction(fn):
        return False, True
    return bool(asyncio.iscoroutinefunction(fn) or inspect.iscoroutinefunction(fn)), False


def _source_span(fn: Any) -> tuple[str, int, int] | None:
    """``(file, first line, last line)`` of a function or class definition."""
    fn = _unwrap(fn)
    if not (inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isclass(fn)):
        fn = type(fn).__call__ if callable(fn) else None
        if fn is None:
            return None
    try:
        path = inspect.getsourcefile(fn)
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    if not path:
        return None
    return path, max(start, 1), max(start, 1) + len(lines) - 1


# ---------------------------------------------------------------------------
# routes and middleware


def _dependency_tree(dependant: Any, depth: int = 0) -> list[DependencyInfo]:
    out: list[DependencyInfo] = []
    if dependant is None or depth > 20:
        return out
    for sub in getattr(dependant, "dependencies", []) or []:
        call = getattr(sub, "call", None)
        if call is None:
            continue
        is_async, is_gen = classify(call)
        span = _source_span(call)
        out.append(
            DependencyInfo(
                name=_qualname(call),
                is_async=is_async,
                is_generator=is_gen,
                path=span[0] if span else "",
                line=span[1] if span else 0,
                dependencies=_dependency_tree(sub, depth + 1),
                call=call,
            )
        )
    return out


def _builtin_route(endpoint: Any) -> bool:
    mod = getattr(_unwrap(endpoint), "__module__", "") or ""
    return mod.startswith(("fastapi.", "starlette."))


def _routes(routes: Iterable[Any], prefix: str, include_builtin: bool, skipped: list[str], depth: int = 0) -> list[RouteInfo]:
    out: list[RouteInfo] = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts) and depth < 10:
            # FastAPI >= 0.16x keeps an included router as one lazy route; its effective
            # contexts are route-like (full path, methods, endpoint, dependant)
            try:
                inner = list(contexts())
            except Exception as exc:  # noqa: BLE001 - a private FastAPI API: never fail the inspection
                skipped.append(f"included router: cannot list its routes ({type(exc).__name__}: {exc})")
                continue
            out.extend(_routes(inner, prefix, include_builtin, skipped, depth + 1))
            continue
        path = prefix + (getattr(route, "path_format", None) or getattr(route, "path", "") or "")
        sub_routes = getattr(route, "routes", None)
        endpoint = getattr(route, "endpoint", None)
        if endpoint is None and sub_routes is not None and depth < 10:  # Mount / Host / nested router
            mount_path = prefix + (getattr(route, "path", "") or "")  # path_format adds "/{path}"
            out.extend(_routes(sub_routes, mount_path, include_builtin, skipped, depth + 1))
            continue
        if endpoint is None:
            app = getattr(route, "app", None)
            out.append(RouteInfo(path=path, methods=(), name=getattr(route, "name", "") or "", endpoint=_qualname(app) if app is not None else "", is_async=True, kind="mount"))
            continue
        if not include_builtin and _builtin_route(endpoint):
            continue
        methods = tuple(sorted(getattr(route, "methods", None) or ()))
        kind = "http"
        original = getattr(route, "original_route", route)
        if type(original).__name__ in ("WebSocketRoute", "APIWebSocketRoute"):
            methods, kind = ("WS",), "websocket"
        target = _unwrap(endpoint)
        if inspect.isclass(target):  # Starlette HTTPEndpoint: one row, async if every handler is
            handlers = [getattr(target, m.lower(), None) for m in (methods or ("GET",))]
            handlers = [h for h in handlers if h is not None]
            is_async = bool(handlers) and all(classify(h)[0] for h in handlers)
        else:
            is_async = classify(endpoint)[0]
        span = _source_span(endpoint)
        out.append(
            RouteInfo(
                path=path,
                methods=methods,
                name=getattr(route, "name", "") or "",
                endpoint=_qualname(endpoint),
                is_async=is_async,
                kind=kind,
                dependencies=_dependency_tree(getattr(route, "dependant", None)),
                path_file=span[0] if span else "",
                line=span[1] if span else 0,
                call=endpoint,
            )
        )
    return out


def _middleware(app: Any) -> list[MiddlewareInfo]:
    try:
        from starlette.middleware.base import BaseHTTPMiddleware
    except ImportError:  # pragma: no cover - starlette is a dependency of every app we inspect
        BaseHTTPMiddleware = None  # type: ignore[assignment,misc]
    out: list[MiddlewareInfo] = []
    for entry in getattr(app, "user_middleware", []) or []:
        cls = getattr(entry, "cls", None)
        kwargs = dict(getattr(entry, "kwargs", {}) or {})
        if cls is None:
            continue
        base = BaseHTTPMiddleware is not None and inspect.isclass(cls) and issubclass(cls, BaseHTTPMiddleware)
        dispatch = kwargs.get("dispatch")
        out.append(
            MiddlewareInfo(
                name=_qualname(cls),
                kind="BaseHTTPMiddleware" if base else "pure ASGI",
                dispatch=_qualname(dispatch) if dispatch is not None else "",
                options={k: _short_repr(v) for k, v in kwargs.items()},
            )
        )
    return out


def _short_repr(v: Any) -> str:
    if callable(v):
        return _qualname(v)
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------
# source files


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            roots.add(os.path.realpath(p))
    roots.add(os.path.realpath(sys.base_prefix))
    return tuple(sorted(roots))


def _is_project_file(path: str) -> bool:
    real = os.path.realpath(path)
    if "site-packages" in real or "dist-packages" in real:
        return False
    return not any(real.startswith(r + os.sep) for r in _library_roots())


def _module_of_file(path: str) -> Any:
    real = os.path.realpath(path)
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and os.path.realpath(f) == real:
            return mod
    return None


def _follow(files: list[str], limit: int) -> list[str]:
    """``files`` plus the project modules they import (transitively), up to ``limit`` files."""
    seen = list(dict.fromkeys(os.path.realpath(f) for f in files))
    queue = list(seen)
    while queue and len(seen) < limit:
        mod = _module_of_file(queue.pop(0))
        if mod is None:
            continue
        for value in list(vars(mod).values()):
            target = value if inspect.ismodule(value) else sys.modules.get(getattr(value, "__module__", "") or "")
            f = getattr(target, "__file__", None) if target is not None else None
            if not f or not f.endswith(".py") or not _is_project_file(f):
                continue
            real = os.path.realpath(f)
            if real not in seen:
                seen.append(real)
                queue.append(real)
                if len(seen) >= limit:
                    break
    return seen


def _callables(routes: list[RouteInfo], middleware: list[MiddlewareInfo], app: Any) -> list[Any]:
    out: list[Any] = []
    for r in routes:
        if r.call is not None:
            out.append(r.call)
        out.extend(d.call for d in r.all_dependencies() if d.call is not None)
    for entry in getattr(app, "user_middleware", []) or []:
        out.append(getattr(entry, "cls", None))
        out.append((getattr(entry, "kwargs", {}) or {}).get("dispatch"))
    router = getattr(app, "router", None)
    lifespan = getattr(router, "lifespan_context", None)
    if lifespan is not None:
        out.append(lifespan)
    return [c for c in out if c is not None]


# ---------------------------------------------------------------------------
# attribution


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return a == b


def _attribute(report: ScanReport, routes: list[RouteInfo], middleware: list[MiddlewareInfo], app: Any) -> None:
    spans_cache: dict[int, tuple[str, int, int] | None] = {}

    def span(fn: Any) -> tuple[str, int, int] | None:
        key = id(fn)
        if key not in spans_cache:
            spans_cache[key] = _source_span(fn)
        return spans_cache[key]

    def inside(f: Finding, fn: Any) -> bool:
        s = span(fn)
        if s is not None and s[1] <= f.line <= s[2] and _same_file(f.path, s[0]):
            return True
        # cells: findings are labelled In[n]; match the function by its symbol
        qual = getattr(_unwrap(fn), "__qualname__", "")
        return bool(qual) and f.path.startswith(("In[", "<")) and (f.symbol == qual or f.symbol.startswith(qual + "."))

    for r in routes:
        fns = [r.call, *(d.call for d in r.all_dependencies())]
        fns = [fn for fn in fns if fn is not None]
        short = r.endpoint.rpartition(".")[2]
        for f in report.findings:
            fctx: dict[str, Any] = dict(f.extra.get("fastapi") or {})
            by_context = bool(fctx) and (
                (fctx.get("route") == r.path and (not fctx.get("methods") or bool(set(fctx["methods"]) & set(r.methods))))
                or (fctx.get("function") or fctx.get("endpoint")) == short
            )
            if by_context and fctx.get("file") and r.call is not None:
                # the same route or function name in another module of the scan is not this route
                where = span(r.call)
                by_context = where is None or _same_file(fctx["file"], where[0])
            if by_context or any(inside(f, fn) for fn in fns):
                r.findings.append(f)
    entries = list(getattr(app, "user_middleware", []) or [])
    for info, entry in zip(middleware, entries):
        fns = [getattr(entry, "cls", None), (getattr(entry, "kwargs", {}) or {}).get("dispatch")]
        fns = [fn for fn in fns if fn is not None and _source_span(fn) is not None]
        info.findings = [f for f in report.findings if any(inside(f, fn) for fn in fns)]


# ---------------------------------------------------------------------------
# entry point


def inspect_app(
    app: Any,
    *,
    settings: Settings | None = None,
    report: ScanReport | None = None,
    include_builtin: bool = False,
    follow: bool = True,
    scan: Callable[[list[str], Settings], ScanReport] | None = None,
) -> AppInspection:
    """Inspect a live FastAPI / Starlette app (or router): routes, dependency trees,
    middleware, and the static findings of their source, by route.

    Args:
        app: a ``FastAPI``, ``APIRouter``, ``Starlette`` or ``Router`` instance.
        settings: scanner settings (select/ignore/severity ...).
        report: an existing scan of the app's source (e.g. of notebook cells); when
            given, nothing is scanned again and findings are matched to routes by
            location or by function name.
        include_builtin: also list FastAPI's own /docs, /redoc and /openapi.json routes.
        follow: also scan the project modules imported by the files that define the
            endpoints, dependencies and middleware (transitively, at most
            :data:`MAX_FILES` files; site-packages and the standard library excluded).
        scan: the scan function (default :func:`async_expert_ext.scan.runner.scan_paths`).

    Returns:
        An :class:`AppInspection`; ``.frame()`` gives the per-route DataFrame.

    Raises:
        TypeError: when ``app`` is not a FastAPI/Starlette application or router.
    """
    if not is_app(app):
        raise TypeError(f"not a FastAPI or Starlette app: {type(app).__module__}.{type(app).__qualname__}")
    settings = settings or Settings()
    skipped: list[str] = []
    routes = _routes(getattr(app, "routes", []) or [], "", include_builtin, skipped)
    middleware = _middleware(app)
    files: list[str] = []
    if report is None:
        for fn in _callables(routes, middleware, app):
            s = _source_span(fn)
            if s is None:
                continue
            path = s[0]
            if os.path.isfile(path):
                if _is_project_file(path) and path not in files:
                    files.append(path)
            elif linecache.getlines(path) and path not in files:
                skipped.append(f"{_qualname(fn)}: defined in {path}, not a file on disk (scan the notebook cells instead)")
        if follow and files:
            files = _follow(files, MAX_FILES)
        if scan is None:
            from .scan.runner import scan_paths

            scan = scan_paths
        report = scan(files, settings) if files else ScanReport(target=type(app).__name__)
        if not files:
            skipped.append("no source file on disk for any endpoint, dependency or middleware")
    else:
        files = list(report.files_scanned)
    _attribute(report, routes, middleware, app)
    return AppInspection(
        app_type=type(app).__name__,
        routes=routes,
        middleware=middleware,
        report=report,
        files=files,
        skipped=list(dict.fromkeys(skipped)),
    )
