"""ThreadsafeMonitor: loop methods called from a thread that is not the loop's."""
from __future__ import annotations

import asyncio
import threading

import pytest
from corpus_util import CORPUS, corpus_expected
from loop_util import findings as _findings
from loop_util import line_of, run

from async_expert_ext.commands.profile import profile_file
from async_expert_ext.loop import profile
from async_expert_ext.loop.threads import CHECKED_METHODS, ThreadsafeMonitor


def findings(report, kind="threadsafe-misuse"):
    return _findings(report, kind)


def originals():
    return {(cls, name): cls.__dict__[name] for cls, names in CHECKED_METHODS for name in names}


def test_corpus_27_stop_and_call_soon_from_threads_on_a_loop_created_in_a_worker():
    name = "27_loop_stop_from_another_thread.py"
    expected = sorted(line for f in corpus_expected()[name]["findings"] if f["kind"] == "threadsafe-misuse" for line in f["lines"])
    report, exc = profile_file(str(CORPUS / name), profile=False, static=False)
    assert exc is None
    found = findings(report)
    assert sorted(f.line for f in found) == expected == [19, 24]
    by_line = {f.line: f for f in found}
    assert by_line[19].extra["method"] == "stop" and by_line[24].extra["method"] == "call_soon"
    assert by_line[19].extra["loop"] == "other"  # the loop run() created in its worker thread
    assert "call_soon_threadsafe(loop.stop)" in by_line[19].fix_example
    assert all(f.code == "AEX950" and f.source == "runtime" and f.references for f in found)
    assert {r["method"] for r in report.tables["threadsafe"]} == {"stop", "call_soon"}


def _from_thread(loop: asyncio.AbstractEventLoop, seen: list) -> None:
    loop.call_soon(seen.append, 1)  # CALL_SOON
    loop.call_later(0.01, seen.append, 2)  # CALL_LATER


async def _misuse_on_profiled_loop() -> list:
    loop = asyncio.get_running_loop()
    seen: list = []
    t = threading.Thread(target=_from_thread, args=(loop, seen))
    t.start()
    t.join()
    await asyncio.sleep(0.05)
    return seen


def test_call_soon_and_call_later_from_a_thread_on_the_profiled_loop():
    report, exc = run(_misuse_on_profiled_loop)
    assert exc is None
    found = findings(report)
    assert sorted(f.line for f in found) == [line_of(_from_thread, "CALL_SOON"), line_of(_from_thread, "CALL_LATER")]
    assert {f.extra["loop"] for f in found} == {"profiled"}
    # call_later -> call_at inside asyncio is not counted twice
    assert sorted(r["method"] for r in report.tables["threadsafe"]) == ["call_later", "call_soon"]


async def _correct_thread_use() -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def job() -> int:
        return 1

    def worker() -> None:
        loop.call_soon_threadsafe(done.set)
        assert asyncio.run_coroutine_threadsafe(job(), loop).result(timeout=5) == 1
        other = asyncio.new_event_loop()  # not running: setting it up from this thread is fine
        other.call_soon(lambda: None)
        other.call_later(1, lambda: None)
        other.close()

    await asyncio.gather(asyncio.to_thread(worker), done.wait())
    await loop.run_in_executor(None, lambda: None)
    for _ in range(1000):
        loop.call_soon(lambda: None)
        await asyncio.sleep(0)


def test_correct_thread_use_reports_nothing():
    report, exc = run(_correct_thread_use)
    assert exc is None
    assert findings(report) == []
    assert "threadsafe" not in report.tables


def test_class_attributes_are_restored_after_every_ending():
    before = originals()

    async def boom() -> None:
        raise ValueError("boom")

    _r, exc = run(boom)
    assert isinstance(exc, ValueError) and originals() == before

    async def interrupted() -> None:
        async with profile(static=False, profile=False):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(interrupted())
    assert originals() == before

    async def hangs() -> None:
        await asyncio.sleep(10)

    report, _ = run(hangs, timeout_s=0.1)
    assert report.timed_out and originals() == before
    run(_misuse_on_profiled_loop)
    assert originals() == before
    assert asyncio.base_events.BaseEventLoop.call_soon.__module__ == "asyncio.base_events"


def test_no_report_after_the_session_even_through_kept_references():
    mon = ThreadsafeMonitor()

    async def main() -> None:
        async with profile(static=False, profile=False, instruments=[mon]):
            pass
        await _misuse_on_profiled_loop()

    asyncio.run(main())
    assert mon.calls == []


def test_kernel_cells_restore_every_patch_of_these_instruments(tmp_path):
    """In a real kernel: contention, executor, threadsafe and async-generator patches are
    gone after a normal cell and after a failing one, and the next cell runs as usual."""
    from kernel_helpers import run_cells

    probe = (
        "import asyncio, asyncio.base_events, concurrent.futures, sys\n"
        "state = lambda: (asyncio.Lock.__dict__['acquire'], asyncio.Queue.__dict__['get'],\n"
        "    asyncio.base_events.BaseEventLoop.__dict__['call_soon'], asyncio.base_events.BaseEventLoop.__dict__['stop'],\n"
        "    concurrent.futures.ThreadPoolExecutor.__dict__['submit'], asyncio.tasks._GatheringFuture.__dict__['__init__'],\n"
        "    sys.get_asyncgen_hooks())\n"
    )
    cells = run_cells(
        [
            "%load_ext async_expert_ext",
            probe + "before = state()",
            (
                "%%loop_profile --no-profile -o rep\n"
                "lock = asyncio.Lock()\n"
                "async def w():\n"
                "    async with lock:\n"
                "        await asyncio.sleep(0.1)\n"
                "await asyncio.gather(w(), w(), w())\n"
                "await asyncio.to_thread(sum, range(10))"
            ),
            "%%loop_profile --no-profile\nawait asyncio.sleep(0)\nraise ValueError('boom')",
            (
                "print(state() == before)\n"
                "print(sorted({f.kind for f in rep.finding_list if f.source == 'runtime' or f.extra.get('confirmed')}))\n"
                "print(len(rep.lock_records), rep.tables['executor'][0]['submitted'])"
            ),
        ],
        cwd=tmp_path,
    )
    assert cells[2].error is None
    assert cells[3].error is not None and cells[3].error.ename == "ValueError"
    assert cells[4].error is None, cells[4].error
    lines = cells[4].stdout.splitlines()
    assert lines[0] == "True"
    assert "lock-held-across-await" in lines[1]
    assert lines[2] == "2 1"
