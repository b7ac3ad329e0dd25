"""``%%loop_profile`` in a real kernel (nbclient + ipykernel): the cell runs on the kernel's
own loop, the report shows, and everything is restored after the four endings (normal,
exception, KeyboardInterrupt from a real SIGINT, --timeout); the next cell runs as usual."""
from __future__ import annotations

import pytest
from kernel_helpers import run_cells

STATE = (
    "import asyncio, sys, warnings, logging, threading\n"
    "_l = asyncio.get_running_loop()\n"
    "_state = (_l.get_task_factory(), _l.get_exception_handler(), _l.get_debug(), _l.slow_callback_duration,"
    " sys.get_coroutine_origin_tracking_depth(), sys.unraisablehook, warnings.showwarning, len(warnings.filters),"
    " tuple(logging.getLogger('asyncio').handlers), sorted(t.name for t in threading.enumerate() if 'async-expert' in t.name),"
    " type(_l).call_exception_handler.__qualname__, sorted(vars(_l)), sorted(vars(_l._selector)), asyncio.run.__module__,"
    " get_ipython().showtraceback.__func__.__qualname__)\n"
    "print(repr(_state))"
)

PROFILED = [
    # normal ending: a blocking line, a never-awaited coroutine, a leaked task
    "%%loop_profile -o rep --no-profile --no-memory\n"
    "import time, asyncio\n"
    "async def ping(): pass\n"
    "await asyncio.sleep(0.01)\n"
    "time.sleep(0.2)\n"
    "ping()\n"
    "t = asyncio.create_task(asyncio.sleep(3))\n",
    # exception
    "%%loop_profile --no-profile --no-memory\nawait asyncio.sleep(0.01)\nraise ValueError('boom')\n",
    # kernel interrupt: a real SIGINT, as the kernel's interrupt_request sends
    "%%loop_profile --no-profile --no-memory\nimport os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(2)\n",
    # timeout
    "%%loop_profile --timeout 0.3 --no-profile --no-memory\nawait asyncio.sleep(5)\n",
]


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("loop_kernel")
    # the report's plots import matplotlib (and numpy, which adds warnings filters once, at
    # import): import them before the baseline so the comparison is about the profiler's state
    warm = "%load_ext async_expert_ext\nimport matplotlib.figure, async_expert_ext.render.widget"
    source = [warm, STATE, "fut = asyncio.get_running_loop().create_future()"]
    for cell in PROFILED:
        source += [cell, STATE]
    source += [
        "print(rep.summary()['blocking_events'], rep.summary()['worst_block_at'], _loop_profile.timed_out)",
        "print([(f.kind, f.location, bool(f.extra.get('confirmed'))) for f in rep.finding_list])",
        "asyncio.get_running_loop().call_later(0.05, fut.set_result, 42)\nprint(await fut)",
        "%%loop_profile --threshold -1\n1\n",
        "%%loop_profile --no-profile --no-memory\nx = 5\nx * 2\n",
        "print(x)",
    ]
    return run_cells(source, cwd=cwd, timeout=60)


def test_state_restored_after_every_ending(cells):
    baseline = cells[1].stdout
    assert baseline.strip()
    for i in range(len(PROFILED)):
        assert cells[4 + 2 * i].stdout == baseline, (i, cells[4 + 2 * i].stdout, baseline)


def test_normal_ending_shows_report_and_stores_it(cells):
    normal = cells[3]
    assert normal.error is None
    text = normal.mime("text/plain")
    assert "async-expert loop profile of In[4]" in text
    assert "<table>" in normal.mime("text/html")
    summary = cells[11].stdout.split()
    assert summary[0] == "1" and summary[1] == "In[4]:5"
    found = cells[12].stdout
    assert "('blocking-call-in-async', 'In[4]:5', True)" in found
    assert "('never-awaited', 'In[4]:6', True)" in found
    assert "('leaked-task', 'In[4]:7', False)" in found


def test_exception_report_comes_before_the_traceback(cells):
    cell = cells[5]
    assert cell.error is not None and cell.error.ename == "ValueError"
    kinds = [o["output_type"] for o in cell.outputs]
    assert kinds.index("display_data") < kinds.index("error")
    assert "the profiled code raised ValueError: boom" in cell.mime("text/plain")


def test_keyboard_interrupt(cells):
    cell = cells[7]
    assert cell.error is not None and cell.error.ename == "KeyboardInterrupt"
    assert "raised KeyboardInterrupt" in cell.mime("text/plain")


def test_timeout_cancels_the_cell(cells):
    cell = cells[9]
    assert cell.error is not None and cell.error.ename == "CancelledError"
    assert "timed out after 0.3 s" in cell.mime("text/plain")
    assert cells[11].stdout.split()[-1] == "True"


def test_kernel_loop_keeps_working(cells):
    assert cells[13].stdout.strip() == "42"  # a future made before the profiled cells still resolves


def test_bad_flag_is_one_line_usage_error(cells):
    assert cells[14].error is not None and cells[14].error.ename == "UsageError"
    assert "--threshold must be > 0" in cells[14].error.evalue


def test_last_expression_and_variables_behave_as_usual(cells):
    results = [o["data"]["text/plain"] for o in cells[15].outputs if o["output_type"] == "execute_result"]
    assert results == ["10"]
    assert cells[16].stdout.strip() == "5"
