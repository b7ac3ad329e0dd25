"""Unit tests of the tasks rule family (AEX2xx): never-awaited, coroutine
functions passed as sync callbacks, fire-and-forget tasks and the weak task hints.

Every test asserts the code, the kind and the line of what is reported (or that
nothing of the family is reported on the correct variant)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.model import Confidence
from async_expert_ext.scan.runner import scan_paths, scan_source

CORPUS = Path(__file__).parent / "corpus"
FAMILY = ("AEX2",)


def scan(src: str, select: tuple[str, ...] = FAMILY):
    compile(textwrap.dedent(src), "mod.py", "exec")  # a source that does not parse would pass vacuously
    return scan_source(textwrap.dedent(src), path="mod.py", notebook=False, module="mod", settings=Settings(select=select, cache=False))


def hits(src: str, select: tuple[str, ...] = FAMILY) -> set[tuple[str, str, int]]:
    return {(f.code, f.kind, f.line) for f in scan(src, select).findings}


def write_pkg(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    return pkg


# ---------------------------------------------------------------------------
# AEX201 never-awaited


def test_local_coroutine_call_dropped():
    src = """
    import asyncio

    async def fetch():
        await asyncio.sleep(0)

    async def main():
        fetch()
        await fetch()
    """
    assert hits(src) == {("AEX201", "never-awaited", 8)}


def test_self_and_cls_method_dropped():
    src = """
    class Conn:
        async def ping(self):
            pass

        @classmethod
        async def make(cls):
            return cls()

        async def run(self):
            self.ping()
            cls = type(self)
            await self.ping()

        @classmethod
        def build(cls):
            cls.make()
    """
    assert hits(src) == {("AEX201", "never-awaited", 11), ("AEX201", "never-awaited", 17)}


def test_known_async_apis_dropped():
    src = """
    import asyncio
    import httpx

    async def main(url):
        asyncio.sleep(1)
        lock = asyncio.Lock()
        lock.acquire()
        q = asyncio.Queue()
        q.join()
        reader, writer = await asyncio.open_connection("h", 80)
        writer.drain()
        client = httpx.AsyncClient()
        client.aclose()
        await asyncio.sleep(1)
    """
    assert hits(src) == {
        ("AEX201", "never-awaited", 6),
        ("AEX201", "never-awaited", 8),
        ("AEX201", "never-awaited", 10),
        ("AEX201", "never-awaited", 12),
        ("AEX201", "never-awaited", 14),
    }


def test_boolean_contexts():
    src = """
    async def ready():
        return True

    async def main(x):
        if ready():
            pass
        y = ready() and x
        z = bool(ready())
        if not ready():
            pass
        w = [i for i in range(3) if ready()]
        v = ready() or x
    """
    assert hits(src) == {
        ("AEX201", "never-awaited", 6),
        ("AEX201", "never-awaited", 8),
        ("AEX201", "never-awaited", 9),
        ("AEX201", "never-awaited", 10),
        ("AEX201", "never-awaited", 12),
    }


def test_parameter_holding_coroutine_function():
    src = """
    from typing import Awaitable, Callable

    async def run(job: Callable[[], Awaitable[None]]):
        job()

    async def retry(fn):
        fn()
        await fn()
    """
    assert hits(src) == {("AEX201", "never-awaited", 5), ("AEX201", "never-awaited", 8)}


def test_unknown_receiver_matched_by_unique_async_method_name():
    src = """
    class Connection:
        async def ping(self):
            pass

    class Dispatcher:
        def __init__(self, connections):
            self.connections = connections

        async def keepalive_round(self):
            for connection in self.connections:
                connection.ping()
    """
    report = scan(src)
    assert [(f.code, f.kind, f.line) for f in report.findings] == [("AEX201", "never-awaited", 12)]
    assert report.findings[0].confidence is Confidence.MEDIUM


def test_unknown_receiver_quiet_when_name_also_sync_or_common():
    src = """
    class A:
        async def ping(self):
            pass
        async def close(self):
            pass

    class B:
        def ping(self):
            pass

    async def main(conn, f):
        conn.ping()
        f.close()
    """
    assert hits(src) == set()


def test_cross_file_import_of_coroutine_function(tmp_path):
    pkg = write_pkg(
        tmp_path,
        {
            "api.py": """
            async def fetch(url):
                return url

            async def stream(url):
                yield url
            """,
            "use.py": """
            from .api import fetch, stream
            from . import api

            def refresh():
                fetch("a")
                api.fetch("b")
                stream("c")
            """,
        },
    )
    report = scan_paths([str(pkg)], Settings(select=FAMILY, cache=False), jobs=1)
    got = {(f.code, f.kind, Path(f.path).name, f.line) for f in report.findings}
    assert got == {("AEX201", "never-awaited", "use.py", 6), ("AEX201", "never-awaited", "use.py", 7)}


@pytest.mark.parametrize(
    "src",
    [
        # awaited, scheduled, returned or stored
        """
        import asyncio
        async def f():
            pass
        async def main():
            await f()
            t = asyncio.create_task(f())
            await t
        def make():
            return f()
        def keep():
            c = f()
            return c
        """,
        # an async generator is not a coroutine function
        """
        async def gen():
            yield 1
        def main():
            gen()
        """,
        # a decorator may change what calling the function returns
        """
        import functools
        def sync_compatible(fn):
            return fn
        @sync_compatible
        async def f():
            pass
        def main():
            f()
        """,
        # a sync function
        """
        def f():
            pass
        async def main():
            f()
        """,
        # introspection: the function is awaited only when it is a coroutine function
        """
        import inspect
        async def call(fn):
            if inspect.iscoroutinefunction(fn):
                await fn()
            else:
                fn()
        """,
    ],
)
def test_never_awaited_quiet(src):
    assert hits(src) == set()


# ---------------------------------------------------------------------------
# AEX202 coroutine function passed as a sync callback


def test_coroutine_function_passed_to_sync_callback_apis():
    src = """
    import asyncio, atexit, functools, signal, threading
    from concurrent.futures import ThreadPoolExecutor

    async def job(n=0):
        pass

    def plain():
        pass

    async def main():
        threading.Timer(1.0, job).start()
        threading.Thread(target=job).start()
        with ThreadPoolExecutor() as ex:
            ex.submit(job)
        loop = asyncio.get_running_loop()
        loop.call_soon(job)
        loop.call_later(1, functools.partial(job, 1))
        signal.signal(signal.SIGTERM, lambda *a: job())
        atexit.register(job)
        loop.run_in_executor(None, asyncio.sleep)
        threading.Timer(1.0, plain).start()
        await asyncio.to_thread(plain)
    """
    assert hits(src) == {
        ("AEX202", "never-awaited", 12),
        ("AEX202", "never-awaited", 13),
        ("AEX202", "never-awaited", 15),
        ("AEX202", "never-awaited", 17),
        ("AEX202", "never-awaited", 18),
        ("AEX202", "never-awaited", 19),
        ("AEX202", "never-awaited", 20),
        ("AEX202", "never-awaited", 21),
    }


def test_coroutine_function_through_one_parameter_of_a_helper():
    src = """
    import threading

    async def ping_server():
        pass

    def tick():
        pass

    def schedule_every(interval, times, job):
        for i in range(times):
            threading.Timer(interval * (i + 1), job).start()

    def run():
        schedule_every(0.05, 3, ping_server)
        schedule_every(0.05, 3, tick)
        schedule_every(0.05, 3, job=ping_server)
    """
    report = scan(src)
    assert {(f.code, f.kind, f.line) for f in report.findings} == {
        ("AEX202", "never-awaited", 15),
        ("AEX202", "never-awaited", 17),
    }
    assert any("threading.Timer" in step for step in report.findings[0].call_chain)


def test_helper_that_awaits_its_parameter_is_fine():
    src = """
    async def ping_server():
        pass

    async def every(job):
        await job()

    async def main():
        await every(ping_server)
    """
    assert hits(src) == set()


def test_tornado_ioloop_call_later_is_not_a_sync_sink():
    src = """
    async def step():
        pass

    class K:
        def schedule(self):
            self.io_loop.call_later(0.001, step)
    """
    assert hits(src) == set()


# ---------------------------------------------------------------------------
# AEX210/AEX211 fire-and-forget tasks


def test_dropped_task():
    src = """
    import asyncio

    async def work():
        pass

    class S:
        async def go(self):
            asyncio.create_task(work())
            asyncio.ensure_future(work())
            loop = asyncio.get_running_loop()
            loop.create_task(work())
            self._loop.create_task(work())
    """
    report = scan(src)
    assert {(f.code, f.kind, f.line) for f in report.findings} == {
        ("AEX210", "fire-and-forget-task", 9),
        ("AEX210", "fire-and-forget-task", 10),
        ("AEX210", "fire-and-forget-task", 12),
        ("AEX210", "fire-and-forget-task", 13),
    }
    assert {f.line: f.confidence for f in report.findings}[13] is Confidence.MEDIUM


def test_task_group_and_kept_tasks_are_fine():
    src = """
    import asyncio

    background = set()

    async def work():
        pass

    async def main():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(work())
        t = asyncio.create_task(work())
        background.add(t)
        t.add_done_callback(background.discard)
        u = asyncio.create_task(work())
        await u

    task = asyncio.ensure_future(work())
    """
    assert hits(src) == set()


def test_task_in_unused_local():
    src = """
    import asyncio

    async def work():
        pass

    async def start():
        task = asyncio.create_task(work())
        other = asyncio.create_task(work())
        return other
    """
    assert hits(src) == {("AEX211", "fire-and-forget-task", 8)}


# ---------------------------------------------------------------------------
# AEX220 task-exception-never-retrieved (weak hint)


def test_stored_task_never_observed():
    src = """
    import asyncio

    class Scheduler:
        def __init__(self):
            self.manager = asyncio.create_task(self.queue_manager())

        async def queue_manager(self):
            while True:
                await asyncio.sleep(1)

    async def main():
        s = Scheduler()
        print(s.manager.done())
    """
    report = scan(src)
    assert [(f.code, f.kind, f.line) for f in report.findings] == [("AEX220", "task-exception-never-retrieved", 6)]
    assert report.findings[0].severity.value == "info"


@pytest.mark.parametrize(
    "use",
    [
        "self.manager.add_done_callback(print)",
        "await self.manager",
        "await asyncio.gather(self.manager)",
        "self.manager.cancel()",
    ],
)
def test_stored_task_observed_is_quiet(use):
    src = f"""
    import asyncio

    class Scheduler:
        def __init__(self):
            self.manager = asyncio.create_task(self.queue_manager())

        async def queue_manager(self):
            await asyncio.sleep(1)

        async def stop(self):
            {use}
    """
    assert hits(src) == set()


def test_stored_task_whose_coroutine_catches_everything_is_quiet():
    src = """
    import asyncio

    class Scheduler:
        def __init__(self):
            self.manager = asyncio.create_task(self.queue_manager())

        async def queue_manager(self):
            while True:
                try:
                    await asyncio.sleep(1)
                except Exception:
                    pass
    """
    assert hits(src) == set()


# ---------------------------------------------------------------------------
# AEX221 leaked-task (weak hint)


def test_tasks_appended_and_never_waited():
    src = """
    import asyncio

    async def download(i):
        pass

    async def distribute_jobs(spawned):
        for i in range(3):
            spawned.append(asyncio.create_task(download(i)))
        await asyncio.sleep(0.05)
    """
    assert hits(src) == {("AEX221", "leaked-task", 9)}


@pytest.mark.parametrize(
    "tail",
    ["await asyncio.gather(*tasks)", "for t in tasks:\n            t.cancel()", "return tasks"],
)
def test_tasks_appended_and_waited_are_quiet(tail):
    src = f"""
    import asyncio

    async def download(i):
        pass

    async def main():
        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(download(i)))
        {tail}
    """
    assert hits(src) == set()


def test_global_task_list_gathered_elsewhere_is_quiet():
    src = """
    import asyncio

    TASKS = []

    async def download(i):
        pass

    async def spawn():
        TASKS.append(asyncio.create_task(download(1)))

    async def shutdown():
        await asyncio.gather(*TASKS)
    """
    assert hits(src) == set()


# ---------------------------------------------------------------------------
# AEX222 gather-partial-failure (weak hint)


def test_gather_with_endless_sibling():
    src = """
    import asyncio

    async def keepalive(conn):
        await asyncio.sleep(1)
        raise TimeoutError

    async def handle(conn):
        while True:
            await asyncio.sleep(0.02)

    async def session(conn):
        await asyncio.gather(keepalive(conn), handle(conn))
    """
    assert hits(src) == {("AEX222", "gather-partial-failure", 13)}


@pytest.mark.parametrize(
    "call",
    [
        "asyncio.gather(keepalive(conn), handle(conn), return_exceptions=True)",
        "asyncio.gather(keepalive(conn), keepalive(conn))",
        "asyncio.gather(keepalive(conn), bounded(conn))",
    ],
)
def test_gather_quiet(call):
    src = f"""
    import asyncio

    async def keepalive(conn):
        await asyncio.sleep(1)

    async def handle(conn):
        while True:
            await asyncio.sleep(0.02)

    async def bounded(conn):
        while True:
            if await conn.read() is None:
                break

    async def session(conn):
        await {call}
    """
    assert hits(src) == set()


# ---------------------------------------------------------------------------
# corpus and real packages

CORPUS_KINDS = {"never-awaited", "fire-and-forget-task", "task-exception-never-retrieved", "leaked-task", "gather-partial-failure"}


def _corpus_cases():
    expected = json.loads((CORPUS / "expected.json").read_text())
    for case, spec in sorted(expected.items()):
        for finding in spec["findings"]:
            if finding["kind"] in CORPUS_KINDS:
                yield case, finding["kind"], tuple(finding["lines"])


@pytest.mark.parametrize("case,kind,lines", list(_corpus_cases()))
def test_corpus_case_found(case, kind, lines):
    report = scan_paths([str(CORPUS / case)], Settings(select=FAMILY, cache=False), jobs=1)
    assert any(f.kind == kind and f.line in lines for f in report.findings), [(f.code, f.kind, f.line) for f in report.findings]


@pytest.mark.parametrize("package", ["starlette", "httpx", "anyio", "aiohttp"])
def test_real_packages_scan_without_crash_and_few_findings(package):
    import importlib.util
    import os

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin
    report = scan_paths([os.path.dirname(spec.origin)], Settings(select=FAMILY, cache=False), jobs=1)
    assert report.errors == []
    assert report.files_scanned
    # well-maintained async libraries: no never-awaited and no weak hints at all
    assert [f for f in report.findings if f.kind != "fire-and-forget-task"] == []


def test_untyped_self_attribute_receiver():
    src = """
    class Connection:
        async def ping(self):
            pass

    async def job():
        pass

    class Keeper:
        def __init__(self, conn, loop):
            self.conn = conn
            self._loop = loop

        async def beat(self):
            self.conn.ping()
            self._loop.call_soon(job)
    """
    report = scan(src)
    assert {(f.code, f.kind, f.line, f.confidence) for f in report.findings} == {
        ("AEX201", "never-awaited", 15, Confidence.MEDIUM),
        ("AEX202", "never-awaited", 16, Confidence.HIGH),
    }


def test_module_receiver_is_never_matched_by_method_name():
    src = """
    import somelib

    class Connection:
        async def ping(self):
            pass

    def main():
        somelib.ping()
    """
    assert hits(src) == set()


def test_unknown_receiver_must_be_named_like_the_owning_class():
    src = """
    class SSLStream:
        async def renegotiate(self):
            pass

    def finish(outcome, stream):
        outcome.renegotiate()
        stream.renegotiate()
    """
    report = scan(src)
    assert [(f.code, f.kind, f.line) for f in report.findings] == [("AEX201", "never-awaited", 8)]


def test_dropped_gather_is_fire_and_forget() -> None:
    """`asyncio.gather(...)` without await schedules the coroutines as tasks that nobody
    awaits: a forgotten `await`, reported like a dropped create_task."""
    src = """
    import asyncio
    async def a():
        pass
    async def f():
        asyncio.gather(a(), a())
        await asyncio.gather(a(), a())
    """
    assert hits(src) == {("AEX210", "fire-and-forget-task", 6)}


def test_asyncio_wait_pending_set_dropped() -> None:
    src = """
    import asyncio
    async def fastest(tasks):
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()
    async def careful(tasks):
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        return done
    async def underscore(tasks):
        done, _ = await asyncio.wait(tasks, timeout=1)
        return done
    """
    assert hits(src) == {("AEX223", "leaked-task", 4), ("AEX223", "leaked-task", 12)}
