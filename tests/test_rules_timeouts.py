"""missing-timeout rules: AEX501 read without timeout, AEX502 connect without timeout,
AEX503 timeout block without await."""
from __future__ import annotations

import textwrap

from corpus_util import CORPUS

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_paths, scan_source


def hits(src: str, prefix: str, *, notebook: bool = False) -> list[tuple[str, str, int]]:
    report = scan_source(textwrap.dedent(src), "t.py", notebook=notebook, module="t", settings=Settings(cache=False))
    return [(f.code, f.kind, f.line) for f in report.findings if f.code.startswith(prefix)]


def test_stream_read_from_open_connection_tuple() -> None:
    src = """
    import asyncio

    async def read_frame(host, port):
        reader, writer = await asyncio.open_connection(host, port)
        header = await reader.readexactly(8)
        line = await reader.readline()
        return header, line
    """
    assert hits(src, "AEX501") == [("AEX501", "missing-timeout", 6), ("AEX501", "missing-timeout", 7)]
    assert hits(src, "AEX502") == [("AEX502", "missing-timeout", 5)]


def test_annotated_reader_and_websocket_recv() -> None:
    src = """
    import asyncio, websockets

    async def handle(reader: asyncio.StreamReader, writer):
        data = await reader.read(100)

    async def listen(url):
        async with websockets.connect(url) as ws:
            return await ws.recv()
    """
    assert hits(src, "AEX501") == [("AEX501", "missing-timeout", 5), ("AEX501", "missing-timeout", 9)]


def test_timeouts_keep_it_quiet() -> None:
    src = """
    import asyncio, anyio, async_timeout

    async def a(host):
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, 1)
            return await reader.readexactly(8)

    async def b(reader: asyncio.StreamReader):
        return await asyncio.wait_for(reader.read(10), 5)

    async def c(reader: asyncio.StreamReader):
        with anyio.fail_after(3):
            return await reader.readline()

    async def d(reader: asyncio.StreamReader):
        async with async_timeout.timeout(3):
            if True:
                return await reader.readline()

    class Wrapper:
        def __init__(self, reader: asyncio.StreamReader):
            self._reader = reader
        async def receive(self):
            return await self._reader.read(65536)
    """
    assert hits(src, "AEX50") == []


def test_timeout_block_without_await() -> None:
    src = """
    import asyncio, socket

    async def poll(sock):
        async with asyncio.timeout(5):
            data = sock.recv(1024)
        return data
    """
    assert hits(src, "AEX503") == [("AEX503", "timeout-without-await", 5)]


def test_timeout_block_with_await_is_quiet() -> None:
    src = """
    import asyncio

    async def poll(q: asyncio.Queue):
        async with asyncio.timeout(5):
            return await q.get()
    """
    assert hits(src, "AEX503") == []


def test_corpus_23() -> None:
    report = scan_paths([str(CORPUS / "23_stream_read_without_timeout.py")], Settings(cache=False))
    assert ("AEX501", "missing-timeout", 23) in [(f.code, f.kind, f.line) for f in report.findings]


def test_aiohttp_websocket_receive() -> None:
    src = """
    import aiohttp

    async def listen(url):
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(url) as ws:
                msg = await ws.receive()
                bounded = await ws.receive(timeout=5)
    """
    assert hits(src, "AEX501") == [("AEX501", "missing-timeout", 7)]
