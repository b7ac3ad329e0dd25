"""FastAPI/Starlette rule family (AEX1500-AEX1512): positive and negative cases,
the corpus cases 02/08/09/11, multi-file programs, and scans of the installed
fastapi and starlette packages."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import fastapi
import pytest
import starlette
from corpus_util import CORPUS, corpus_expected

from async_expert_ext.config import Settings
from async_expert_ext.model import Finding, Section, Severity
from async_expert_ext.scan.runner import scan_paths, scan_source

HEADER = """\
import asyncio
import contextvars
import time

import httpx
import requests
from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.middleware.base import BaseHTTPMiddleware

app = FastAPI()
"""
HEADER_LINES = HEADER.count("\n")


def scan(body: str, settings: Settings | None = None) -> list[Finding]:
    src = HEADER + textwrap.dedent(body)
    return scan_source(src, "app.py", notebook=False, module="app", settings=settings or Settings(cache=False)).findings


def line_of(body: str, marker: str) -> int:
    """1-based line (in the scanned text) of the first body line containing ``marker``."""
    for i, text in enumerate(textwrap.dedent(body).splitlines(), 1):
        if marker in text:
            return HEADER_LINES + i
    raise AssertionError(marker)


def at(findings: list[Finding], code: str) -> list[tuple[str, int]]:
    return [(f.kind, f.line) for f in findings if f.code == code]


# ---------------------------------------------------------------------------
# AEX1500: endpoint context on blocking findings (no duplicates)


ASYNC_ENDPOINT = """
@app.get("/export")
async def export():
    time.sleep(0.5)  # SLEEP
    return {}

@app.get("/threaded")
def threaded():
    time.sleep(0.5)  # SYNC
    return {}
"""


def test_blocking_in_async_endpoint_is_annotated_once() -> None:
    fs = scan(ASYNC_ENDPOINT)
    line = line_of(ASYNC_ENDPOINT, "# SLEEP")
    hits = [f for f in fs if f.line == line]
    assert [(f.code, f.kind) for f in hits] == [("AEX101", "blocking-call-in-async")]  # one finding, core code kept
    f = hits[0]
    assert f.severity is Severity.CRITICAL and f.section is Section.CRITICAL_ISSUES
    assert f.message.startswith("endpoint `GET /export`: ")
    assert f.extra["fastapi"]["route"] == "/export" and f.extra["fastapi"]["annotated_by"] == "AEX1500"
    assert "https://fastapi.tiangolo.com/async/" in f.references
    assert "plain `def`" in f.fix
    # the sync endpoint is not blocking-call-in-async: it runs in the threadpool
    sync_line = line_of(ASYNC_ENDPOINT, "# SYNC")
    assert not [f for f in fs if f.line == sync_line and f.kind == "blocking-call-in-async"]


def test_annotation_raises_warning_rules_to_critical_and_respects_overrides() -> None:
    body = """
    @app.post("/upload")
    async def upload():
        with open("/tmp/x") as fh:  # OPEN
            return fh.read()
    """
    line = line_of(body, "# OPEN")
    f = next(f for f in scan(body) if f.code == "AEX104" and f.line == line)
    assert f.severity is Severity.CRITICAL and "POST /upload" in f.message
    kept = Settings(cache=False, rule_severity={"AEX104": Severity.WARNING})
    f2 = next(f for f in scan(body, kept) if f.code == "AEX104" and f.line == line)
    assert f2.severity is Severity.WARNING and "POST /upload" in f2.message


def test_blocking_helper_and_dependency_and_awaited_helper_context() -> None:
    body = """
    def fetch_sync(url):
        return requests.get(url, timeout=5)

    async def get_user():
        time.sleep(0.1)  # DEP
        return "u"

    async def audit(user):
        time.sleep(0.1)  # AWAITED
        return user

    @app.get("/me")
    async def me(user: str = Depends(get_user)):
        fetch_sync("http://x")  # HELPER
        return await audit(user)
    """
    fs = scan(body)
    helper = next(f for f in fs if f.line == line_of(body, "# HELPER"))
    assert helper.code == "AEX120" and helper.message.startswith("endpoint `GET /me`: ")
    dep = next(f for f in fs if f.line == line_of(body, "# DEP"))
    assert dep.code == "AEX101" and dep.message.startswith("dependency `get_user` of `GET /me`: ")
    assert dep.extra["fastapi"]["role"] == "dependency"
    awaited = next(f for f in fs if f.line == line_of(body, "# AWAITED"))
    assert awaited.code == "AEX101" and "awaited from `me`" in awaited.message
    assert awaited.extra["fastapi"]["via"] == ["awaited from `me`"]


def test_blocking_outside_fastapi_is_not_annotated() -> None:
    src = "import time\n\nasync def job():\n    time.sleep(1)\n"
    fs = scan_source(src, "job.py", notebook=False, module="job", settings=Settings(cache=False)).findings
    f = next(f for f in fs if f.code == "AEX101")
    assert f.line == 4 and "fastapi" not in f.extra and not f.message.startswith("endpoint")


def test_starlette_route_and_add_api_route_are_endpoints() -> None:
    body = """
    from starlette.routing import Route
    from starlette.applications import Starlette

    async def homepage(request):
        time.sleep(1)  # HOME
        return None

    async def other():
        time.sleep(1)  # OTHER

    routes = [Route("/", homepage, methods=["GET", "HEAD"])]
    app2 = Starlette(routes=routes)
    app.add_api_route("/other", other, methods=["POST"])
    """
    fs = scan(body)
    home = next(f for f in fs if f.line == line_of(body, "# HOME"))
    assert home.message.startswith("endpoint `GET,HEAD /`: ")
    other = next(f for f in fs if f.line == line_of(body, "# OTHER"))
    assert other.message.startswith("endpoint `POST /other`: ")


# ---------------------------------------------------------------------------
# AEX1501 / AEX1502: threadpool


THREADPOOL = """
def render(z):
    time.sleep(1.0)  # RENDER

@app.get("/tiles/{z}")
def tile(z: int):
    render(z)  # CALL
    return {"z": z}

@app.get("/healthz")
def healthz():  # HEALTH
    return {"status": "alive"}

@app.get("/items")
def items():  # ITEMS
    return {"items": []}

@app.get("/count")
def count():  # COUNT
    return {"n": sum(i for i in range(10))}
"""


def test_sync_endpoint_blocking_through_helper_and_trivial_competitors() -> None:
    fs = scan(THREADPOOL)
    assert at(fs, "AEX1501") == [("sync-endpoint-threadpool", line_of(THREADPOOL, "# CALL"))]
    f1501 = next(f for f in fs if f.code == "AEX1501")
    assert f1501.severity is Severity.INFO and "time.sleep" in f1501.message
    assert f1501.call_chain[-1].startswith("time.sleep (app.py:")
    trivial = {f.line: f for f in fs if f.code == "AEX1502"}
    assert sorted(trivial) == [line_of(THREADPOOL, "# HEALTH"), line_of(THREADPOOL, "# ITEMS")]  # not /count (a loop)
    assert trivial[line_of(THREADPOOL, "# HEALTH")].severity is Severity.WARNING  # a probe
    assert trivial[line_of(THREADPOOL, "# ITEMS")].severity is Severity.INFO
    assert "GET /tiles/{z}" in trivial[line_of(THREADPOOL, "# HEALTH")].message
    # none of this is blocking-call-in-async
    assert not [f for f in fs if f.kind == "blocking-call-in-async"]


def test_trivial_sync_endpoints_are_quiet_without_heavy_ones() -> None:
    body = """
    @app.get("/healthz")
    def healthz():
        return {"status": "alive"}
    """
    fs = scan(body)
    assert not at(fs, "AEX1502") and not at(fs, "AEX1501")


# ---------------------------------------------------------------------------
# AEX1503 / AEX1504 / AEX1505 / AEX1506: BaseHTTPMiddleware


MIDDLEWARE = """
request_id = contextvars.ContextVar("request_id", default=None)

def remember(value):
    request_id.set(value)  # SET

@app.middleware("http")  # DECORATOR
async def log_request(request: Request, call_next):
    before = request_id.get()  # BEFORE
    response = await call_next(request)
    rid = request_id.get()  # AFTER
    return response

class Timing(BaseHTTPMiddleware):  # CLASS
    async def dispatch(self, request, call_next):
        return await call_next(request)

@app.get("/items")
async def items(request: Request):
    remember("abc")
    if await request.is_disconnected():  # POLL
        return None
    return StreamingResponse(iter([b"x"]))  # STREAM
"""


def test_basehttpmiddleware_rules() -> None:
    fs = scan(MIDDLEWARE)
    assert at(fs, "AEX1503") == [("basehttpmiddleware", line_of(MIDDLEWARE, "# AFTER"))]  # not the read before call_next
    f = next(f for f in fs if f.code == "AEX1503")
    assert f"app.py:{line_of(MIDDLEWARE, '# SET')}" in f.message and f.severity is Severity.WARNING
    assert sorted(at(fs, "AEX1504")) == [
        ("basehttpmiddleware", line_of(MIDDLEWARE, "# DECORATOR")),
        ("basehttpmiddleware", line_of(MIDDLEWARE, "# CLASS")),
    ]
    assert at(fs, "AEX1505") == [("basehttpmiddleware", line_of(MIDDLEWARE, "# POLL"))]
    assert at(fs, "AEX1506") == [("basehttpmiddleware", line_of(MIDDLEWARE, "# STREAM"))]


def test_pure_asgi_middleware_and_own_contextvar_are_quiet() -> None:
    body = """
    request_id = contextvars.ContextVar("request_id", default=None)

    class PureASGI:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            await self.app(scope, receive, send)
            request_id.get()

    @app.get("/items")
    async def items(request: Request):
        if await request.is_disconnected():
            return None
        return StreamingResponse(iter([b"x"]))

    app.add_middleware(PureASGI)
    """
    fs = scan(body)
    for code in ("AEX1503", "AEX1504", "AEX1505", "AEX1506"):
        assert not at(fs, code), code
    # a middleware reading back the value it set itself before call_next is fine
    own = """
    rid = contextvars.ContextVar("rid", default=None)

    @app.middleware("http")
    async def mw(request: Request, call_next):
        rid.set("x")
        response = await call_next(request)
        rid.get()
        return response
    """
    fs = scan(own)
    assert not at(fs, "AEX1503")
    assert at(fs, "AEX1504") == [("basehttpmiddleware", line_of(own, "@app.middleware"))]


# ---------------------------------------------------------------------------
# AEX1507 (streaming advice is the annotation of AEX120), AEX1508 clients


def test_streaming_body_gets_streaming_advice() -> None:
    body = """
    import queue

    def tokens():
        q = queue.Queue()
        while True:
            yield q.get()

    @app.get("/stream")
    async def stream():
        async def sse():
            for t in tokens():  # ITER
                yield t
        return StreamingResponse(sse())
    """
    fs = scan(body)
    hits = [f for f in fs if f.line == line_of(body, "# ITER")]
    assert [(f.code, f.kind) for f in hits] == [("AEX120", "blocking-call-in-async")]
    f = hits[0]
    assert f.message.startswith("StreamingResponse body `stream.sse` of `GET /stream`: ")
    assert "iterate_in_threadpool" in f.fix and "asyncio.to_thread(next" in f.fix
    assert "def sse():" in f.fix_example and f.severity is Severity.CRITICAL


CLIENTS = """
from sqlalchemy import create_engine

shared = httpx.AsyncClient()

async def get_client():
    async with httpx.AsyncClient() as client:  # DEP
        yield client

@app.get("/rates")
async def rates(client=Depends(get_client)):
    engine = create_engine("sqlite://")  # ENGINE
    return None

@app.get("/lazy")
async def lazy(request: Request):
    request.app.state.client = httpx.AsyncClient()  # STORED
    return await shared.get("http://x")

async def lifespan(app):
    async with httpx.AsyncClient() as client:  # LIFESPAN
        yield
"""


def test_clients_created_per_request() -> None:
    fs = scan(CLIENTS)
    assert sorted(at(fs, "AEX1508")) == [
        ("fastapi-pattern", line_of(CLIENTS, "# DEP")),
        ("fastapi-pattern", line_of(CLIENTS, "# ENGINE")),
    ]
    dep = next(f for f in fs if f.code == "AEX1508" and f.line == line_of(CLIENTS, "# DEP"))
    assert "dependency `get_client`" in dep.message and "httpx.AsyncClient" in dep.message
    assert "https://fastapi.tiangolo.com/advanced/events/" in dep.references


# ---------------------------------------------------------------------------
# AEX1509 on_event


def test_on_event_is_deprecated() -> None:
    body = """
    @app.on_event("startup")  # DECO
    async def startup():
        pass

    app.add_event_handler("shutdown", startup)  # HANDLER
    other = FastAPI(on_shutdown=[startup])  # KW

    def factory(on_startup=None):
        return FastAPI(on_startup=on_startup)  # passed through: quiet
    """
    fs = scan(body)
    assert sorted(at(fs, "AEX1509")) == [
        ("fastapi-pattern", line_of(body, "# DECO")),
        ("fastapi-pattern", line_of(body, "# HANDLER")),
        ("fastapi-pattern", line_of(body, "# KW")),
    ]


# ---------------------------------------------------------------------------
# AEX1510 yield dependencies


def test_yield_dependency_without_finally() -> None:
    body = """
    from sqlalchemy.orm import sessionmaker
    SessionLocal = sessionmaker()

    def get_db():
        db = SessionLocal()
        yield db  # BARE
        db.close()

    def get_db_ok():
        db = SessionLocal()
        try:
            yield db
        finally:
            db.close()

    def get_cfg():
        yield {"debug": False}

    def not_a_dependency():
        db = SessionLocal()
        yield db
        db.close()

    @app.get("/a")
    def a(db=Depends(get_db), ok=Depends(get_db_ok), cfg=Depends(get_cfg)):
        return {}
    """
    fs = scan(body)
    assert at(fs, "AEX1510") == [("unclosed-session", line_of(body, "# BARE"))]
    assert "db.close()" in next(f for f in fs if f.code == "AEX1510").message


# ---------------------------------------------------------------------------
# AEX1511 background tasks, AEX1512 sync sessions


def test_background_task_that_never_awaits() -> None:
    body = """
    async def crunch(n):  # CRUNCH
        total = 0
        for i in range(n):
            total += i * i
        return total

    async def notify(n):
        await asyncio.sleep(0)

    def crunch_sync(n):
        return sum(range(n))

    @app.post("/report")
    async def report(background_tasks: BackgroundTasks):
        background_tasks.add_task(crunch, 10_000_000)
        background_tasks.add_task(notify, 1)
        background_tasks.add_task(crunch_sync, 1)
        return {}
    """
    fs = scan(body)
    assert at(fs, "AEX1511") == [("cpu-bound-in-async", line_of(body, "# CRUNCH"))]
    assert not [f for f in fs if f.kind == "async-without-await" and f.line == line_of(body, "# CRUNCH")]
    extra = next(f for f in fs if f.code == "AEX1511").extra["fastapi"]
    assert extra["route"] == "/report" and extra["methods"] == ["POST"] and extra["role"] == "background"


def test_background_task_blocking_is_annotated() -> None:
    body = """
    async def send_mail(to):
        requests.post("http://mail", json={"to": to}, timeout=5)  # POST

    @app.post("/signup")
    async def signup(background_tasks: BackgroundTasks):
        background_tasks.add_task(send_mail, "a@b")
        return {}
    """
    fs = scan(body)
    f = next(f for f in fs if f.line == line_of(body, "# POST"))
    assert f.code == "AEX102" and f.message.startswith("background task `send_mail` of `POST /signup`: ")
    assert not at(fs, "AEX1511")  # it awaits nothing but the blocking rule already names it


def test_sync_session_in_async_endpoint() -> None:
    body = """
    from sqlalchemy.orm import Session, sessionmaker
    SessionLocal = sessionmaker()

    def get_db():
        db = SessionLocal()
        try:
            yield db
        finally:
            db.close()

    @app.get("/users/{uid}")
    async def read_user(uid: int, db: Session = Depends(get_db)):  # PARAM
        return db.get(dict, uid)  # QUERY

    @app.get("/made")
    async def made():
        with SessionLocal() as db:  # MADE
            return None

    @app.get("/sync/{uid}")
    def read_user_sync(uid: int, db: Session = Depends(get_db)):
        return db.get(dict, uid)
    """
    fs = scan(body)
    assert sorted(at(fs, "AEX1512")) == [
        ("fastapi-pattern", line_of(body, "# PARAM")),
        ("fastapi-pattern", line_of(body, "# MADE")),
    ]
    query = next(f for f in fs if f.line == line_of(body, "# QUERY"))
    assert query.code == "AEX108" and query.message.startswith("endpoint `GET /users/{uid}`: ")


# ---------------------------------------------------------------------------
# multi-file programs


def test_dependency_in_another_module(tmp_path: Path) -> None:
    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "deps.py").write_text(
        "import time\n\n\nasync def get_user():\n    time.sleep(0.2)\n    return 'u'\n\n\n"
        "def get_db():\n    db = open('/tmp/db')\n    yield db\n    db.close()\n"
    )
    (pkg / "api.py").write_text(
        "from fastapi import APIRouter, Depends\n\nfrom .deps import get_db, get_user\n\n"
        "router = APIRouter(prefix='/api')\n\n\n@router.get('/me')\n"
        "async def me(user=Depends(get_user), db=Depends(get_db)):\n    return user\n"
    )
    fs = scan_paths([str(pkg)], Settings(cache=False)).findings
    sleep = next(f for f in fs if f.code == "AEX101")
    assert sleep.path.endswith("deps.py") and sleep.line == 5
    assert sleep.message.startswith("dependency `get_user` of `GET /api/me`: ")
    assert [(f.kind, Path(f.path).name, f.line) for f in fs if f.code == "AEX1510"] == [("unclosed-session", "deps.py", 11)]
    # `async def` without await is FastAPI's fast path for a dependency: no AEX802 hint there ...
    assert not [f for f in fs if f.kind == "async-without-await"]
    # ... while the same module scanned without the app that uses it gets the hint
    alone = scan_paths([str(pkg / "deps.py")], Settings(cache=False)).findings
    assert [(f.kind, f.line) for f in alone if f.kind == "async-without-await"] == [("async-without-await", 4)]


# ---------------------------------------------------------------------------
# corpus


CASES = [
    "02_fastapi_async_endpoint_blocking_sleep.py",
    "08_fastapi_sync_endpoints_starve_threadpool.py",
    "09_basehttpmiddleware_contextvar_lost.py",
    "11_streaming_response_blocking_generator.py",
]


@pytest.mark.parametrize("name", CASES)
def test_corpus_case(name: str) -> None:
    expected = corpus_expected()[name]
    report = scan_paths([str(CORPUS / name)], Settings(cache=False))
    for exp in expected["findings"]:
        if exp["static"] == "none":
            continue
        hits = [f for f in report.findings if f.kind == exp["kind"] and f.line in exp["lines"]]
        assert hits, (name, exp)
    for line in expected["clean_lines"]:
        assert not [f for f in report.findings if f.line == line and f.kind == "blocking-call-in-async"], (name, line)


def test_corpus_details() -> None:
    def scan_case(name: str) -> list[Finding]:
        return scan_paths([str(CORPUS / name)], Settings(cache=False)).findings

    c02 = scan_case(CASES[0])
    assert [(f.code, f.line, f.severity) for f in c02 if f.kind == "blocking-call-in-async"] == [
        ("AEX101", 21, Severity.CRITICAL),
        ("AEX101", 27, Severity.CRITICAL),
    ]
    assert "GET /orders/export`" in c02[0].message
    c08 = scan_case(CASES[1])
    assert sorted((f.code, f.line) for f in c08) == [("AEX1501", 23), ("AEX1502", 28)]
    c09 = scan_case(CASES[2])
    assert sorted((f.code, f.line) for f in c09) == [("AEX1503", 44), ("AEX1504", 41)]
    c11 = scan_case(CASES[3])
    f45 = [f for f in c11 if f.line == 45]
    assert [(f.code, f.extra["fastapi"]["role"]) for f in f45] == [("AEX120", "stream")]


# ---------------------------------------------------------------------------
# real packages


@pytest.mark.parametrize("pkg", [fastapi, starlette])
def test_installed_framework_scan_does_not_crash_or_flood(pkg: object) -> None:
    folder = os.path.dirname(pkg.__file__)  # type: ignore[attr-defined]
    report = scan_paths([folder], Settings(cache=False, jobs=1))
    assert report.files_scanned and not [e for e in report.errors if "too deeply" in e]
    family = [f for f in report.findings if f.code.startswith("AEX15")]
    # framework internals forward their caller's arguments (on_startup=on_startup,
    # dispatch=func): those are not uses, so the framework itself stays quiet
    assert family == [], [(f.code, f.path, f.line, f.message) for f in family]


# ---------------------------------------------------------------------------
# select / ignore: the family works without AEX1500, which only annotates


def test_rules_work_when_the_collector_rule_is_not_selected() -> None:
    # AEX1500 off: the first enabled rule of the family collects with a private walk
    # (AEX1501 reads the blocking family's notes, so that family stays on here)
    fs = scan(THREADPOOL, Settings(cache=False, ignore=("AEX1500",)))
    assert sorted((f.code, f.line) for f in fs if f.code.startswith("AEX15")) == [
        ("AEX1501", line_of(THREADPOOL, "# CALL")),
        ("AEX1502", line_of(THREADPOOL, "# HEALTH")),
        ("AEX1502", line_of(THREADPOOL, "# ITEMS")),
    ]
    no_context = Settings(cache=False, ignore=("AEX1500",))
    fs = scan(ASYNC_ENDPOINT, no_context)
    sleep = next(f for f in fs if f.line == line_of(ASYNC_ENDPOINT, "# SLEEP"))
    assert sleep.code == "AEX101" and "fastapi" not in sleep.extra and not sleep.message.startswith("endpoint")
    assert at(scan(MIDDLEWARE, Settings(cache=False, select=("AEX1503",))), "AEX1503") == [("basehttpmiddleware", line_of(MIDDLEWARE, "# AFTER"))]


def test_sync_endpoint_db_query_is_a_low_confidence_hint() -> None:
    body = """
    from sqlalchemy.orm import Session

    def get_db():
        yield None

    @app.post("/users")
    def create_user(email: str, db: Session = Depends(get_db)):
        db.commit()  # COMMIT
        return {"email": email}
    """
    fs = scan(body)
    f = next(f for f in fs if f.code == "AEX1501")
    assert (f.kind, f.line, f.severity, f.confidence.value) == ("sync-endpoint-threadpool", line_of(body, "# COMMIT"), Severity.INFO, "low")
    assert next(f for f in scan(THREADPOOL) if f.code == "AEX1501").confidence.value == "medium"
    assert not [f for f in fs if f.kind == "blocking-call-in-async"]
