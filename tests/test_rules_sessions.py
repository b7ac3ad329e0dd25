"""Session and async-generator rules: AEX701 unclosed-session, AEX702 early exit skips close,
AEX703 session per iteration/request, AEX710 async-generator-not-closed."""
from __future__ import annotations

import textwrap

from corpus_util import CORPUS

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_paths, scan_source


def hits(src: str, prefix: str) -> list[tuple[str, str, int]]:
    report = scan_source(textwrap.dedent(src), "t.py", notebook=False, module="t", settings=Settings(cache=False))
    return [(f.code, f.kind, f.line) for f in report.findings if f.code.startswith(prefix)]


# -- AEX701 / AEX702 -----------------------------------------------------------

def test_session_per_iteration_never_closed_and_early_exit() -> None:
    src = """
    import aiohttp

    async def worker(urls):
        for url in urls:
            session = aiohttp.ClientSession()
            content = await fetch(session, url)
            if content is None:
                continue
            session.close()
    """
    assert hits(src, "AEX70") == [("AEX701", "unclosed-session", 6), ("AEX702", "unclosed-session", 9)]


def test_httpx_client_never_closed_and_chained_use() -> None:
    src = """
    import httpx, aiohttp

    async def get(url):
        client = httpx.AsyncClient()
        return await client.get(url)

    async def once(url):
        return await aiohttp.ClientSession().get(url)
    """
    assert hits(src, "AEX701") == [("AEX701", "unclosed-session", 5), ("AEX701", "unclosed-session", 9)]


def test_closed_or_handed_over_sessions_are_quiet() -> None:
    src = """
    import aiohttp, httpx, contextlib

    async def a(url):
        async with aiohttp.ClientSession() as s:
            return await s.get(url)

    async def b(url):
        client = httpx.AsyncClient()
        try:
            return await client.get(url)
        finally:
            await client.aclose()

    def make():
        return httpx.AsyncClient()

    class Api:
        async def start(self):
            self.session = aiohttp.ClientSession()

    async def c(stack: contextlib.AsyncExitStack):
        s = aiohttp.ClientSession()
        await stack.enter_async_context(s)

    session = aiohttp.ClientSession()
    """
    assert hits(src, "AEX70") == []


def test_close_after_await_without_exit_is_not_an_early_exit() -> None:
    src = """
    import aiohttp

    async def a(url):
        s = aiohttp.ClientSession()
        data = await s.get(url)
        await s.close()
        return data
    """
    assert hits(src, "AEX70") == []


# -- AEX703 ------------------------------------------------------------------

def test_session_per_request_in_endpoint_is_an_info_hint() -> None:
    src = """
    import httpx
    from fastapi import FastAPI
    app = FastAPI()

    @app.get("/proxy")
    async def proxy():
        async with httpx.AsyncClient() as client:
            return (await client.get("https://example.org")).json()

    async def crawl(urls):
        for url in urls:
            async with httpx.AsyncClient() as client:
                await client.get(url)
    """
    assert hits(src, "AEX70") == [("AEX703", "unclosed-session", 8), ("AEX703", "unclosed-session", 13)]


# -- AEX710 ------------------------------------------------------------------

def test_async_for_break_over_kept_async_generator() -> None:
    src = """
    import asyncio

    async def rows(n):
        try:
            for i in range(n):
                yield i
        finally:
            print("released")

    async def first(n):
        it = rows(n)
        async for r in it:
            if r > 2:
                break

    async def direct(n):
        async for r in rows(n):
            return r
    """
    assert hits(src, "AEX710") == [
        ("AEX710", "async-generator-not-closed", 13),
        ("AEX710", "async-generator-not-closed", 18),
    ]


def test_aclosing_full_iteration_and_non_generators_are_quiet() -> None:
    src = """
    import asyncio
    from contextlib import aclosing

    async def rows(n):
        for i in range(n):
            yield i

    async def not_a_generator():
        return [1, 2]

    async def a():
        async with aclosing(rows(3)) as it:
            async for r in it:
                break

    async def b():
        async for r in rows(3):
            print(r)

    async def c(q):
        async for r in q.stream():
            break

    async def d():
        it = rows(3)
        async for r in it:
            break
        await it.aclose()

    async def e():
        async for r in rows(3):
            for x in range(r):
                break
    """
    assert hits(src, "AEX710") == []


def test_corpus_26_and_29() -> None:
    r26 = scan_paths([str(CORPUS / "26_aiohttp_session_per_iteration_unclosed.py")], Settings(cache=False))
    got26 = [(f.code, f.kind, f.line) for f in r26.findings if f.kind == "unclosed-session"]
    assert got26 == [("AEX701", "unclosed-session", 34), ("AEX702", "unclosed-session", 37)]
    r29 = scan_paths([str(CORPUS / "29_async_generator_not_closed.py")], Settings(cache=False))
    got29 = [(f.code, f.kind, f.line) for f in r29.findings if f.code.startswith(("AEX4", "AEX7"))]
    assert got29 == [("AEX710", "async-generator-not-closed", 26)]


def test_each_session_rule_works_when_selected_alone() -> None:
    src = textwrap.dedent("""
    import aiohttp

    async def worker(urls):
        for url in urls:
            session = aiohttp.ClientSession()
            if not url:
                continue
            await session.close()
    """)
    for code, line in (("AEX702", 8), ("AEX703", 6)):
        report = scan_source(src, "t.py", notebook=False, module="t", settings=Settings(cache=False, select=[code]))
        assert [(f.code, f.line) for f in report.findings] == [(code, line)]


def test_session_returned_inside_a_private_wrapper_is_handed_over() -> None:
    src = """
    import aiohttp

    def request(method, url):
        session = aiohttp.ClientSession()
        return _SessionRequestContextManager(session._request(method, url), session)
    """
    assert hits(src, "AEX70") == []
