"""The in-process load probe (async_expert_ext.loadprobe) on the corpus' FastAPI cases and on
small apps: attribution of a slow route to the culprit route and line, threadpool
saturation, clean apps, parameters, request bodies and the lifespan.

Load sizes are small (a few seconds per test); assertions compare with measured
baselines (the same route alone, the canary of a clean route), never with tight
absolute timings, because this 2-core machine may be busy."""
from __future__ import annotations

import asyncio
import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from corpus_util import CORPUS

from async_expert_ext.errors import UsageError
from async_expert_ext.loadprobe import (
    LoadReport,
    lifespan,
    load_app,
    plan_routes,
    render_text,
    run_probe,
)


def _module(tmp_path: Path, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod, path


def _route(report: LoadReport, method: str, path: str) -> dict:
    return next(r for r in report.routes if r["method"] == method and r["path"] == path)


def _findings(report: LoadReport, kind: str) -> list:
    return [f for f in report.finding_list if f.kind == kind]


# ---------------------------------------------------------------------------
# corpus 02: an async endpoint that blocks makes the other one slow
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report02() -> LoadReport:
    app, _path = load_app(str(CORPUS / "02_fastapi_async_endpoint_blocking_sleep.py") + ":app")
    return run_probe(app, requests=3, duration=2.0, paths=["/orders/export", "/orders/import"], target="02")


def test_02_slow_endpoint_names_victim_route_and_culprit_line(report02: LoadReport) -> None:
    slow = {f.extra["victim"]: f for f in _findings(report02, "slow-endpoint")}
    assert "GET /orders/import" in slow, render_text(report02)
    f = slow["GET /orders/import"]
    assert f.extra["culprit_route"] == "GET /orders/export"
    assert f.extra["culprit_line"] == 21
    assert f.extra["culprit"].endswith("02_fastapi_async_endpoint_blocking_sleep.py:21")
    assert f.line == 26  # `async def import_orders():`, the victim endpoint
    assert f.path.endswith("02_fastapi_async_endpoint_blocking_sleep.py")
    assert "GET /orders/import" in f.message and ":21" in f.message
    # the canary saw what the request's own timing cannot: it was due long before it was answered
    assert f.extra["canary_max_ms"] > f.extra["alone_ms"] + 50


def test_02_blocking_confirmed_under_load_with_route(report02: LoadReport) -> None:
    blocking = {f.line: f for f in _findings(report02, "blocking-call-in-async")}
    assert {21, 27} <= set(blocking), render_text(report02)
    assert blocking[21].extra["confirmed"] is True
    assert blocking[21].extra["route"] == "GET /orders/export"
    assert blocking[27].extra["route"] == "GET /orders/import"
    assert "blocked the loop" in blocking[21].extra["runtime"]
    assert 34 not in blocking  # the sync control endpoint runs in the threadpool, not on the loop


def test_02_route_table(report02: LoadReport) -> None:
    export = _route(report02, "GET", "/orders/export")
    assert export["requests"] >= 1 and export["errors"] == 0
    assert export["is_async"] is True
    assert export["blocking_events"] >= 1 and export["blocked_ms"] >= 400
    assert export["p50_ms"] <= export["p95_ms"] <= export["p99_ms"]
    text = render_text(report02)
    assert "/orders/import" in text and "slowed by GET /orders/export" in text
    data = report02.to_dict()
    assert {"path", "method", "requests", "p50_ms", "p95_ms", "p99_ms", "errors"} <= set(data["routes"][0])
    assert any("Make `GET /orders/export`" in r and ":21" in r for r in report02.recommendations)


# ---------------------------------------------------------------------------
# corpus 08: sync endpoints fill anyio's pool, /healthz queues
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report08() -> LoadReport:
    app, _path = load_app(str(CORPUS / "08_fastapi_sync_endpoints_starve_threadpool.py") + ":app")
    return run_probe(app, requests=45, duration=1.5, target="08")


def test_08_threadpool_saturation(report08: LoadReport) -> None:
    tp = report08.threadpool
    assert tp["peak_borrowed"] == tp["total_tokens"] == 40, render_text(report08)
    pool = _findings(report08, "sync-endpoint-threadpool")
    assert {f.line for f in pool} & {23, 28}
    heavy = next(f for f in pool if f.line == 23)
    assert heavy.extra["route"] == "GET /tiles/{z}/{x}/{y}"
    assert heavy.extra["limiter_peak_borrowed"] == 40
    assert not _findings(report08, "blocking-call-in-async")  # line 23 runs in a worker thread


def test_08_healthz_slow_behind_tiles(report08: LoadReport) -> None:
    slow = {f.extra["victim"]: f for f in _findings(report08, "slow-endpoint")}
    assert "GET /healthz" in slow, render_text(report08)
    f = slow["GET /healthz"]
    assert f.line == 28
    assert f.extra["culprit_route"] == "GET /tiles/{z}/{x}/{y}" and f.extra["culprit_line"] == 23
    assert "GET /healthz-async" not in slow
    health, health_async = _route(report08, "GET", "/healthz"), _route(report08, "GET", "/healthz-async")
    assert health["queue_ms_max"] > 10 * max(1.0, health["alone_ms"])
    assert health["canary_max_ms"] > 5 * health_async["canary_max_ms"]
    assert any("`GET /healthz`" in r and "async def" in r for r in report08.recommendations)
    assert any("40/40 tokens borrowed" in r and "raise the limiter" in r for r in report08.recommendations)


# ---------------------------------------------------------------------------
# corpus 11: a streaming endpoint iterating a blocking generator freezes /api/health
# ---------------------------------------------------------------------------
def test_11_streaming_generator_blocks_health() -> None:
    app, _path = load_app(str(CORPUS / "11_streaming_response_blocking_generator.py") + ":app")
    report = run_probe(app, requests=1, concurrency=1, duration=1.0, params={"prompt": "a b"}, baseline_requests=1, target="11")
    slow = {f.extra["victim"]: f for f in _findings(report, "slow-endpoint")}
    assert "GET /api/health" in slow, render_text(report)
    f = slow["GET /api/health"]
    assert f.extra["culprit_route"] == "GET /generate/stream"
    assert f.extra["culprit_line"] in (36, 45)
    stream = _route(report, "GET", "/generate/stream")
    assert stream["blocking_events"] >= 1


# ---------------------------------------------------------------------------
# small apps
# ---------------------------------------------------------------------------
CLEAN = """
    import asyncio
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/a")
    async def a():
        await asyncio.sleep(0.005)
        return {"a": 1}

    @app.get("/b")
    async def b():
        return {"b": 2}
"""


def test_clean_app_reports_no_slow_endpoint(tmp_path: Path) -> None:
    mod, _ = _module(tmp_path, "clean_app_lp", CLEAN)
    report = run_probe(mod.app, requests=40, duration=1.0)
    assert not _findings(report, "slow-endpoint"), render_text(report)
    assert not _findings(report, "blocking-call-in-async")
    assert [r["requests"] for r in report.routes] == [40, 40]
    assert all(r["errors"] == 0 and not r["slow_by"] for r in report.routes)


PARAMS = """
    from enum import Enum
    from fastapi import FastAPI, WebSocket
    from pydantic import BaseModel, Field

    class Color(str, Enum):
        red = "red"
        blue = "blue"

    class Item(BaseModel):
        name: str
        price: float = Field(gt=0)
        tags: list[str] = []

    class Order(BaseModel):
        item: Item
        quantity: int = Field(ge=1)

    class Weird(BaseModel):
        code: str = Field(pattern=r"^[A-Z]{3}$")

    app = FastAPI()
    seen = []

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, q: str, color: Color = Color.red):
        seen.append(("get", item_id, q))
        return {"id": item_id}

    @app.get("/users/{name}/files/{file_id}")
    async def get_file(name: str, file_id: int):
        seen.append(("file", name, file_id))
        return {}

    @app.post("/items")
    async def create_item(item: Item):
        seen.append(("post", item.name, item.price))
        return item

    @app.put("/orders/{order_id}")
    async def put_order(order_id: int, order: Order):
        seen.append(("put", order_id, order.quantity))
        return order

    @app.post("/weird")
    async def weird(w: Weird):
        return w

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
"""


def test_path_query_and_body_parameters(tmp_path: Path) -> None:
    mod, _ = _module(tmp_path, "params_app_lp", PARAMS)
    targets, skipped = plan_routes(mod.app, params={"name": "ann"})
    urls = {t.key: t.url for t in targets}
    assert urls["GET /items/{item_id}"] == "/items/1?q=x"
    assert urls["GET /users/{name}/files/{file_id}"] == "/users/ann/files/1"
    body = {t.key: t.json_body for t in targets}
    assert body["POST /items"] == {"name": "ann", "price": 1.0}  # --param also fills top-level body properties
    assert body["PUT /orders/{order_id}"] == {"item": {"name": "x", "price": 1.0}, "quantity": 1}
    reasons = {s["path"]: s["reason"] for s in skipped}
    assert "websocket" in reasons["/ws"]
    assert "pattern" in reasons["/weird"]
    report = run_probe(mod.app, requests=3, duration=1.0, params={"item_id": "7", "q": "hello"})
    assert all(r["errors"] == 0 for r in report.routes), [(r["path"], r["status"], r.get("error_samples")) for r in report.routes]
    assert ("get", 7, "hello") in mod.seen and ("post", "x", 1.0) in mod.seen and ("put", 1, 1) in mod.seen
    assert [s["path"] for s in report.skipped] == ["/weird", "/ws"]
    text = render_text(report)
    assert "skipped: WS /ws: websocket" in text


def test_unknown_path_is_a_usage_error(tmp_path: Path) -> None:
    mod, _ = _module(tmp_path, "params_app_lp2", PARAMS)
    with pytest.raises(UsageError, match="/nope"):
        plan_routes(mod.app, paths=["/nope"])
    targets, _ = plan_routes(mod.app, paths=["/items/42"])
    assert [t.url for t in targets] == ["/items/42"]


LIFESPAN = """
    from contextlib import asynccontextmanager
    from fastapi import FastAPI, Request

    events = []

    @asynccontextmanager
    async def lifespan(app):
        app.state.pool = {"ready": True}
        events.append("startup")
        yield {"db": "connected"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/ready")
    async def ready(request: Request):
        return {"pool": request.app.state.pool["ready"], "db": request.state.db}
"""


def test_lifespan_startup_runs(tmp_path: Path) -> None:
    mod, _ = _module(tmp_path, "life_app_lp", LIFESPAN)
    report = run_probe(mod.app, requests=5, duration=1.0)
    row = _route(report, "GET", "/ready")
    assert row["errors"] == 0 and row["requests"] == 5, row
    assert mod.events == ["startup", "shutdown"]


def test_lifespan_failure_raises(tmp_path: Path) -> None:
    mod, _ = _module(
        tmp_path,
        "life_fail_lp",
        """
        from contextlib import asynccontextmanager
        from fastapi import FastAPI

        @asynccontextmanager
        async def lifespan(app):
            raise ConnectionError("database down")
            yield

        app = FastAPI(lifespan=lifespan)

        @app.get("/x")
        async def x():
            return {}
        """,
    )

    async def main() -> None:
        async with lifespan(mod.app):
            pass

    with pytest.raises(RuntimeError, match="database down"):
        asyncio.run(main())


SYNC_ONLY = """
    import time
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def fast(request):
        return JSONResponse({"n": request.path_params["n"]})

    async def slow(request):
        time.sleep(0.15)
        return JSONResponse({})

    app = Starlette(routes=[Route("/fast/{n:int}", fast), Route("/slow", slow)])
"""


def test_starlette_app_server_mode(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    mod, _path = _module(tmp_path, "star_app_lp", SYNC_ONLY)
    report = run_probe(mod.app, requests=4, concurrency=2, duration=2.0, server=True)
    assert report.load["mode"] == "server"
    fast = _route(report, "GET", "/fast/{n:int}")
    assert fast["url"] == "/fast/1" and fast["errors"] == 0 and fast["requests"] == 4
    blocking = {f.line: f for f in _findings(report, "blocking-call-in-async")}
    assert 11 in blocking and blocking[11].extra["route"] == "GET /slow", render_text(report)
    slow = {f.extra["victim"]: f for f in _findings(report, "slow-endpoint")}
    assert "GET /fast/{n:int}" in slow and slow["GET /fast/{n:int}"].extra["culprit_line"] == 11


def test_recommendations_reach_the_report_parts_and_the_memory_file(report08: LoadReport, tmp_path: Path) -> None:
    from async_expert_ext.memory import record_analysis
    from async_expert_ext.render.markdown import render_markdown
    from async_expert_ext.render.sections import build_sections

    sizing = next(r for r in report08.recommendations if "raise the limiter" in r)
    parts = dict(build_sections(report08))
    assert sizing in [i.text for i in parts["FastAPI performance recommendations"]]
    md = render_markdown(report08)
    assert "FastAPI performance recommendations" in md and "40/40 tokens borrowed" in md
    mem = tmp_path / "memory.md"
    record_analysis(report08, tool="async-expert load", target="08", path=mem)
    text = mem.read_text()
    assert "40/40 tokens borrowed" in text and "Declare `GET /healthz`" in text
