"""Event-loop rules: AEX601/AEX602 event-loop-already-running, AEX603 get_event_loop in a
coroutine, AEX610 threadsafe-misuse."""
from __future__ import annotations

import textwrap

from corpus_util import CORPUS

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_paths, scan_source


def findings(src: str, *, notebook: bool = False):
    return scan_source(textwrap.dedent(src), "t.py", notebook=notebook, module="t", settings=Settings(cache=False)).findings


def hits(src: str, prefix: str, *, notebook: bool = False) -> list[tuple[str, str, int]]:
    return [(f.code, f.kind, f.line) for f in findings(src, notebook=notebook) if f.code.startswith(prefix)]


# -- AEX601 ------------------------------------------------------------------

def test_asyncio_run_and_run_until_complete_inside_coroutine() -> None:
    src = """
    import asyncio

    async def fetch():
        return 1

    async def handler():
        a = asyncio.run(fetch())
        b = asyncio.get_event_loop().run_until_complete(fetch())
        return a, b
    """
    assert hits(src, "AEX601") == [("AEX601", "event-loop-already-running", 8), ("AEX601", "event-loop-already-running", 9)]


def test_notebook_top_level_asyncio_run_suggests_await() -> None:
    src = """
    import asyncio

    async def main():
        return 1

    asyncio.run(main())
    loop = asyncio.get_event_loop()
    loop.run_until_complete(main())
    """
    found = [f for f in findings(src, notebook=True) if f.code == "AEX601"]
    assert [(f.kind, f.line) for f in found] == [("event-loop-already-running", 7), ("event-loop-already-running", 9)]
    assert "await" in found[0].fix and "notebook" in found[0].message


def test_top_level_asyncio_run_in_a_file_is_fine() -> None:
    src = """
    import asyncio

    async def main():
        return 1

    if __name__ == "__main__":
        asyncio.run(main())
    """
    assert hits(src, "AEX60") == []


# -- AEX602 ------------------------------------------------------------------

def test_sync_helper_with_asyncio_run_called_from_coroutine() -> None:
    src = """
    import asyncio

    async def fetch():
        return 1

    def load():
        return asyncio.run(fetch())

    def outer():
        return load()

    async def handler():
        return outer()
    """
    found = [f for f in findings(src) if f.code == "AEX602"]
    assert [(f.kind, f.line) for f in found] == [("event-loop-already-running", 14)]
    assert any("load" in step for step in found[0].call_chain)


def test_notebook_cell_calling_a_helper_that_runs_a_loop() -> None:
    src = """
    import asyncio

    async def fetch():
        return 1

    def load():
        return asyncio.run(fetch())

    data = load()
    """
    assert hits(src, "AEX602", notebook=True) == [("AEX602", "event-loop-already-running", 10)]
    assert hits(src, "AEX602", notebook=False) == []


def test_sync_function_passed_to_a_coroutine_that_calls_it() -> None:
    src = """
    import asyncio

    async def fetch():
        return 1

    def job():
        return asyncio.run(fetch())

    def harmless():
        return 2

    async def execute(cb):
        return cb()

    async def main():
        await execute(job)
        await execute(harmless)
    """
    found = [f for f in findings(src) if f.code == "AEX602"]
    assert [(f.kind, f.line) for f in found] == [("event-loop-already-running", 8)]
    assert "execute" in found[0].message


def test_function_passed_to_to_thread_is_quiet() -> None:
    src = """
    import asyncio

    async def fetch():
        return 1

    def job():
        return asyncio.run(fetch())

    async def main():
        return await asyncio.to_thread(job)
    """
    assert hits(src, "AEX60") == []


def test_corpus_24_reports_both_cells() -> None:
    report = scan_paths([str(CORPUS / "24_asyncio_run_in_notebook_cell.py")], Settings(cache=False))
    got = [(f.kind, f.line) for f in report.findings]
    assert ("event-loop-already-running", 20) in got
    assert ("event-loop-already-running", 25) in got


# -- AEX603 ------------------------------------------------------------------

def test_get_event_loop_in_coroutine() -> None:
    src = """
    import asyncio

    async def main():
        loop = asyncio.get_event_loop()
        return loop.time()

    def sync():
        return asyncio.get_event_loop()
    """
    assert hits(src, "AEX603") == [("AEX603", "get-event-loop-in-coroutine", 5)]


def test_get_running_loop_is_quiet() -> None:
    src = """
    import asyncio

    async def main():
        return asyncio.get_running_loop().time()
    """
    assert hits(src, "AEX603") == []


# -- AEX610 ------------------------------------------------------------------

def test_loop_methods_in_thread_targets() -> None:
    src = """
    import asyncio, threading
    from concurrent.futures import ThreadPoolExecutor

    def watchdog(loop: asyncio.AbstractEventLoop):
        loop.stop()

    def notify(loop):
        loop.call_soon(print)

    def start(loop):
        threading.Thread(target=watchdog, args=(loop,)).start()
        threading.Timer(1.0, notify, args=(loop,)).start()
        with ThreadPoolExecutor() as pool:
            pool.submit(lambda: loop.call_later(1, print))
    """
    assert hits(src, "AEX610") == [
        ("AEX610", "threadsafe-misuse", 6),
        ("AEX610", "threadsafe-misuse", 9),
        ("AEX610", "threadsafe-misuse", 15),
    ]


def test_threadsafe_calls_and_own_loops_are_quiet() -> None:
    src = """
    import asyncio, threading

    def good(loop: asyncio.AbstractEventLoop):
        loop.call_soon_threadsafe(loop.stop)

    def runs_its_own():
        loop = asyncio.new_event_loop()
        loop.call_later(1, loop.stop)
        loop.run_forever()

    def not_in_thread(loop: asyncio.AbstractEventLoop):
        loop.stop()

    def start(loop):
        threading.Thread(target=good, args=(loop,)).start()
        threading.Thread(target=runs_its_own).start()
        not_in_thread(loop)
    """
    assert hits(src, "AEX610") == []


def test_corpus_27() -> None:
    report = scan_paths([str(CORPUS / "27_loop_stop_from_another_thread.py")], Settings(cache=False))
    got = [(f.code, f.kind, f.line) for f in report.findings if f.code == "AEX610"]
    assert got == [("AEX610", "threadsafe-misuse", 19), ("AEX610", "threadsafe-misuse", 24)]


def test_helper_defined_in_an_earlier_cell() -> None:
    from async_expert_ext.scan.runner import scan_cells

    cells = [
        ("In[1]", "import asyncio\n\nasync def fetch():\n    return 1\n\ndef load():\n    return asyncio.run(fetch())\n"),
        ("In[2]", "x = 1\ndata = load()\n"),
    ]
    report = scan_cells(cells, Settings(cache=False))
    got = [(f.code, f.kind, f.path, f.line) for f in report.findings if f.code.startswith("AEX60")]
    assert got == [("AEX602", "event-loop-already-running", "In[2]", 2)]


def test_loop_helper_rule_works_with_the_direct_rule_ignored() -> None:
    src = textwrap.dedent("""
    import asyncio

    def load(coro):
        return asyncio.run(coro)

    async def handler(coro):
        return load(coro)
    """)
    report = scan_source(src, "t.py", notebook=False, module="t", settings=Settings(cache=False, ignore=["AEX601"]))
    assert [(f.code, f.line) for f in report.findings if f.kind == "event-loop-already-running"] == [("AEX602", 8)]


def test_asyncio_queue_put_nowait_from_a_thread_target() -> None:
    """asyncio.Queue/Event are not thread-safe either: waking a waiter from a worker
    thread goes through loop.call_soon without the self-pipe wake-up."""
    from async_expert_ext.config import Settings
    from async_expert_ext.scan.runner import scan_source

    src = (
        "import asyncio, threading\n"
        "def device(q: asyncio.Queue, ev: asyncio.Event):\n"
        "    q.put_nowait(1)\n"
        "    ev.set()\n"
        "async def main():\n"
        "    q = asyncio.Queue()\n"
        "    ev = asyncio.Event()\n"
        "    threading.Thread(target=device, args=(q, ev)).start()\n"
        "    q.put_nowait(2)\n"
    )
    report = scan_source(src, path="m.py", notebook=False, module="m", settings=Settings(cache=False))
    found = sorted((f.code, f.line) for f in report.findings if f.kind == "threadsafe-misuse")
    assert found == [("AEX610", 3)] or found == [("AEX610", 3), ("AEX610", 4)], found
    assert any("asyncio.Queue.put_nowait()" in f.message for f in report.findings if f.kind == "threadsafe-misuse")
