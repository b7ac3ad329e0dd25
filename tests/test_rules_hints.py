"""Info-level hints: AEX801 busy-wait, AEX802 async-without-await, AEX803 cpu-bound-in-async
(serialization)."""
from __future__ import annotations

import textwrap

from corpus_util import CORPUS

from async_expert_ext.config import Settings
from async_expert_ext.model import Confidence, Severity
from async_expert_ext.scan.runner import scan_paths, scan_source


def findings(src: str, *, path: str = "t.py", notebook: bool = False):
    return scan_source(textwrap.dedent(src), path, notebook=notebook, module="t", settings=Settings(cache=False)).findings


def hits(src: str, prefix: str, **kw) -> list[tuple[str, str, int]]:
    return [(f.code, f.kind, f.line) for f in findings(src, **kw) if f.code.startswith(prefix)]


# -- AEX801 ------------------------------------------------------------------

def test_busy_wait_on_flag() -> None:
    src = """
    import asyncio

    async def wait_ready(self):
        while not self.ready:
            await asyncio.sleep(0.1)

    async def wait_done(fut):
        waited = 0
        while True:
            if fut.done():
                break
            waited += 1
            await asyncio.sleep(0.05)
    """
    found = [f for f in findings(src) if f.code == "AEX801"]
    assert [(f.kind, f.line) for f in found] == [("busy-wait", 5), ("busy-wait", 10)]
    assert found[0].severity is Severity.INFO


def test_periodic_work_and_sleep_free_loops_are_quiet() -> None:
    src = """
    import asyncio

    async def ticker(self):
        while self.running:
            await self.flush()
            await asyncio.sleep(1)

    async def heartbeat(self):
        while True:
            self.send_ping()
            await asyncio.sleep(5)

    async def consume(q):
        while True:
            item = await q.get()
    """
    assert hits(src, "AEX801") == []


# -- AEX802 ------------------------------------------------------------------

def test_async_def_without_await() -> None:
    src = """
    import asyncio

    async def total(items):
        return sum(i.price for i in items)

    class Plain:
        async def compute(self, x):
            return x * 2

    async def main():
        await total([])
    """
    found = [f for f in findings(src) if f.code == "AEX802"]
    assert [(f.kind, f.line) for f in found] == [("async-without-await", 4), ("async-without-await", 8)]
    assert found[0].confidence is Confidence.MEDIUM


def test_overrides_endpoints_callbacks_and_stubs_are_quiet() -> None:
    src = """
    import abc, asyncio
    from fastapi import FastAPI
    from aiohttp import web
    app = FastAPI()

    class Base(abc.ABC):
        @abc.abstractmethod
        async def run(self): ...

    class Impl(Base):
        async def run(self):
            return 1

    class Iface:
        async def hook(self):
            return None
        async def apply(self, body):
            return body

    class Gzip(Iface):
        async def apply(self, body):
            return await compress(body)

    @app.get("/")
    async def index():
        return {"ok": True}

    async def home(request):
        return web.Response(text="home")

    async def on_done(result):
        print(result)

    async def stream():
        yield 1

    async def todo():
        raise NotImplementedError

    async def __aenter__():
        return 1

    register(on_done)

    async def test_something():
        assert True
    """
    assert hits(src, "AEX802") == []


def test_async_without_await_in_test_files_is_quiet() -> None:
    src = """
    async def helper():
        return 1
    """
    assert hits(src, "AEX802", path="tests/test_x.py") == []
    assert hits(src, "AEX802", path="pkg/x.py") == [("AEX802", "async-without-await", 2)]


# -- AEX803 ------------------------------------------------------------------

def test_json_and_pickle_in_coroutine_are_low_confidence_hints() -> None:
    src = """
    import json, pickle

    async def subscriber(inbox, store):
        key, raw = await inbox.get()
        store[key] = json.loads(raw)
        blob = pickle.dumps(store)
        return blob
    """
    found = [f for f in findings(src) if f.code == "AEX803"]
    assert [(f.kind, f.line) for f in found] == [("cpu-bound-in-async", 6), ("cpu-bound-in-async", 7)]
    assert all(f.confidence is Confidence.LOW and f.severity is Severity.INFO for f in found)


def test_serialization_of_literals_in_threads_or_sync_code_is_quiet() -> None:
    src = """
    import asyncio, json

    def parse(raw):
        return json.loads(raw)

    async def main(raw):
        a = json.dumps({"ok": True})
        b = json.loads("[1, 2]")
        c = await asyncio.to_thread(json.loads, raw)
        return a, b, c
    """
    assert hits(src, "AEX803") == []


def test_corpus_06() -> None:
    report = scan_paths([str(CORPUS / "06_cpu_heavy_json_in_async.py")], Settings(cache=False))
    assert ("AEX803", "cpu-bound-in-async", 23) in [(f.code, f.kind, f.line) for f in report.findings]
