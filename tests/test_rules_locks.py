"""Lock rules: AEX401 sync-lock-in-async, AEX402 lock-not-released, AEX403 lock-held-across-await."""
from __future__ import annotations

import textwrap

from corpus_util import CORPUS

from async_expert_ext.config import Settings
from async_expert_ext.model import Severity
from async_expert_ext.scan.runner import scan_paths, scan_source


def scan(src: str, *, notebook: bool = False):
    return scan_source(textwrap.dedent(src), "t.py", notebook=notebook, module="t", settings=Settings(cache=False)).findings


def hits(src: str, prefix: str, *, notebook: bool = False) -> list[tuple[str, str, int]]:
    return [(f.code, f.kind, f.line) for f in scan(src, notebook=notebook) if f.code.startswith(prefix)]


# -- AEX401 ------------------------------------------------------------------

def test_threading_lock_held_across_await_is_critical() -> None:
    src = """
    import asyncio, threading
    _lock = threading.Lock()

    async def run(table):
        with _lock:
            table["x"] = 1
            await asyncio.sleep(0.2)
    """
    found = [f for f in scan(src) if f.code == "AEX401"]
    assert [(f.kind, f.line) for f in found] == [("sync-lock-in-async", 6)]
    assert found[0].severity is Severity.CRITICAL
    assert "line 8" in found[0].message


def test_threading_lock_without_await_is_a_hint() -> None:
    src = """
    import threading
    class Registry:
        def __init__(self):
            self._lock = threading.RLock()
        async def add(self, k):
            with self._lock:
                self.items[k] = 1
    """
    found = [f for f in scan(src) if f.code == "AEX401"]
    assert [(f.kind, f.line) for f in found] == [("sync-lock-in-async", 7)]
    assert found[0].severity is Severity.INFO


def test_filelock_in_coroutine() -> None:
    src = """
    import asyncio
    from filelock import FileLock

    async def write(path):
        with FileLock(path + ".lock"):
            await asyncio.sleep(0)
    """
    assert hits(src, "AEX401") == [("AEX401", "sync-lock-in-async", 6)]


def test_threading_lock_in_sync_function_and_asyncio_lock_are_quiet() -> None:
    src = """
    import asyncio, threading
    _tlock = threading.Lock()
    _alock = asyncio.Lock()

    def sync_update(table):
        with _tlock:
            table["x"] = 1

    async def run(table):
        async with _alock:
            table["x"] = 1
            await asyncio.sleep(0)
    """
    assert hits(src, "AEX401") == []


# -- AEX402 ------------------------------------------------------------------

def test_acquire_without_try_finally() -> None:
    src = """
    import asyncio
    lock = asyncio.Lock()

    async def write(db, row):
        await lock.acquire()
        await db.insert(row)
        lock.release()
    """
    found = [f for f in scan(src) if f.code == "AEX402"]
    assert [(f.kind, f.line) for f in found] == [("lock-not-released", 6)]
    assert "line 8" in found[0].message


def test_acquire_never_released_in_function() -> None:
    src = """
    import asyncio
    class Pool:
        def __init__(self):
            self._sem = asyncio.Semaphore(3)
        async def take(self):
            await self._sem.acquire()
            return 1
    """
    assert hits(src, "AEX402") == [("AEX402", "lock-not-released", 7)]


def test_acquire_with_try_finally_is_quiet() -> None:
    src = """
    import asyncio

    async def rows(pool: asyncio.Semaphore):
        await pool.acquire()
        try:
            yield 1
        finally:
            pool.release()

    async def other(lock: asyncio.Lock):
        try:
            await lock.acquire()
            await asyncio.sleep(0)
        finally:
            lock.release()

    class Ctx:
        def __init__(self):
            self._lock = asyncio.Lock()
        async def __aenter__(self):
            await self._lock.acquire()
            return self
    """
    assert hits(src, "AEX402") == []


# -- AEX403 ------------------------------------------------------------------

def test_lock_held_across_network_read_is_a_warning() -> None:
    src = """
    import asyncio
    class Conn:
        def __init__(self, reader: asyncio.StreamReader):
            self._lock = asyncio.Lock()
            self.reader = reader
        async def ask(self):
            async with self._lock:
                return await self.reader.readline()
    """
    found = [f for f in scan(src) if f.code == "AEX403"]
    assert [(f.kind, f.line) for f in found] == [("lock-held-across-await", 8)]
    assert found[0].severity is Severity.WARNING


def test_lock_held_across_local_coroutine_that_reaches_network() -> None:
    src = """
    import asyncio, httpx
    class Client:
        def __init__(self):
            self._lock = asyncio.Lock()
            self._http = httpx.AsyncClient()
        async def request(self, url):
            async with self._lock:
                return await self._send(url)
        async def _send(self, url):
            return await self._http.get(url)
    """
    found = [f for f in scan(src) if f.code == "AEX403"]
    assert [(f.kind, f.line) for f in found] == [("lock-held-across-await", 8)]
    assert found[0].severity is Severity.WARNING
    assert any("_send" in step for step in found[0].call_chain)


def test_lock_held_across_local_coroutine_is_an_info_hint() -> None:
    src = """
    import asyncio
    class Shared:
        def __init__(self):
            self._lock = asyncio.Lock()
        async def request(self, url):
            async with self._lock:
                return await self._round_trip(url)
        async def _round_trip(self, url):
            await asyncio.sleep(0.2)
            return url
    """
    found = [f for f in scan(src) if f.code == "AEX403"]
    assert [(f.kind, f.line) for f in found] == [("lock-held-across-await", 7)]
    assert found[0].severity is Severity.INFO


def test_lock_around_state_or_condition_wait_is_quiet() -> None:
    src = """
    import asyncio
    lock = asyncio.Lock()
    cond = asyncio.Condition()

    async def bump(state):
        async with lock:
            state["n"] += 1

    async def wait_ready(state):
        async with cond:
            await cond.wait_for(lambda: state["ready"])

    async def write(writer: asyncio.StreamWriter, data):
        async with lock:
            writer.write(data)
            await writer.drain()
    """
    assert hits(src, "AEX403") == []


def test_corpus_19_and_21() -> None:
    r19 = scan_paths([str(CORPUS / "19_lock_held_across_network_await.py")], Settings(cache=False))
    assert ("AEX403", "lock-held-across-await", 21) in [(f.code, f.kind, f.line) for f in r19.findings]
    r21 = scan_paths([str(CORPUS / "21_threading_lock_in_async.py")], Settings(cache=False))
    assert ("AEX401", "sync-lock-in-async", 29) in [(f.code, f.kind, f.line) for f in r21.findings]


def test_filelock_bound_to_a_name() -> None:
    src = """
    import asyncio, filelock

    async def write(path):
        lock = filelock.FileLock(path)
        with lock:
            await asyncio.sleep(0)
    """
    assert hits(src, "AEX401") == [("AEX401", "sync-lock-in-async", 6)]


def test_awaited_acquire_on_an_untyped_global_is_checked_too() -> None:
    """A rate-limit semaphore assigned in main() to a module global (`limit = None` at
    import): the awaited acquire() with a release skipped by a raise is still found."""
    from async_expert_ext.config import Settings
    from async_expert_ext.scan.runner import scan_source

    src = (
        "import asyncio\n"
        "limit = None\n"
        "async def call_api(i):\n"
        "    await limit.acquire()\n"
        "    if i % 2:\n"
        "        raise ConnectionError('reset')\n"
        "    limit.release()\n"
        "async def main():\n"
        "    global limit\n"
        "    limit = asyncio.Semaphore(3)\n"
        "    async with limit:\n"
        "        pass\n"
    )
    report = scan_source(src, path="m.py", notebook=False, module="m", settings=Settings(cache=False))
    assert [(f.code, f.line, f.confidence.value) for f in report.findings if f.kind == "lock-not-released"] == [("AEX402", 4, "medium")]
