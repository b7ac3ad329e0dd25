"""cpu-bound-in-async (AEX130, AEX131) and cross-loop-resource (AEX690-AEX692) rules."""
from __future__ import annotations

import textwrap

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_source


def found(src: str, kind: str) -> list[tuple[str, int]]:
    r = scan_source(textwrap.dedent(src), path="m.py", notebook=False, module="m", settings=Settings(cache=False))
    return [(f.code, f.line) for f in r.findings if f.kind == kind]


@pytest.mark.parametrize(
    "src,expected",
    [
        ("import bcrypt\nasync def login(p, h):\n    return bcrypt.checkpw(p, h)\n", [("AEX130", 3)]),
        ("import hashlib\nasync def k(p):\n    return hashlib.pbkdf2_hmac('sha256', p, b's', 10**5)\n", [("AEX130", 3)]),
        (
            "from passlib.context import CryptContext\npwd = CryptContext(schemes=['bcrypt'])\n"
            "async def login(p, h):\n    return pwd.verify(p, h)\n",
            [("AEX130", 4)],
        ),
        ("import zlib\nasync def pack(b):\n    return zlib.compress(b, 9)\n", [("AEX131", 3)]),
        # quiet: handed to a thread, or in sync code
        ("import bcrypt, asyncio\nasync def login(p, h):\n    return await asyncio.to_thread(bcrypt.checkpw, p, h)\n", []),
        ("import bcrypt\ndef login(p, h):\n    return bcrypt.checkpw(p, h)\n", []),
    ],
)
def test_cpu_bound(src: str, expected: list) -> None:
    assert found(src, "cpu-bound-in-async") == expected


def test_password_hash_through_sync_helper_is_reported_at_the_call_site() -> None:
    src = """
    import bcrypt
    def check(p, h):
        return bcrypt.checkpw(p, h)
    async def login(p, h):
        return check(p, h)
    """
    assert found(src, "blocking-call-in-async") == [("AEX120", 6)]


def test_heavy_computation_is_not_followed_through_helpers() -> None:
    src = "import zlib\ndef pack(b):\n    return zlib.compress(b)\nasync def f(b):\n    return pack(b)\n"
    assert found(src, "blocking-call-in-async") == []


def test_import_time_loop_used_in_coroutine() -> None:
    src = """
    import asyncio
    loop = asyncio.get_event_loop()
    async def work():
        return await loop.run_in_executor(None, print)
    async def fine():
        loop = asyncio.get_running_loop()
        return loop
    def sync_use():
        return loop
    """
    assert found(src, "cross-loop-resource") == [("AEX690", 5)]


def test_import_time_client_used_across_runs() -> None:
    src = """
    import asyncio, httpx
    client = httpx.AsyncClient()
    async def fetch(u):
        return await client.get(u)
    for u in ["a", "b"]:
        asyncio.run(fetch(u))
    """
    assert found(src, "cross-loop-resource") == [("AEX691", 3)]


def test_single_run_is_fine() -> None:
    src = """
    import asyncio, httpx
    client = httpx.AsyncClient()
    async def fetch(u):
        return await client.get(u)
    asyncio.run(fetch("a"))
    """
    assert found(src, "cross-loop-resource") == []


def test_aiohttp_session_outside_coroutine() -> None:
    src = """
    import aiohttp
    session = aiohttp.ClientSession()
    def factory():
        return aiohttp.ClientSession()
    async def fine():
        async with aiohttp.ClientSession() as s:
            return s
    """
    assert found(src, "cross-loop-resource") == [("AEX692", 3)]
