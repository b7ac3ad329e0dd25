"""Live inspection of FastAPI/Starlette apps: routes, dependency trees, middleware,
static findings by route. The corpus apps are imported by path; a small project
package is written to a temp dir to check dependency trees, mounts, prefixes and
following imports into the project's own modules."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from corpus_util import CORPUS

from async_expert_ext.config import Settings
from async_expert_ext.fastapi_inspect import (
    ROUTE_COLUMNS,
    AppInspection,
    classify,
    inspect_app,
    is_app,
)
from async_expert_ext.scan.runner import scan_cells

SETTINGS = Settings(cache=False)


def load_corpus(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"aex_corpus_{name[:2]}", CORPUS / name)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def row(insp: AppInspection, path: str) -> dict:
    frame = insp.frame()
    hits = frame[frame["path"] == path]
    assert len(hits) == 1, (path, frame)
    return hits.iloc[0].to_dict()


def test_corpus_02_routes_and_findings_by_route() -> None:
    insp = inspect_app(load_corpus("02_fastapi_async_endpoint_blocking_sleep.py").app, settings=SETTINGS)
    frame = insp.frame()
    assert list(frame.columns) == list(ROUTE_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {c: ("string" if t == "string" else t) for c, t in ROUTE_COLUMNS.items()}
    assert list(frame["path"]) == ["/orders/export", "/orders/import", "/orders/export-threaded"]  # no /docs, /openapi.json
    export = row(insp, "/orders/export")
    assert export["methods"] == "GET" and export["is_async"] and export["endpoint"].endswith(".export_orders")
    assert (export["critical"], export["warning"], export["info"]) == (1, 0, 0)
    threaded = row(insp, "/orders/export-threaded")
    assert not threaded["is_async"] and (threaded["critical"], threaded["info"]) == (0, 1)
    route = next(r for r in insp.routes if r.path == "/orders/export")
    assert [(f.code, f.line) for f in route.findings] == [("AEX101", 21)]
    route = next(r for r in insp.routes if r.path == "/orders/import")
    assert [(f.code, f.line) for f in route.findings] == [("AEX101", 27)]
    assert len(insp.files) == 1 and insp.files[0].endswith("02_fastapi_async_endpoint_blocking_sleep.py")


def test_corpus_08_09_11() -> None:
    insp = inspect_app(load_corpus("08_fastapi_sync_endpoints_starve_threadpool.py").app, settings=SETTINGS)
    assert [(f.code, f.line) for f in next(r for r in insp.routes if r.path == "/healthz").findings] == [("AEX1502", 28)]
    assert [(f.code, f.line) for f in next(r for r in insp.routes if r.path == "/tiles/{z}/{x}/{y}").findings] == [("AEX1501", 23)]
    assert row(insp, "/healthz-async")["is_async"]

    insp = inspect_app(load_corpus("09_basehttpmiddleware_contextvar_lost.py").app, settings=SETTINGS)
    assert [(m.kind, m.dispatch.rpartition(".")[2]) for m in insp.middleware] == [("BaseHTTPMiddleware", "close_db_session")]
    assert sorted((f.code, f.line) for f in insp.middleware[0].findings) == [("AEX1503", 44), ("AEX1504", 41)]

    insp = inspect_app(load_corpus("11_streaming_response_blocking_generator.py").app, settings=SETTINGS)
    stream = next(r for r in insp.routes if r.path == "/generate/stream")
    assert [(f.code, f.line) for f in stream.findings] == [("AEX120", 45)]
    assert row(insp, "/api/health")["critical"] == 0


PROJECT = {
    "__init__.py": "",
    "helpers.py": """
        import time


        def slow_lookup(key):
            time.sleep(0.2)
            return key
    """,
    "deps.py": """
        from fastapi import Depends


        class FakeDB:
            def close(self):
                pass


        def get_db():
            db = FakeDB()
            try:
                yield db
            finally:
                db.close()


        async def get_token():
            return "t"


        async def get_user(token: str = Depends(get_token)):
            return {"token": token}
    """,
    "api.py": """
        from fastapi import APIRouter, Depends, FastAPI
        from starlette.applications import Starlette
        from starlette.routing import Mount, Route

        from .deps import get_db, get_user
        from .helpers import slow_lookup

        router = APIRouter()


        @router.get("/items/{item_id}")
        async def read_item(item_id: int, user=Depends(get_user), db=Depends(get_db)):
            return {"item": slow_lookup(item_id)}


        @router.post("/items")
        def create_item(db=Depends(get_db)):
            return {}


        class PureASGI:
            def __init__(self, app):
                self.app = app

            async def __call__(self, scope, receive, send):
                await self.app(scope, receive, send)


        async def legacy(request):
            return None


        app = FastAPI()
        app.include_router(router, prefix="/api")
        app.add_middleware(PureASGI)
        app.mount("/legacy", Starlette(routes=[Route("/hello", legacy)]))
    """,
}


@pytest.fixture()
def project(tmp_path: Path):
    pkg = tmp_path / "aex_shop"
    pkg.mkdir()
    for name, text in PROJECT.items():
        (pkg / name).write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("aex_shop.api")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "aex_shop" or m.startswith("aex_shop.")]:
            del sys.modules[name]


def test_project_app_dependency_tree_middleware_and_following_imports(project: ModuleType) -> None:
    insp = inspect_app(project.app, settings=SETTINGS)
    paths = [(r.path, r.methods, r.kind) for r in insp.routes]
    assert paths == [("/api/items/{item_id}", ("GET",), "http"), ("/api/items", ("POST",), "http"), ("/legacy/hello", ("GET", "HEAD"), "http")]
    read = insp.routes[0]
    assert read.is_async and read.endpoint == "aex_shop.api.read_item"
    tree = [(d.name, d.is_async, d.is_generator, [s.name for s in d.dependencies]) for d in read.dependencies]
    assert tree == [
        ("aex_shop.deps.get_user", True, False, ["aex_shop.deps.get_token"]),
        ("aex_shop.deps.get_db", False, True, []),
    ]
    assert row(insp, "/api/items/{item_id}")["dependencies"] == "get_user (async), get_token (async), get_db (sync generator)"
    assert not insp.routes[1].is_async and insp.routes[2].is_async
    assert [(m.name, m.kind) for m in insp.middleware] == [("aex_shop.api.PureASGI", "pure ASGI")]
    # helpers.py is reached by following api.py's imports: the blocking helper is linked
    assert sorted(Path(f).name for f in insp.files) == ["api.py", "deps.py", "helpers.py"]
    assert [(f.code, f.line) for f in read.findings] == [("AEX120", 14)]
    assert read.findings[0].message.startswith("endpoint `GET /items/{item_id}`: ")
    assert row(insp, "/api/items/{item_id}")["critical"] == 1
    # nothing from site-packages was scanned
    assert not [f for f in insp.files if "site-packages" in f]
    assert insp.to_dict()["routes"][0]["dependencies"][0]["dependencies"][0]["name"] == "aex_shop.deps.get_token"


def test_same_route_in_an_imported_module_is_not_attributed_to_this_app(tmp_path: Path) -> None:
    """A fixed app that imports the buggy one: the buggy module's `/report` findings are
    not the fixed app's `/report` (same route and function name, another file)."""
    (tmp_path / "aex_buggy.py").write_text(textwrap.dedent(
        """
        import time
        from fastapi import FastAPI
        app = FastAPI()

        @app.get("/report")
        async def report():
            time.sleep(0.2)
            return {}
        """
    ))
    (tmp_path / "aex_fixed.py").write_text(textwrap.dedent(
        """
        import asyncio
        from fastapi import FastAPI
        import aex_buggy  # kept for comparison

        app = FastAPI()

        @app.get("/report")
        async def report():
            await asyncio.sleep(0.2)
            return {}
        """
    ))
    sys.path.insert(0, str(tmp_path))
    try:
        fixed = importlib.import_module("aex_fixed")
        insp = inspect_app(fixed.app, settings=SETTINGS)
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("aex_fixed", "aex_buggy"):
            sys.modules.pop(name, None)
    assert sorted(Path(f).name for f in insp.files) == ["aex_buggy.py", "aex_fixed.py"]
    assert any(f.code == "AEX101" and Path(f.path).name == "aex_buggy.py" for f in insp.report.findings)
    assert [(r.path, r.findings) for r in insp.routes] == [("/report", [])]


def test_app_built_in_cells_uses_the_given_report() -> None:
    src = textwrap.dedent(
        """
        import time
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/slow")
        async def slow():
            time.sleep(1)
            return {}

        @app.get("/fast")
        async def fast():
            return {}
        """
    )
    ns: dict = {"__name__": "__main__"}
    exec(compile(src, "<cell-1>", "exec"), ns)  # noqa: S102 - an app built the way a notebook cell builds it
    report = scan_cells([("In[1]", src)], SETTINGS)
    insp = inspect_app(ns["app"], settings=SETTINGS, report=report)
    assert [(f.code, f.line) for f in next(r for r in insp.routes if r.path == "/slow").findings] == [("AEX101", 9)]
    assert next(r for r in insp.routes if r.path == "/fast").findings == []
    # without a report there is no file to scan: said so, not an error
    bare = inspect_app(ns["app"], settings=SETTINGS)
    assert bare.files == [] and bare.skipped and bare.findings == []
    assert isinstance(bare.frame(), pd.DataFrame) and len(bare.frame()) == 2


def test_builtin_routes_and_bad_input() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    assert [r.path for r in inspect_app(app, settings=SETTINGS, include_builtin=True).routes] == ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"]
    assert inspect_app(app, settings=SETTINGS).routes == []
    assert is_app(app) and not is_app(object())
    with pytest.raises(TypeError, match="not a FastAPI or Starlette app"):
        inspect_app(object())


def test_classify() -> None:
    async def a() -> None: ...

    def s() -> None: ...

    def g():
        yield 1

    async def ag():
        yield 1

    class C:
        async def __call__(self) -> None: ...

    assert [classify(x) for x in (a, s, g, ag, C(), C)] == [(True, False), (False, False), (False, True), (True, True), (True, False), (False, False)]


def test_async_scan_app_hook_uses_the_inspection() -> None:
    from async_expert_ext.magics.scan import _scan_app

    app = load_corpus("09_basehttpmiddleware_contextvar_lost.py").app
    report = _scan_app(app, name="app", settings=SETTINGS, ip=None)
    assert report.target == "app"
    assert sorted((f.code, f.line) for f in report.findings) == [("AEX1503", 44), ("AEX1504", 41)]
    insp = report.app_inspection  # type: ignore[attr-defined]
    assert isinstance(insp, AppInspection) and [r.path for r in insp.routes] == ["/items"]
