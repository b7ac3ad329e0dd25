"""In-process load probe for FastAPI and Starlette apps.

:func:`probe` (``await probe(app)``) and :func:`run_probe` (synchronous) drive an
ASGI app with concurrent requests and say which route made which other route slow:

1. **Plan.** Every HTTP route of the app becomes one target per method (HEAD
   left out). Path parameters take the ``params`` sample values, else 1 for an
   ``int``, 1.0 for a ``float`` and ``"x"`` for a ``str`` parameter; required query,
   header and cookie parameters likewise. A JSON body is built from the body
   model's JSON schema (``examples``/``default``/``enum`` first, then the minimal
   value of each required property's type). A route that cannot be called
   (websocket, mount, form or file body, a body schema too complex to fill, a
   required parameter of unknown type without a sample) is listed in
   ``LoadReport.skipped`` with the reason.
2. **Run.** Under a :class:`~async_expert_ext.loop.session.ProfileSession` (the
   instruments of ``%%loop_profile``: blocking watchdog naming the culprit line,
   loop lag, anyio limiter saturation), the app's lifespan is started
   (``lifespan.startup``), each route is requested alone a few times (its
   *baseline*), then every route is loaded at once, ``concurrency`` workers per
   route, until ``requests`` requests per route are done or ``duration`` seconds
   have passed. In-process the client is ``httpx.AsyncClient`` over
   ``httpx.ASGITransport``; with ``server=True`` the app runs under uvicorn on
   127.0.0.1 (a free port) and is driven through real sockets.
3. **Canaries.** A trivial request over ``ASGITransport`` can finish without ever
   suspending, so its own timing does not show that the loop was blocked before it
   started. Each route therefore also gets a timer-driven canary: one request every
   ``probe_every`` seconds, whose latency is measured from the moment it was *due*
   (the ``asyncio.sleep`` deadline), so a blocked loop or a queue for a worker
   token shows up in it.
4. **Attribution.** Each blocking event of the watchdog is attributed to the route
   whose endpoint or dependency source lines appear in its stack (helpers and
   nested generators included: the innermost frame inside a route's source span).
   A route whose canary was delayed past the threshold while *another* route's
   blocking line (or the sync endpoints holding every anyio token) was running is a
   victim: a ``slow-endpoint`` finding (AEX942) at the victim's endpoint names the
   victim route, the culprit route and the culprit line.

Findings: ``slow-endpoint``; ``sync-endpoint-threadpool`` (AEX941, from the executor
monitor, extended with the measured limiter saturation); ``blocking-call-in-async`` /
``cpu-bound-in-async`` seen under load, joined with the static scan of the app's
source (``extra["confirmed"]``, ``extra["runtime"]`` give the measured cost) and
tagged with ``extra["route"]``.

The thresholds: a stall longer than ``threshold_ms`` (50 ms by default, the order
of asyncio's own ``slow_callback_duration`` of 100 ms,
https://docs.python.org/3/library/asyncio-dev.html#debug-mode) is a blocking event;
a canary more than ``max(threshold_ms, baseline / 4)`` late is delayed. anyio's
default limiter has 40 tokens
(https://anyio.readthedocs.io/en/stable/threads.html#adjusting-the-default-maximum-worker-thread-count)
and FastAPI runs every ``def`` endpoint and dependency on it
(https://fastapi.tiangolo.com/async/#path-operation-functions).
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import inspect
import json
import math
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .errors import UsageError
from .model import Confidence, Finding, LoopReport, Section, Severity

__all__ = [
    "ROUTE_COLUMNS",
    "LoadReport",
    "RouteTarget",
    "lifespan",
    "load_app",
    "plan_routes",
    "probe",
    "recommendations",
    "render_text",
    "run_probe",
]

#: Columns of ``LoadReport.routes`` (one row per route and method); times in ms.
ROUTE_COLUMNS: dict[str, str] = {
    "method": "string",
    "path": "string",  # the route's path template
    "url": "string",  # the URL requested (sample parameters filled in)
    "endpoint": "string",  # qualname of the endpoint function
    "is_async": "bool",  # runs on the event loop (False: anyio's threadpool)
    "requests": "int64",  # load requests completed (canaries not included)
    "errors": "int64",  # responses >= 400 and exceptions
    "cancelled": "int64",  # requests still running at the deadline, cancelled
    "status": "string",  # "200:48,500:2"
    "p50_ms": "float64",
    "p95_ms": "float64",
    "p99_ms": "float64",
    "max_ms": "float64",
    "rps": "float64",  # completed requests per second of the load phase
    "alone_ms": "float64",  # baseline latency, the route requested alone
    "canary_p95_ms": "float64",  # canary latency from the due time, p95
    "canary_max_ms": "float64",
    "queue_ms_max": "float64",  # longest wait for an anyio worker token (sync endpoints)
    "blocked_ms": "float64",  # loop blocked by this route's code during the run
    "blocking_events": "int64",
    "slow_by": "string",  # "GET /orders/export at app.py:21" when a victim
}

_DEBUG_DOC = "https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code"
_FASTAPI_ASYNC_DOC = "https://fastapi.tiangolo.com/async/#path-operation-functions"
_ANYIO_DOC = "https://anyio.readthedocs.io/en/stable/threads.html#adjusting-the-default-maximum-worker-thread-count"
_LIFESPAN_DOC = "https://fastapi.tiangolo.com/advanced/events/#lifespan"
_ASGI_LIFESPAN = "https://asgi.readthedocs.io/en/latest/specs/lifespan.html"
_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
#: static kinds kept in a load report even outside the probed routes' code (lifespan,
#: middleware and app-wide patterns the recommendations are written from)
_APP_WIDE_KINDS = frozenset({"basehttpmiddleware", "fastapi-pattern", "unclosed-session"})
_STACK_RE = re.compile(r"^(?P<q>.*) \((?P<p>.*):(?P<l>\d+)\)$")


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
@dataclass
class LoadReport(LoopReport):
    """A :class:`~async_expert_ext.model.LoopReport` of a load run, plus the per-route table.

    Attributes:
        routes: rows of :data:`ROUTE_COLUMNS`, one per route and method.
        skipped: ``{"method", "path", "reason"}`` for each route that was not called.
        recommendations: the "FastAPI performance recommendations" written from this
            app and this run, one sentence each.
        threadpool: anyio's default limiter during the load: ``{"total_tokens",
            "peak_borrowed", "peak_waiting", "queue_ms_max", "saturated_s"}`` (ms, s).
        load: what was run: ``{"mode": "asgi"|"server", "requests", "concurrency",
            "duration_s", "load_s", "probe_every_s", "url"}``.
    """

    routes: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    threadpool: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)

    @property
    def route_frame(self) -> Any:
        """DataFrame of :data:`ROUTE_COLUMNS` (pandas imported here)."""
        import pandas as pd  # type: ignore[import-untyped]

        df = pd.DataFrame(self.routes, columns=list(ROUTE_COLUMNS))
        for col, dtype in ROUTE_COLUMNS.items():
            try:
                df[col] = df[col].astype(dtype)
            except (TypeError, ValueError):
                pass
        return df

    def to_dict(self) -> dict[str, Any]:
        """:meth:`LoopReport.to_dict` plus ``routes``, ``skipped``, ``recommendations``,
        ``threadpool`` and ``load``."""
        data = super().to_dict()
        data.update(
            routes=[dict(r) for r in self.routes],
            skipped=[dict(s) for s in self.skipped],
            recommendations=list(self.recommendations),
            threadpool=dict(self.threadpool),
            load=dict(self.load),
        )
        return json.loads(json.dumps(_no_nan(data), default=str))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """The load table and recommendations (:func:`render_text`), then the
        :class:`LoopReport`'s own bundle (its HTML report of the loop)."""
        import html

        text = render_text(self)
        try:
            base = super()._repr_mimebundle_(include, exclude)
        except Exception as exc:  # noqa: BLE001 - the table alone is still the report
            base = {"text/html": f"<p>loop report unavailable: {html.escape(str(exc))}</p>"}
        return {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>" + str(base.get("text/html", ""))}

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"<LoadReport {self.target} routes={len(self.routes)} skipped={len(self.skipped)} "
            f"critical={c['critical']} warning={c['warning']} info={c['info']} seconds={self.seconds:.3f}>"
        )


# ---------------------------------------------------------------------------
# loading an app from FILE.py:NAME
# ---------------------------------------------------------------------------
def load_app(spec: str) -> tuple[Any, str]:
    """Import ``FILE.py:NAME`` (NAME defaults to ``app``) and return ``(app, path)``.

    The file is imported as a module named after it (not ``__main__``), with its
    folder on ``sys.path``.

    Raises:
        TargetNotFound: the file does not exist.
        UsageError: no such attribute, or it is not a FastAPI/Starlette app.
    """
    from .fastapi_inspect import is_app

    path, _, name = spec.rpartition(":") if ":" in spec and not re.match(r"^[A-Za-z]:[\\/]", spec[-3:]) else (spec, "", "")
    if not path:
        path, name = spec, ""
    name = name or "app"
    from .importfile import import_file

    module = import_file(path)
    app = getattr(module, name, None)
    if app is None:
        raise UsageError(f"{path} has no attribute {name!r} (use FILE.py:NAME)")
    if not is_app(app):
        raise UsageError(f"{path}:{name} is not a FastAPI or Starlette app ({type(app).__name__})")
    return app, path


# ---------------------------------------------------------------------------
# planning: which requests to send
# ---------------------------------------------------------------------------
@dataclass
class RouteTarget:
    """One request the probe sends repeatedly.

    Attributes:
        method: HTTP method. path: the route's path template. url: the path with
            sample values (plus the query string).
        endpoint: qualname of the endpoint. is_async: it runs on the event loop.
        json_body: the JSON body sent (None: no body). headers: extra headers.
        spans: ``(co_filename, first_line, last_line)`` of the endpoint and its
            dependencies: the frames that make a blocking stack this route's.
        file, line: where the endpoint is defined (the ``def`` line).
    """

    method: str
    path: str
    url: str
    endpoint: str = ""
    is_async: bool = True
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    file: str = ""
    line: int = 0

    @property
    def key(self) -> str:
        """``"GET /orders/{id}"``."""
        return f"{self.method} {self.path}"


class _NoSample(Exception):
    """A parameter or body that cannot be filled in; the message is the reason."""


def _unwrap(fn: Any) -> Any:
    for _ in range(10):
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif getattr(fn, "__wrapped__", None) is not None:
            fn = fn.__wrapped__
        else:
            break
    return fn


def _span(fn: Any) -> tuple[str, int, int] | None:
    fn = _unwrap(fn)
    if inspect.isclass(fn):
        return None
    code = getattr(fn, "__code__", None)
    if code is None:
        call = type(fn).__call__ if callable(fn) and not inspect.isroutine(fn) else None
        code = getattr(_unwrap(call), "__code__", None) if call is not None else None
    if code is None:
        return None
    try:
        lines, start = inspect.getsourcelines(code)
    except (OSError, TypeError):
        return code.co_filename, code.co_firstlineno, code.co_firstlineno
    return code.co_filename, max(1, start), max(1, start) + len(lines) - 1


def _def_line(fn: Any) -> tuple[str, int]:
    import linecache

    span = _span(fn)
    if span is None:
        return "", 0
    for ln in range(span[1], span[2] + 1):
        if linecache.getline(span[0], ln).lstrip().startswith(("def ", "async def ")):
            return span[0], ln
    return span[0], span[1]


def _class_spans(cls: Any) -> list[tuple[str, int, int]]:
    out = []
    for name in ("get", "post", "put", "patch", "delete", "__call__", "dispatch"):
        meth = cls.__dict__.get(name)
        if meth is not None:
            s = _span(meth)
            if s:
                out.append(s)
    return out


def _scalar_sample(annotation: Any, name: str, kind: str) -> Any:
    """A sample value for a path/query/header parameter of type ``annotation``."""
    ann = annotation
    origin = getattr(ann, "__origin__", None)
    args = getattr(ann, "__args__", ()) or ()
    if origin is not None and type(None) in args:  # Optional[X]
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            ann = rest[0]
    if ann is bool:
        return "true"
    if ann is int:
        return 1
    if ann is float:
        return 1.0
    if ann in (str, inspect.Parameter.empty, Any) or ann is None:
        return "x"
    if ann is uuid.UUID:
        return "00000000-0000-0000-0000-000000000001"
    if inspect.isclass(ann) and issubclass(ann, enum.Enum):
        first = next(iter(ann))
        return first.value
    if origin is not None and getattr(origin, "__name__", "") == "Literal" or str(origin) == "typing.Literal":
        return args[0] if args else "x"
    raise _NoSample(f"required {kind} parameter {name!r} of type {getattr(ann, '__name__', ann)}: pass --param {name}=VALUE")


def _schema_sample(schema: Mapping[str, Any], defs: Mapping[str, Any], overrides: Mapping[str, str], depth: int = 0, top: bool = False) -> Any:
    """A minimal JSON value valid for ``schema`` (see the module docstring)."""
    if depth > 6:
        raise _NoSample("body schema nested too deep for a sample")
    if "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        if ref not in defs:
            raise _NoSample(f"body schema refers to {ref!r}, not found")
        return _schema_sample(defs[ref], defs, overrides, depth + 1, top)
    for key in ("examples",):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    if "example" in schema:
        return schema["example"]
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            if not options:
                return None
            return _schema_sample(options[0], defs, overrides, depth + 1, top)
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _schema_sample(schema["allOf"][0], defs, overrides, depth + 1, top)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {}) or {}
        out: dict[str, Any] = {}
        for name in schema.get("required", []) or []:
            if top and name in overrides:
                out[name] = _json_value(overrides[name])
                continue
            sub = props.get(name)
            if sub is None:
                raise _NoSample(f"required body property {name!r} has no schema")
            out[name] = _schema_sample(sub, defs, overrides, depth + 1)
        if top:
            for name, value in overrides.items():
                if name in props and name not in out:
                    out[name] = _json_value(value)
        return out
    if kind == "array":
        n = int(schema.get("minItems", 0) or 0)
        if n == 0:
            return []
        item = _schema_sample(schema.get("items", {}) or {"type": "string"}, defs, overrides, depth + 1)
        return [item] * n
    if kind == "string":
        if "pattern" in schema:
            raise _NoSample("body string with a pattern: give a sample with --param")
        fmt = schema.get("format", "")
        samples = {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "time": "00:00:00",
            "uuid": "00000000-0000-0000-0000-000000000001",
            "email": "user@example.com",
            "uri": "http://example.com/",
        }
        if fmt in samples:
            return samples[fmt]
        return "x" * max(1, int(schema.get("minLength", 1) or 1))
    if kind in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        number: Any = 1 if lo is None else (math.floor(lo) + 1 if "exclusiveMinimum" in schema and "minimum" not in schema else math.ceil(lo))
        hi = schema.get("maximum")
        if hi is not None and number > hi:
            number = math.floor(hi)
        return number if kind == "integer" else float(number)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if not schema:  # Any
        return "x"
    raise _NoSample(f"body schema of type {kind!r} cannot be filled in")


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _flat(dependant: Any) -> Iterable[Any]:
    seen: set[int] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        yield d
        stack.extend(getattr(d, "dependencies", []) or [])


def _body_sample(route: Any, params: Mapping[str, str]) -> Any:
    dependant = route.dependant
    bodies = [p for d in _flat(dependant) for p in (getattr(d, "body_params", []) or [])]
    if not bodies:
        return None
    for b in bodies:
        info_name = type(b.field_info).__name__
        if info_name in ("Form", "File"):
            raise _NoSample(f"{info_name.lower()} body parameter {b.name!r}: form and file bodies are not sent")
    from pydantic import TypeAdapter

    def sample_of(f: Any, top: bool) -> Any:
        if f.alias in params and not top:
            return _json_value(params[f.alias])
        schema = TypeAdapter(f.field_info.annotation).json_schema(ref_template="#/$defs/{model}")
        return _schema_sample(schema, schema.get("$defs", {}), params, top=top)

    embed = len(bodies) > 1 or bool(getattr(bodies[0].field_info, "embed", False))
    if not embed:
        f = bodies[0]
        if not f.field_info.is_required() and f.name not in params:
            return None
        if f.name in params and getattr(f.field_info.annotation, "model_json_schema", None) is None:
            return _json_value(params[f.name])
        return sample_of(f, top=True)
    out = {}
    for f in bodies:
        if f.field_info.is_required() or f.alias in params:
            out[f.alias] = sample_of(f, top=False)
    return out


def _fill(path: str, values: Mapping[str, Any]) -> str:
    return _PARAM_RE.sub(lambda m: quote(str(values[m.group(1)]), safe=""), path)


def _fastapi_target(route: Any, path: str, method: str, params: Mapping[str, str]) -> RouteTarget:
    from fastapi.params import Cookie, Header

    dependant = route.dependant
    path_values: dict[str, Any] = {}
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for d in _flat(dependant):
        for p in getattr(d, "path_params", []) or []:
            if p.alias in params or p.name in params:
                path_values[p.name] = params.get(p.alias, params.get(p.name))
            else:
                path_values[p.name] = _scalar_sample(p.field_info.annotation, p.name, "path")
        for group, kind in ((getattr(d, "query_params", []) or [], "query"), (getattr(d, "header_params", []) or [], "header"), (getattr(d, "cookie_params", []) or [], "cookie")):
            for p in group:
                given = params.get(p.alias, params.get(p.name))
                if given is None:
                    if not p.field_info.is_required():
                        continue
                    given = _scalar_sample(p.field_info.annotation, p.name, kind)
                if kind == "query":
                    query[p.alias] = given
                elif kind == "header" or isinstance(p.field_info, Header):
                    headers[p.alias.replace("_", "-")] = str(given)
                elif isinstance(p.field_info, Cookie):
                    headers["cookie"] = (headers.get("cookie", "") + f"; {p.alias}={given}").lstrip("; ")
    for name in _PARAM_RE.findall(path):
        path_values.setdefault(name[0], params.get(name[0], "x"))
    body = _body_sample(route, params)
    url = _fill(path, path_values)
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()})
    spans = [s for d in _flat(dependant) if getattr(d, "call", None) is not None for s in [_span(d.call)] if s]
    file, line = _def_line(route.endpoint)
    return RouteTarget(
        method=method,
        path=path,
        url=url,
        endpoint=getattr(_unwrap(route.endpoint), "__qualname__", str(route.endpoint)),
        is_async=_is_async(route.endpoint),
        json_body=body,
        headers=headers,
        spans=spans,
        file=file,
        line=line,
    )


def _is_async(fn: Any) -> bool:
    fn = _unwrap(fn)
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    return callable(fn) and not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _starlette_target(route: Any, path: str, method: str, params: Mapping[str, str]) -> RouteTarget:
    values: dict[str, Any] = {}
    convertors = getattr(route, "param_convertors", {}) or {}
    for name, typ in _PARAM_RE.findall(path):
        if name in params:
            values[name] = params[name]
            continue
        conv = type(convertors.get(name)).__name__ if name in convertors else ""
        if conv == "IntegerConvertor" or typ == "int":
            values[name] = 1
        elif conv == "FloatConvertor" or typ == "float":
            values[name] = 1.0
        elif conv == "UUIDConvertor" or typ == "uuid":
            values[name] = "00000000-0000-0000-0000-000000000001"
        else:
            values[name] = "x"
    endpoint = route.endpoint
    spans = _class_spans(endpoint) if inspect.isclass(endpoint) else [s for s in [_span(endpoint)] if s]
    file, line = ("", 0) if inspect.isclass(endpoint) else _def_line(endpoint)
    if inspect.isclass(endpoint):
        meth = getattr(endpoint, method.lower(), None)
        is_async = meth is not None and inspect.iscoroutinefunction(meth)
        if meth is not None:
            file, line = _def_line(meth)
    else:
        is_async = _is_async(endpoint)
    return RouteTarget(
        method=method,
        path=path,
        url=_fill(path, values),
        endpoint=getattr(_unwrap(endpoint), "__qualname__", str(endpoint)),
        is_async=is_async,
        spans=spans,
        file=file,
        line=line,
    )


def plan_routes(
    app: Any,
    *,
    paths: Sequence[str] | None = None,
    params: Mapping[str, str] | None = None,
    include_builtin: bool = False,
) -> tuple[list[RouteTarget], list[dict[str, str]]]:
    """The requests to send for ``app``'s routes, and the routes skipped with a reason.

    Args:
        app: a FastAPI or Starlette app (or router).
        paths: only these routes: a path template (``/items/{id}``) or a concrete
            path the route matches (``/items/3``, sent as given).
        params: sample values by parameter name (path, query, header, cookie or body property).
        include_builtin: also probe FastAPI's /docs, /redoc and /openapi.json.

    Returns:
        ``(targets, skipped)``; ``skipped`` rows are ``{"method", "path", "reason"}``.

    Raises:
        UsageError: a ``paths`` entry that matches no route.
    """
    params = dict(params or {})
    targets: list[RouteTarget] = []
    skipped: list[dict[str, str]] = []
    wanted = list(paths or [])
    matched: set[str] = set()

    def walk(routes: Iterable[Any], prefix: str) -> None:
        for route in routes:
            kind = type(route).__name__
            rpath = prefix + str(getattr(route, "path", "") or "")
            if kind in ("Mount", "Host"):
                sub = getattr(route, "routes", None)
                if sub:
                    walk(sub, rpath)
                else:
                    skipped.append({"method": "", "path": rpath, "reason": "mounted ASGI app (not a route of this app)"})
                continue
            endpoint = getattr(route, "endpoint", None)
            if not include_builtin and endpoint is not None and (getattr(endpoint, "__module__", "") or "").startswith("fastapi."):
                continue
            concrete = None
            if wanted:
                hit = [w for w in wanted if w == rpath]
                if not hit:
                    regex = getattr(route, "path_regex", None)
                    hit = [w for w in wanted if regex is not None and not prefix and regex.match(w.split("?")[0])]
                    concrete = hit[0] if hit else None
                if not hit:
                    continue
                matched.update(hit)
            if "WebSocket" in kind:
                skipped.append({"method": "WS", "path": rpath, "reason": "websocket route (the load probe sends HTTP requests)"})
                continue
            methods = sorted(m for m in (getattr(route, "methods", None) or {"GET"}) if m != "HEAD")
            if endpoint is None:
                skipped.append({"method": ",".join(methods), "path": rpath, "reason": f"{kind} without an endpoint"})
                continue
            for method in methods:
                try:
                    if hasattr(route, "dependant"):
                        t = _fastapi_target(route, rpath, method, params)
                    else:
                        t = _starlette_target(route, rpath, method, params)
                except _NoSample as exc:
                    skipped.append({"method": method, "path": rpath, "reason": str(exc)})
                    continue
                except Exception as exc:  # noqa: BLE001 - an exotic route: say so instead of failing the run
                    skipped.append({"method": method, "path": rpath, "reason": f"cannot build a request: {type(exc).__name__}: {exc}"})
                    continue
                if concrete is not None:
                    t.url = concrete
                targets.append(t)

    walk(getattr(app, "routes", []) or [], "")
    missing = [w for w in wanted if w not in matched]
    if missing:
        raise UsageError(f"no route matches {', '.join(missing)}")
    return targets, skipped


# ---------------------------------------------------------------------------
# ASGI lifespan
# ---------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def lifespan(app: Any, *, timeout: float = 30.0) -> Any:
    """Run the app's ASGI lifespan around the block (``lifespan.startup`` before,
    ``lifespan.shutdown`` after), per https://asgi.readthedocs.io/en/latest/specs/lifespan.html.
    An app that does not support the lifespan protocol (raises on the scope
    before starting) is run without it.

    Raises:
        RuntimeError: ``lifespan.startup.failed`` (with the app's message), or the
            exception the app raised during start-up.
        TimeoutError: start-up took longer than ``timeout`` seconds.
    """
    to_app: asyncio.Queue = asyncio.Queue()
    from_app: asyncio.Queue = asyncio.Queue()
    state: dict[str, Any] = {}
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}

    async def receive() -> dict[str, Any]:
        return await to_app.get()

    async def send(message: dict[str, Any]) -> None:
        await from_app.put(message)

    async def run() -> None:
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            await from_app.put({"type": "_error", "exc": exc})
            raise
        finally:
            await from_app.put({"type": "_returned"})

    task = asyncio.ensure_future(run())
    await to_app.put({"type": "lifespan.startup"})
    msg = await asyncio.wait_for(from_app.get(), timeout)
    supported = True
    if msg["type"] == "lifespan.startup.failed":
        raise RuntimeError(f"lifespan start-up failed: {msg.get('message', '')}")
    if msg["type"] == "_error":
        exc = msg["exc"]
        with contextlib.suppress(BaseException):
            await task
        if isinstance(exc, Exception) and not isinstance(exc, (KeyError, TypeError, ValueError, AssertionError, NotImplementedError)):
            raise RuntimeError(f"lifespan start-up raised {type(exc).__name__}: {exc}") from exc
        supported = False  # lifespan not supported by this app
    elif msg["type"] == "_returned":
        supported = False
    try:
        yield state
    finally:
        if supported and not task.done():
            await to_app.put({"type": "lifespan.shutdown"})
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except BaseException:  # noqa: BLE001 - never let the probe's own bookkeeping fail the run
                task.cancel()
        elif not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------
@dataclass
class _Stats:
    latencies: list[float] = field(default_factory=list)  # seconds
    status: Counter = field(default_factory=Counter)
    errors: int = 0
    cancelled: int = 0
    canary: list[tuple[float, float, float]] = field(default_factory=list)  # (due_s, end_s, latency_s) session time
    alone: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _free_port_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def probe(
    app: Any,
    *,
    paths: Sequence[str] | None = None,
    requests: int = 100,
    concurrency: int | None = None,
    duration: float = 3.0,
    params: Mapping[str, str] | None = None,
    server: bool = False,
    threshold_ms: float = 50.0,
    probe_every: float = 0.1,
    baseline_requests: int = 3,
    target: str = "",
    label: Callable[[str], str] | None = None,
    static_source: Mapping[str, str] | None = None,
    profile: bool = False,
    include_builtin: bool = False,
) -> LoadReport:
    """Load ``app`` on the running event loop and return a :class:`LoadReport`.

    Args:
        app: a FastAPI or Starlette app.
        paths: only these routes (see :func:`plan_routes`).
        requests: load requests per route (canaries and baselines not included).
        concurrency: requests in flight per route. None: 8; for a sync endpoint
            whose baseline is past the threshold the default limiter's
            ``total_tokens + 5`` (enough to show whether the pool saturates); for an
            async endpoint whose baseline is past the threshold 2 (if it blocks the
            loop its requests cannot overlap, and the run must stay near ``duration``).
        duration: the load phase stops after this many seconds (s); requests still
            running then are cancelled and counted as ``cancelled``.
        params: sample values by parameter name.
        server: run the app under uvicorn on 127.0.0.1 (a free port) and use sockets.
        threshold_ms: a loop stall longer than this is a blocking event (ms).
        probe_every: canary period (s).
        baseline_requests: requests sent to each route alone before the load (at most;
            one when the first is already past the threshold).
        target, label, static_source: as in :class:`~async_expert_ext.loop.session.ProfileSession`.
        profile: record a pyinstrument profile.

    Returns:
        The :class:`LoadReport` (findings, routes, skipped, recommendations).

    Raises:
        UsageError: bad numbers, or ``paths`` matching no route.
        RuntimeError: the app's lifespan start-up failed.
    """
    try:
        import httpx
    except ImportError:
        raise UsageError("the load probe needs httpx: pip install 'async-expert-ext[load]'") from None
    if server:
        try:
            import uvicorn
        except ImportError:
            raise UsageError("--server needs uvicorn: pip install 'async-expert-ext[load]'") from None

    from .loop.session import ProfileSession

    if requests < 1:
        raise UsageError("--requests must be >= 1")
    if concurrency is not None and concurrency < 1:
        raise UsageError("--concurrency must be >= 1")
    if not duration > 0:
        raise UsageError("--duration must be > 0")
    targets, skipped = plan_routes(app, paths=paths, params=params, include_builtin=include_builtin)
    if label is None:
        label = _relative_label
    if static_source is None:  # the app's own source files, for the static join
        static_source = _static_sources(targets, label)
    session = ProfileSession(
        threshold_ms=threshold_ms,
        profile=profile,
        target=target or type(app).__name__,
        label=label,
        static_source=dict(static_source or {}),
    )
    stats = {t.key: _Stats() for t in targets}
    limiter_samples: list[tuple[float, int, int, int]] = []  # (t_s, borrowed, waiting, total)
    phase: dict[str, float] = {}
    server_task: asyncio.Task | None = None
    uv_server: Any = None
    exc_out: BaseException | None = None
    conc_used: dict[str, int] = {}
    # The client is made before the instruments start (an AsyncClient builds an SSL
    # context: ~100 ms of CPU that is not the app's).
    state_holder: dict[str, Any] = {}
    sock: socket.socket | None = None
    if server:
        sock = _free_port_socket()
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        transport = None
    else:
        base_url = "http://app"

        async def with_state(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if state_holder and scope.get("type") in ("http", "websocket"):
                scope = {**scope, "state": dict(state_holder)}  # what servers do with lifespan state
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)  # type: ignore[arg-type]
    total_conc = sum(max(8, concurrency or 45) for _ in targets) + 2 * len(targets) + 10
    limits = httpx.Limits(max_connections=total_conc, max_keepalive_connections=total_conc)
    client = httpx.AsyncClient(transport=transport, base_url=base_url, timeout=max(30.0, duration * 4), limits=limits)
    session._aex_app = app  # type: ignore[attr-defined]  # for the recommendations (middleware stack)
    session.start()
    try:
        if server:
            import uvicorn

            config = uvicorn.Config(app, lifespan="auto", log_level="warning", access_log=False)
            uv_server = uvicorn.Server(config)
            server_task = asyncio.ensure_future(uv_server.serve(sockets=[sock]))
            t_wait = time.perf_counter()
            while not uv_server.started:
                if server_task.done():
                    server_task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                if time.perf_counter() - t_wait > 30:
                    raise TimeoutError("uvicorn did not start within 30 s")
                await asyncio.sleep(0.01)
            life: Any = contextlib.nullcontext({})
        else:
            life = lifespan(app)
        async with life as state:
            state_holder.update(state or {})
            async with client:
                await _run_load(
                    client, targets, stats, session, phase, limiter_samples, conc_used,
                    requests=requests, concurrency=concurrency, duration=duration, probe_every=probe_every,
                    baseline_requests=baseline_requests, threshold_s=threshold_ms / 1000.0,
                )
    except BaseException as exc:  # noqa: BLE001 - keep the report; the caller decides
        exc_out = exc
    finally:
        if uv_server is not None:
            uv_server.should_exit = True
            if server_task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(server_task, 10)
    loop_report = session.stop(exc_out if isinstance(exc_out, Exception) else None)
    report = LoadReport(**{f: getattr(loop_report, f) for f in LoopReport.__dataclass_fields__})
    report.skipped = skipped
    report.load = {
        "mode": "server" if server else "asgi",
        "requests": requests,
        "concurrency": concurrency,
        "concurrency_used": conc_used,
        "duration_s": duration,
        "load_s": round(phase.get("load_end", 0.0) - phase.get("load_start", 0.0), 6),
        "probe_every_s": probe_every,
        "threshold_ms": threshold_ms,
    }
    _analyse(report, session, targets, stats, phase, limiter_samples)
    for key, sent in phase.get("cut_short", ()):
        report.notes.append(f"{key}: {sent} of {requests} request(s) sent before --duration {duration:g} s ran out")
    if exc_out is not None and not isinstance(exc_out, Exception):
        raise exc_out
    if exc_out is not None:
        if isinstance(exc_out, (UsageError, RuntimeError, TimeoutError)) and not report.routes:
            raise exc_out
        report.exception = report.exception or f"{type(exc_out).__name__}: {exc_out}"
    return report


def _static_sources(targets: list[RouteTarget], label: Callable[[str], str]) -> dict[str, str]:
    """``{label: source}`` of the files (or notebook cells) defining the routes' code."""
    import linecache

    out: dict[str, str] = {}
    for t in targets:
        for fn, _a, _b in t.spans:
            if _is_library(fn) or label(fn) in out:
                continue
            if os.path.isfile(fn):
                try:
                    with open(fn, encoding="utf-8", errors="replace") as fh:
                        out[label(fn)] = fh.read()
                except OSError:
                    continue
            else:  # a notebook cell: its text is in linecache
                text = "".join(linecache.getlines(fn))
                if text.strip():
                    out[label(fn)] = text
    return out


def _relative_label(filename: str) -> str:
    """A path relative to the working directory when it is below it, else as given."""
    if filename.startswith("<"):
        return filename
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def _is_library(filename: str) -> bool:
    from .loop.session import is_library_file

    return is_library_file(filename)


async def _send(client: Any, t: RouteTarget) -> Any:
    return await client.request(t.method, t.url, json=t.json_body, headers=t.headers or None)


async def _run_load(
    client: Any,
    targets: list[RouteTarget],
    stats: dict[str, _Stats],
    session: Any,
    phase: dict[str, float],
    limiter_samples: list[tuple[float, int, int, int]],
    conc_used: dict[str, int],
    *,
    requests: int,
    concurrency: int | None,
    duration: float,
    probe_every: float,
    baseline_requests: int,
    threshold_s: float,
) -> None:
    now = session.now_s
    # 1. baselines: each route alone
    for t in targets:
        st = stats[t.key]
        for i in range(max(1, baseline_requests)):
            t0 = time.perf_counter()
            try:
                resp = await _send(client, t)
                st.status[resp.status_code] += 0  # key known, not counted as load
            except Exception as exc:  # noqa: BLE001 - the load phase reports errors; the baseline just notes them
                st.error_samples.append(f"baseline: {type(exc).__name__}: {exc}")
            took = time.perf_counter() - t0
            st.alone.append(took)
            if took >= threshold_s or (i == 0 and took >= 0.25 * duration):
                break
    total_tokens = 40
    limiter = None
    try:
        import anyio.to_thread

        limiter = anyio.to_thread.current_default_thread_limiter()
        total_tokens = int(limiter.total_tokens)
    except Exception:  # noqa: BLE001 - never let the probe's own bookkeeping fail the run
        limiter = None
    for t in targets:
        if concurrency is not None:
            conc_used[t.key] = concurrency
        elif not t.is_async and stats[t.key].alone and min(stats[t.key].alone) >= threshold_s:
            conc_used[t.key] = total_tokens + 5
        elif t.is_async and stats[t.key].alone and min(stats[t.key].alone) >= threshold_s:
            # a slow async route: if it blocks the loop its requests cannot overlap anyway,
            # and each one in flight at the deadline still runs to its end
            conc_used[t.key] = 2
        else:
            conc_used[t.key] = 8
    # 2. load, with canaries and a limiter sampler
    stop = asyncio.Event()
    phase["load_start"] = now()
    deadline = time.perf_counter() + duration

    async def sampler() -> None:
        while not stop.is_set():
            if limiter is not None:
                try:
                    limiter_samples.append((now(), int(limiter.borrowed_tokens), int(limiter.statistics().tasks_waiting), int(limiter.total_tokens)))
                except Exception:  # noqa: BLE001, S110 - never let the probe's own bookkeeping fail the run
                    pass
            await asyncio.sleep(0.01)

    async def canary(t: RouteTarget) -> None:
        st = stats[t.key]
        due = time.perf_counter() + probe_every / 2
        while not stop.is_set():
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if stop.is_set():
                return
            try:
                await _send(client, t)
            except asyncio.CancelledError:  # still waiting at the end: a lower bound of its latency
                end = time.perf_counter()
                st.canary.append((due - session.t0, end - session.t0, end - due))
                raise
            except Exception:  # noqa: BLE001, S110 - never let the probe's own bookkeeping fail the run
                pass
            end = time.perf_counter()
            st.canary.append((due - session.t0, end - session.t0, end - due))
            await asyncio.sleep(0)
            due = max(due + probe_every, end)

    async def worker(t: RouteTarget, counter: list[int]) -> None:
        st = stats[t.key]
        while counter[0] > 0 and time.perf_counter() < deadline:
            counter[0] -= 1
            t0 = time.perf_counter()
            try:
                resp = await _send(client, t)
            except asyncio.CancelledError:
                st.cancelled += 1
                raise
            except Exception as exc:  # noqa: BLE001 - never let the probe's own bookkeeping fail the run
                st.errors += 1
                st.status["exception"] += 1
                if len(st.error_samples) < 5:
                    st.error_samples.append(f"{type(exc).__name__}: {exc}")
                continue
            st.latencies.append(time.perf_counter() - t0)
            st.status[resp.status_code] += 1
            if resp.status_code >= 400:
                st.errors += 1
            # A request over ASGITransport may complete without suspending once: give
            # the other workers, the canaries and the sampler their turn.
            await asyncio.sleep(0)

    helpers = [asyncio.ensure_future(sampler())] + [asyncio.ensure_future(canary(t)) for t in targets]
    # workers are started round-robin across routes, so that every route has a
    # request in flight early even when the first route's requests block the loop
    counters = {t.key: [requests] for t in targets}
    queues = [[t] * min(conc_used[t.key], requests) for t in targets]
    workers = []
    for i in range(max((len(q) for q in queues), default=0)):
        for q in queues:
            if i < len(q):
                workers.append(asyncio.ensure_future(worker(q[i], counters[q[i].key])))
    try:
        _done, pending = await asyncio.wait(workers, timeout=duration + max(0.5, duration / 2))
        for w in pending:
            w.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
    finally:
        stop.set()
        phase["load_end"] = now()
        # routes whose --requests were not all sent before --duration ran out
        phase["cut_short"] = [(t.key, requests - counters[t.key][0]) for t in targets if counters[t.key][0] > 0]
        for h in helpers:
            h.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for w in workers:
            if not w.done():
                w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


# ---------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------
def _route_of(targets: list[RouteTarget], frames: Iterable[tuple[str, int]]) -> tuple[RouteTarget | None, int]:
    """The route whose span holds the innermost of ``frames`` (innermost first), and that line."""
    for fn, ln in frames:
        for t in targets:
            for f, a, b in t.spans:
                if f == fn and a <= ln <= b:
                    return t, ln
    return None, 0


def _stack_frames(session: Any, stack: Sequence[str]) -> list[tuple[str, int]]:
    out = []
    for entry in reversed(list(stack)):  # innermost first
        m = _STACK_RE.match(str(entry))
        if m:
            out.append((session.files.get(m.group("p"), m.group("p")), int(m.group("l"))))
    return out


def _analyse(
    report: LoadReport,
    session: Any,
    targets: list[RouteTarget],
    stats: dict[str, _Stats],
    phase: dict[str, float],
    limiter_samples: list[tuple[float, int, int, int]],
) -> None:
    threshold = session.threshold_ms
    load_start, load_end = phase.get("load_start", 0.0), phase.get("load_end", 0.0)
    load_s = max(1e-9, load_end - load_start)
    # blocking events -> route
    events: list[dict[str, Any]] = []
    for brow in report.blocking_records:
        frames = _stack_frames(session, brow.get("stack", ()))
        t, route_line = _route_of(targets, frames)
        culprit_file = session.files.get(brow.get("path", ""), brow.get("path", ""))
        ev = {
            "start": float(brow.get("start_s") or 0.0),
            "end": float(brow.get("start_s") or 0.0) + float(brow.get("duration_ms") or 0.0) / 1000.0,
            "ms": float(brow.get("duration_ms") or 0.0),
            "route": t.key if t else "",
            "route_line": route_line,
            "where": brow.get("location", ""),
            "file": culprit_file,
            "line": int(brow.get("line") or 0),
            "kind": brow.get("kind", ""),
        }
        brow["route"] = ev["route"]
        events.append(ev)
    # anyio worker items -> route (sync endpoints and dependencies)
    items_by_route: dict[str, list[dict[str, Any]]] = {t.key: [] for t in targets}
    hog: tuple[str, int, str] | None = None
    tp_finding = next((f for f in report.finding_list if f.kind == "sync-endpoint-threadpool"), None)
    for inst in session.instruments:
        for pool in getattr(inst, "pool_list", []) or []:
            if pool.kind != "anyio":
                continue
            if pool.hog_lines and hog is None:
                hog = pool.hog_lines.most_common(1)[0][0]
            for it in pool.items:
                t, _ln = _route_of(targets, [(it["file"], it["line"])])
                if t is not None and not t.is_async and it["started"] is not None:
                    items_by_route[t.key].append(it)
    hog_route = None
    hog_where = ""
    if hog is not None:
        ht, _ = _route_of(targets, [(hog[0], hog[1])])
        hog_route = ht.key if ht else None
        hog_where = session.where(hog[0], hog[1])
    elif tp_finding is not None:
        hog_where = tp_finding.location
        ht, _ = _route_of(targets, [(session.files.get(tp_finding.path, tp_finding.path), tp_finding.line)])
        hog_route = ht.key if ht else None
    # threadpool summary over the load phase
    tp: dict[str, Any] = {}
    if limiter_samples:
        total = max(s[3] for s in limiter_samples)
        full = [s for s in limiter_samples if s[1] >= s[3]]
        waits = [(it["started"] - it["submitted"]) * 1000.0 for its in items_by_route.values() for it in its]
        tp = {
            "total_tokens": total,
            "peak_borrowed": max(s[1] for s in limiter_samples),
            "peak_waiting": max(s[2] for s in limiter_samples),
            "queue_ms_max": round(max(waits, default=0.0), 3),
            "saturated_s": round(len(full) * 0.01, 3),
            "busy_at": hog_where,
            "busy_route": hog_route or "",
        }
    report.threadpool = tp
    new_findings: list[Finding] = []
    rows: list[dict[str, Any]] = []
    for t in targets:
        st = stats[t.key]
        lat = [x * 1000.0 for x in st.latencies]
        alone_ms = min(st.alone) * 1000.0 if st.alone else float("nan")
        canary = [(d, e, lt * 1000.0) for d, e, lt in st.canary if load_start <= d <= load_end]
        own = [e for e in events if e["route"] == t.key]
        waits = [(it["started"] - it["submitted"]) * 1000.0 for it in items_by_route.get(t.key, [])]
        row: dict[str, Any] = {
            "method": t.method,
            "path": t.path,
            "url": t.url,
            "endpoint": t.endpoint,
            "is_async": t.is_async,
            "requests": len(lat),
            "errors": st.errors,
            "cancelled": st.cancelled,
            "status": ",".join(f"{k}:{v}" for k, v in sorted(st.status.items(), key=lambda kv: str(kv[0])) if v),
            "p50_ms": _r(_pct(lat, 0.50)),
            "p95_ms": _r(_pct(lat, 0.95)),
            "p99_ms": _r(_pct(lat, 0.99)),
            "max_ms": _r(max(lat) if lat else float("nan")),
            "rps": round(len(lat) / load_s, 3),
            "alone_ms": _r(alone_ms),
            "canary_p95_ms": _r(_pct([c[2] for c in canary], 0.95)),
            "canary_max_ms": _r(max((c[2] for c in canary), default=float("nan"))),
            "queue_ms_max": _r(max(waits, default=0.0)),
            "blocked_ms": round(sum(e["ms"] for e in own), 3),
            "blocking_events": len(own),
            "slow_by": "",
        }
        if st.error_samples:
            row["error_samples"] = list(st.error_samples)
        # victim analysis: canaries delayed while another route held the loop or the pool
        base = 0.0 if math.isnan(alone_ms) else alone_ms
        late_bar = max(threshold, base / 4.0)
        delayed = [c for c in canary if c[2] - base >= late_bar]
        culprits: Counter[tuple[str, str, str, int]] = Counter()  # (route, where, file, line) -> overlap ms
        for d, e, _lt in delayed:
            for ev in events:
                if ev["route"] and ev["route"] != t.key:
                    overlap = min(e, ev["end"]) - max(d, ev["start"])
                    if overlap > 0:
                        culprits[(ev["route"], ev["where"], ev["file"], ev["line"])] += overlap * 1000.0
            if not t.is_async and hog_route and hog_route != t.key:
                for it in items_by_route.get(t.key, []):
                    s0, s1 = it["submitted"] - session.t0, it["started"] - session.t0
                    if d - 0.001 <= s0 <= e and s1 - s0 >= threshold / 1000.0:
                        culprits[(hog_route, hog_where, hog[0] if hog else "", hog[1] if hog else 0)] += (s1 - s0) * 1000.0
        p95_delay = _pct([c[2] - base for c in canary], 0.95) if canary else 0.0
        if culprits and delayed and p95_delay >= late_bar:
            (c_route, c_where, _c_file, c_line), overlap_ms = culprits.most_common(1)[0]
            if overlap_ms >= threshold:
                row["slow_by"] = f"{c_route} at {c_where}"
                worst = max(c[2] for c in canary)
                via = "a worker token of anyio's thread pool" if (not t.is_async and c_route == hog_route and not any(ev["route"] == c_route for ev in events)) else "the event loop"
                new_findings.append(
                    Finding(
                        code="AEX942",
                        kind="slow-endpoint",
                        severity=Severity.WARNING,
                        message=(
                            f"{t.key} was slow under load: its canary answered up to {worst:.0f} ms after it was due "
                            f"(p95 {p95_delay:.0f} ms over its {_fmt_ms(base)} ms alone) while {c_route} held {via} at {c_where}"
                        ),
                        path=session.label(t.file) if t.file else "",
                        line=t.line,
                        symbol=t.endpoint,
                        section=Section.FASTAPI,
                        explanation=(
                            "One process serves every route: an `async def` endpoint that blocks stops the event loop for all "
                            "requests, and sync endpoints that hold every anyio worker token make every other sync endpoint "
                            "queue. The victim's own code is not the problem; the culprit line is."
                        ),
                        fix=(
                            f"Fix the culprit at {c_where} ({c_route}): make its blocking work async or move it off the loop "
                            "(`await asyncio.to_thread(...)`, or a plain `def` endpoint); declare trivial endpoints such as "
                            "health checks `async def` so they need no worker token."
                        ),
                        fix_example=(
                            "# before\n@app.get('/export')\nasync def export():\n    time.sleep(0.5)\n"
                            "# after\n@app.get('/export')\nasync def export():\n    await asyncio.to_thread(time.sleep, 0.5)"
                        ),
                        references=(_FASTAPI_ASYNC_DOC, _DEBUG_DOC, _ANYIO_DOC),
                        confidence=Confidence.HIGH,
                        source="runtime",
                        snippet=session.snippet(t.file, t.line) if t.file else "",
                        extra={
                            "route": t.key,
                            "victim": t.key,
                            "culprit_route": c_route,
                            "culprit": c_where,
                            "culprit_line": c_line,
                            "via": via,
                            "overlap_ms": round(overlap_ms, 3),
                            "canary_max_ms": _r(worst),
                            "canary_p95_delay_ms": _r(p95_delay),
                            "alone_ms": _r(base),
                            "delayed_canaries": len(delayed),
                            "canaries": len(canary),
                        },
                    )
                )
        rows.append(row)
    report.routes = rows
    report.tables["routes"] = rows
    if report.skipped:
        report.tables["skipped_routes"] = list(report.skipped)
    # tag and enrich existing findings
    covered = {(f.path, f.line) for f in new_findings}
    saturated = bool(tp) and tp["peak_borrowed"] >= tp["total_tokens"]
    saturated = saturated or any(
        r.get("kind") == "anyio" and r.get("workers") and r.get("peak_busy", 0) >= r["workers"] for r in report.tables.get("executor", [])
    )
    out: list[Finding] = []
    for f in report.finding_list:
        if f.kind == "slow-endpoint" and (f.path, f.line) in covered:
            continue  # the executor monitor's version of a victim named above by route
        if f.kind == "sync-endpoint-threadpool" and f.source == "runtime" and not saturated:
            # the sync endpoints waited to start, but anyio's limiter always had free
            # tokens: the wait was the blocked event loop (reported above), not the pool
            report.notes.append(f"not reported: {f.code} at {f.location}: the limiter never ran out of tokens; the wait came from the blocked event loop")
            continue
        filename = session.files.get(f.path, f.path)
        rt, _ = _route_of(targets, [(filename, f.line)])
        if f.source != "runtime" and not f.extra.get("confirmed") and rt is None and f.kind not in _APP_WIDE_KINDS:
            continue  # a static finding of the file outside the routes probed (another app, a script)
        extra = dict(f.extra)
        if rt is not None:
            extra.setdefault("route", rt.key)
        if f.kind == "sync-endpoint-threadpool" and tp and (f.source == "runtime" or f.extra.get("confirmed")):
            extra.update({f"limiter_{k}": v for k, v in tp.items() if k in ("total_tokens", "peak_borrowed", "peak_waiting", "queue_ms_max", "saturated_s")})
            extra["route_queue_ms_max"] = {r["method"] + " " + r["path"]: r["queue_ms_max"] for r in rows if not r["is_async"]}
            f = f.replace(
                message=f.message + f" (limiter peak {tp['peak_borrowed']}/{tp['total_tokens']} tokens borrowed, {tp['peak_waiting']} waiting)",
                extra=extra,
            )
        else:
            f = f.replace(extra=extra)
        out.append(f)
    report.finding_list = sorted(out + new_findings, key=Finding.sort_key)
    inspection = None
    app = getattr(session, "_aex_app", None)
    if app is not None:
        try:  # the middleware stack, without scanning again
            from .fastapi_inspect import inspect_app
            from .model import ScanReport

            inspection = inspect_app(app, report=ScanReport(target=""))
        except Exception as exc:  # noqa: BLE001 - the recommendations are a bonus
            report.errors.append(f"app inspection failed: {type(exc).__name__}: {exc}")
    report.recommendations = recommendations(report, inspection)


def _r(x: float) -> float:
    return float("nan") if math.isnan(x) else round(x, 3)


# ---------------------------------------------------------------------------
# recommendations
# ---------------------------------------------------------------------------
def recommendations(report: LoadReport, inspection: Any = None) -> list[str]:
    """The "FastAPI performance recommendations" of a load run, written from what
    this app has and what was measured, one sentence each:

    - ``async def`` endpoints whose code blocked the loop: what to change, with the cost;
    - sync endpoints that queued for a worker token while their body is trivial: make them ``async def``;
    - anyio's threadpool size from the measured saturation (borrowed tokens, waiters, queue wait);
    - what to move to the lifespan and which middleware to rewrite (from the static
      findings of the app's source and, when given, ``inspection``'s middleware list).

    Args:
        report: the :class:`LoadReport` (its routes, threadpool and findings are read).
        inspection: an optional :class:`~async_expert_ext.fastapi_inspect.AppInspection`.
    """
    recs: list[str] = []
    rows = {f"{r['method']} {r['path']}": r for r in report.routes}
    for key, r in rows.items():
        if r["is_async"] and r["blocking_events"]:
            where = sorted({b.get("location", "") for b in report.blocking_records if b.get("route") == key})
            cpu = any(b.get("kind") == "cpu-bound-in-async" and b.get("route") == key for b in report.blocking_records)
            how = (
                "run the computation in a process pool (`await loop.run_in_executor(pool, ...)`)"
                if cpu
                else "use an async library or `await asyncio.to_thread(...)` for the blocking call, or declare it `def` so FastAPI runs it in the threadpool"
            )
            recs.append(
                f"Make `{key}` ({r['endpoint']}) non-blocking: it blocked the event loop {r['blocking_events']} time(s), "
                f"{r['blocked_ms']:.0f} ms in total, at {', '.join(w for w in where if w) or '?'}; {how}."
            )
    for key, r in rows.items():
        alone = r.get("alone_ms")
        if not r["is_async"] and r["queue_ms_max"] >= report.load.get("threshold_ms", 50.0) and _num(alone) and alone < report.load.get("threshold_ms", 50.0):
            recs.append(
                f"Declare `{key}` ({r['endpoint']}) `async def`: it answers in {_fmt_ms(alone)} ms alone but queued up to "
                f"{r['queue_ms_max']:.0f} ms for a worker token of anyio's thread pool under load."
            )
    tp = report.threadpool
    if tp and tp.get("peak_borrowed", 0) >= tp.get("total_tokens", 40) and (tp.get("peak_waiting", 0) or tp.get("queue_ms_max", 0) >= report.load.get("threshold_ms", 50.0)):
        heavy = [k for k, r in rows.items() if not r["is_async"] and _num(r.get("alone_ms")) and r["alone_ms"] >= report.load.get("threshold_ms", 50.0)]
        need = int(tp["total_tokens"]) + int(tp.get("peak_waiting", 0))
        need = int(math.ceil(need / 8.0) * 8)
        recs.append(
            f"anyio's thread pool was full: peak {tp['peak_borrowed']}/{tp['total_tokens']} tokens borrowed with "
            f"{tp.get('peak_waiting', 0)} waiters, sync endpoints queued up to {tp.get('queue_ms_max', 0) / 1000:.2f} s"
            f"{' (workers busy at ' + tp['busy_at'] + ')' if tp.get('busy_at') else ''}: raise the limiter to about {need} "
            f"(`anyio.to_thread.current_default_thread_limiter().total_tokens = {need}` in the lifespan) "
            f"or make {', '.join('`' + h + '`' for h in heavy) or 'the slow sync endpoints'} async, or give their blocking work its own executor."
        )
    elif tp and tp.get("peak_borrowed", 0):
        late = tp.get("queue_ms_max", 0) >= report.load.get("threshold_ms", 50.0)
        recs.append(
            f"anyio's thread pool had room: peak {tp['peak_borrowed']}/{tp['total_tokens']} tokens borrowed"
            + (
                f"; sync endpoints still waited up to {tp['queue_ms_max']:.0f} ms to start because the event loop was blocked "
                "(fix the blocking lines above, not the pool size)"
                if late
                else ", no wait past the threshold; the default size is enough for this load"
            )
            + "."
        )
    seen: set[str] = set()
    for f in report.finding_list:
        if f.source == "runtime" or f.kind not in ("fastapi-pattern", "unclosed-session", "basehttpmiddleware"):
            continue
        text = f"{f.location}: {f.fix or f.message}"
        if text in seen:
            continue
        seen.add(text)
        prefix = "Rewrite as pure ASGI middleware" if f.kind == "basehttpmiddleware" else "Lifespan and patterns"
        recs.append(f"{prefix} ({f.code}): {text}")
    if inspection is not None and not any(f.kind == "basehttpmiddleware" for f in report.finding_list):
        for m in getattr(inspection, "middleware", []) or []:
            if getattr(m, "is_base_http", False):
                name = getattr(m, "dispatch", "") or getattr(m, "name", "")
                recs.append(
                    f"Rewrite middleware `{name}` as pure ASGI middleware: BaseHTTPMiddleware copies ContextVars, "
                    "hides client disconnects and buffers streaming responses (https://www.starlette.io/middleware/#limitations)."
                )
    slow = [f for f in report.finding_list if f.kind == "slow-endpoint" and f.extra.get("culprit")]
    for f in slow:
        own = rows.get(str(f.extra.get("victim")), {}).get("blocking_events", 0)
        recs.append(
            f"`{f.extra.get('victim')}` is "
            + ("also" if own else "only")
            + f" slowed by `{f.extra.get('culprit_route')}` at {f.extra.get('culprit')}: "
            + ("fixing its own blocking line is not enough; fix that line too" if own else "fix that line, not the victim")
            + ", then re-run the load probe."
        )
    return recs


# ---------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------
def _num(x: Any) -> bool:
    """A real number (not None, not NaN)."""
    return isinstance(x, (int, float)) and not math.isnan(x)


def _no_nan(value: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def _fmt_ms(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def render_text(report: LoadReport, *, max_findings: int = 20) -> str:
    """The load probe's table, the skipped routes, loop lag, threadpool saturation,
    the findings (critical first) and the recommendations, as plain text."""
    ld = report.load
    mode = "uvicorn on 127.0.0.1" if ld.get("mode") == "server" else "in-process ASGI"
    lines = [
        (
            f"async-expert load: {report.target} ({mode}; {len(report.routes)} route(s), load {ld.get('load_s', 0):.3f} s, "
            f"threshold {ld.get('threshold_ms', 50):g} ms)"
        )
    ]
    header = ["method", "path", "kind", "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "req/s", "alone_ms", "canary_max_ms", "queue_ms", "blocked_ms"]
    table = [header]
    for r in report.routes:
        table.append(
            [
                r["method"],
                r["path"],
                "async" if r["is_async"] else "sync",
                str(r["requests"]),
                str(r["errors"]) + (f"+{r['cancelled']}c" if r.get("cancelled") else ""),
                _fmt_ms(r["p50_ms"]),
                _fmt_ms(r["p95_ms"]),
                _fmt_ms(r["p99_ms"]),
                f"{r['rps']:.1f}",
                _fmt_ms(r["alone_ms"]),
                _fmt_ms(r["canary_max_ms"]),
                _fmt_ms(r["queue_ms_max"]) if not r["is_async"] else "-",
                _fmt_ms(r["blocked_ms"]) if r["blocked_ms"] else "0",
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    for r in report.routes:
        if r.get("slow_by"):
            lines.append(f"  {r['method']} {r['path']} slowed by {r['slow_by']}")
    for s in report.skipped:
        method = s.get("method") or ""
        lines.append(f"skipped: {method + ' ' if method else ''}{s['path']}: {s['reason']}")
    lags = sorted(float(r.get("lag_ms") or 0.0) for r in report.lag_records)
    if lags:
        lines.append(f"loop lag: p50 {_pct(lags, 0.5):.1f} ms, p99 {_pct(lags, 0.99):.1f} ms, max {lags[-1]:.1f} ms over {len(lags)} heartbeats")
    tp = report.threadpool
    if tp:
        lines.append(
            f"threadpool (anyio default limiter): peak {tp['peak_borrowed']}/{tp['total_tokens']} tokens borrowed, "
            f"peak {tp['peak_waiting']} waiting, sync endpoints queued up to {tp['queue_ms_max']:.0f} ms"
            + (f", workers busy at {tp['busy_at']}" if tp.get("busy_at") else "")
        )
    c = report.counts()
    lines.append(f"findings: {c['critical']} critical, {c['warning']} warning, {c['info']} info")
    for f in report.finding_list[:max_findings]:
        tag = "confirmed" if f.extra.get("confirmed") else f.source
        route = f" [{f.extra['route']}]" if f.extra.get("route") else ""
        lines.append(f"{f.severity.value.upper():8} {f.location} {f.code} {f.kind} ({tag}){route}: {f.message}")
    if len(report.finding_list) > max_findings:
        lines.append(f"... and {len(report.finding_list) - max_findings} more")
    if report.recommendations:
        lines.append("FastAPI performance recommendations:")
        lines.extend(f"  - {r}" for r in report.recommendations)
    if report.exception:
        lines.append(f"the run raised {report.exception}")
    lines.extend(f"note: {n}" for n in report.notes)
    for e in report.errors:
        lines.append(f"instrument error: {e}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# synchronous entry point
# ---------------------------------------------------------------------------
def run_probe(app: Any, **options: Any) -> LoadReport:
    """:func:`probe` from synchronous code: on a fresh event loop in this thread,
    or, when a loop is already running here (a notebook cell), on a fresh loop in a
    worker thread (the app's lifespan creates its resources on that loop).

    Raises:
        UsageError, RuntimeError: see :func:`probe`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(probe(app, **options))
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["report"] = asyncio.run(probe(app, **options))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["exc"] = exc

    th = threading.Thread(target=target, name="async-expert-load", daemon=True)
    th.start()
    th.join()
    if "exc" in box:
        raise box["exc"]
    return box["report"]
