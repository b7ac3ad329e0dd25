"""``%async_scan`` / ``%%async_scan`` in a real ipykernel, driven by nbclient.

Each test runs one notebook (one kernel start); cells print JSON that the test
reads back, so every assertion is on code AND location.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from kernel_helpers import CellResult, run_cells

kernel = pytest.mark.kernel

DUMP = "import json; print(json.dumps([[f.code, f.location] for f in {name}]))"


def _dump(name: str = "_async_scan") -> str:
    return DUMP.format(name=name)


def _json(cell: CellResult) -> object:
    assert cell.error is None, cell.error
    return json.loads(cell.stdout.strip().splitlines()[-1])


def _usage_error(cell: CellResult, fragment: str) -> None:
    assert cell.error is not None, f"no error from {cell.source!r}"
    assert cell.error.ename == "UsageError", cell.error
    assert "\n" not in cell.error.evalue.strip()
    assert fragment in cell.error.evalue, cell.error.evalue


@kernel
def test_cell_and_session_scans_and_bad_input(tmp_path: Path) -> None:
    cells = run_cells(
        [
            "%load_ext async_expert_ext",  # In[1]
            "import asyncio, time\nimport requests\nsess = requests.Session()",  # In[2]
            "def helper():\n    time.sleep(0.001)\n",  # In[3]
            # In[4]: line 1 is the magic line, so the body's lines are 2..8
            ("%%async_scan\n"
            "import pathlib\n"
            "pathlib.Path('ran.txt').write_text('the body ran')\n"
            "ran_marker = 1\n"
            "async def fetch():\n"
            "    time.sleep(1)\n"
            "    sess.get('http://example.invalid')\n"
            "    helper()\n"
            "    await asyncio.sleep(0)\n"),
            _dump(),  # In[5]
            "import os; print(json.dumps([os.path.exists('ran.txt'), 'ran_marker' in dir(), 'fetch' in dir()]))",  # In[6]
            "async def tick():\n    !echo hi\n    %time x = 1\n    time.sleep(2)\n    await asyncio.sleep(0)\n",  # In[7]
            "%async_scan -o session_report --quiet",  # In[8]
            _dump("session_report") + "; print(json.dumps(session_report.files_scanned))",  # In[9]
            "%async_scan nosuch_thing_xyz",  # In[10]
            "%async_scan --severity loud",  # In[11]
            "%async_scan --bogus-flag",  # In[12]
            "%async_scan -o 1abc",  # In[13]
            "%async_scan --select NOPE999",  # In[14]
            "%%async_scan tick\nx = 1\n",  # In[15]
            "print(json.dumps([type(sess).__name__, helper.__name__, session_report is _async_scan]))",  # In[16]
            "print(get_ipython().find_line_magic('async_scan').__doc__)",  # In[17]
        ],
        cwd=tmp_path,
    )
    assert [c.error for c in cells[:4]] == [None] * 4
    # the cell scan displays a report with text and html
    bundle = cells[3].bundles[-1]
    assert "text/html" in bundle and "AEX101" in cells[3].mime("text/plain")
    # time.sleep (seed: module imported in In[2]), Session.get (seed: instance type), and
    # helper() from In[3] reported at its call site through the link
    assert _json(cells[4]) == [["AEX101", "In[4]:6"], ["AEX102", "In[4]:7"], ["AEX120", "In[4]:8"]]
    # the body did not run: no file, no names
    assert not (tmp_path / "ran.txt").exists()
    assert _json(cells[5]) == [False, False, False]
    # the session scan: In[7] parses despite !shell and %magic lines; line numbers kept.
    # In[4] (a %%async_scan body that never ran) and In[8] (the scan itself) are skipped.
    lines = cells[8].stdout.strip().splitlines()
    assert json.loads(lines[0]) == [["AEX101", "In[7]:4"]]
    files = json.loads(lines[1])
    assert "In[4]" not in files and "In[8]" not in files and {"In[2]", "In[3]", "In[7]"} <= set(files)
    assert cells[7].bundles == []  # --quiet displays nothing
    _usage_error(cells[9], "no file, name or module called 'nosuch_thing_xyz'")
    _usage_error(cells[10], "loud")
    _usage_error(cells[11], "--bogus-flag")
    _usage_error(cells[12], "1abc")
    _usage_error(cells[13], "NOPE999")
    _usage_error(cells[14], "takes no target")
    # the kernel kept working and its namespace is intact after the bad cells
    assert _json(cells[15]) == ["Session", "helper", True]
    assert "--severity MIN" in cells[16].stdout and "%async_scan" in cells[16].stdout


@kernel
def test_paths_modules_names_and_apps(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(
        textwrap.dedent(
            """\
            import asyncio, time


            async def handler():
                time.sleep(1)
                await asyncio.sleep(0)

            class Service:
                async def run(self):
                    time.sleep(2)
                    block()
                    await asyncio.sleep(0)


            def block():
                time.sleep(3)
            """
        )
    )
    pkg = tmp_path / "pkg"
    (pkg / "skipme").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import asyncio, time\n\nasync def a():\n    time.sleep(1)\n    await asyncio.sleep(0)\n")
    (pkg / "skipme" / "c.py").write_text("import asyncio, time\n\nasync def c():\n    time.sleep(1)\n    await asyncio.sleep(0)\n")
    (tmp_path / "sidefx_mod.py").write_text(
        "import asyncio, pathlib, time\npathlib.Path('imported.txt').write_text('imported')\n\nasync def go():\n    time.sleep(1)\n    await asyncio.sleep(0)\n"
    )
    (tmp_path / "appmod.py").write_text(
        textwrap.dedent(
            """\
            import asyncio, time
            from fastapi import FastAPI

            app = FastAPI()


            @app.get("/")
            async def root():
                time.sleep(1)
                await asyncio.sleep(0)
                return {}
            """
        )
    )
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# notes"},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "import asyncio, time\n"},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "%%time\nasync def f():\n    time.sleep(1)\n    await asyncio.sleep(0)\n"},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    (tmp_path / "thing").mkdir()
    (tmp_path / "thing" / "t.py").write_text("import asyncio, time\nasync def t():\n    time.sleep(1)\n    await asyncio.sleep(0)\n")
    cells = run_cells(
        [
            "%load_ext async_expert_ext",  # In[1]
            "%async_scan -q svc.py\n" + _dump(),  # In[2]
            "%async_scan -q pkg/ --exclude skipme\n" + _dump(),  # In[3]
            "%async_scan -q pkg\n" + _dump(),  # In[4]
            "%async_scan -q nb.ipynb\n" + _dump(),  # In[5]
            "%async_scan -q sidefx_mod\n" + _dump() + "; import sys; print(json.dumps('sidefx_mod' in sys.modules))",  # In[6]
            "from svc import handler, Service\n%async_scan -q handler\n" + _dump(),  # In[7]
            "%async_scan -q Service\n" + _dump(),  # In[8]
            "%async_scan -q Service.run\n" + _dump(),  # In[9]
            "import asyncio\nasync def cellfn():\n    time.sleep(1)\n    await asyncio.sleep(0)\n",  # In[10]
            "import time\n%async_scan -q cellfn\n" + _dump(),  # In[11]
            "from appmod import app\n%async_scan -q app\n" + _dump(),  # In[12]
            "thing = 42\n%async_scan -q thing\n" + _dump(),  # In[13]: the folder wins over the name
            "import svc as svc_module\n%async_scan -q svc_module\n" + _dump(),  # In[14]
            "%async_scan -q svc.py pkg/a.py\n" + _dump(),  # In[15]
        ],
        cwd=tmp_path,
    )
    assert cells[0].error is None
    assert _json(cells[1]) == [["AEX101", "svc.py:5"], ["AEX101", "svc.py:10"], ["AEX120", "svc.py:11"]]
    assert _json(cells[2]) == [["AEX101", "pkg/a.py:4"]]
    assert _json(cells[3]) == [["AEX101", "pkg/a.py:4"], ["AEX101", "pkg/skipme/c.py:4"]]
    assert _json(cells[4]) == [["AEX101", "nb.ipynb[cell 2]:3"]]
    # a dotted module is found, not imported: its top-level side effect did not happen
    out = cells[5].stdout.strip().splitlines()
    assert json.loads(out[0]) == [["AEX101", "sidefx_mod.py:5"]]
    assert json.loads(out[1]) is False
    assert not (tmp_path / "imported.txt").exists()
    # a function: only findings within its lines
    assert _json(cells[6]) == [["AEX101", "svc.py:5"]]
    # a class: its method's blocking call and the interprocedural call site inside it
    assert _json(cells[7]) == [["AEX101", "svc.py:10"], ["AEX120", "svc.py:11"]]
    assert _json(cells[8]) == [["AEX101", "svc.py:10"], ["AEX120", "svc.py:11"]]
    # a function defined in a notebook cell: found in the session history
    assert _json(cells[10]) == [["AEX101", "In[10]:3"]]
    # a FastAPI app object: the module that defines it
    assert _json(cells[11]) == [["AEX101", "appmod.py:9"]]
    assert _json(cells[12]) == [["AEX101", "thing/t.py:3"]]
    assert _json(cells[13]) == [["AEX101", "svc.py:5"], ["AEX101", "svc.py:10"], ["AEX120", "svc.py:11"]]
    assert _json(cells[14]) == [["AEX101", "pkg/a.py:4"], ["AEX101", "svc.py:5"], ["AEX101", "svc.py:10"], ["AEX120", "svc.py:11"]]


@kernel
def test_load_twice_and_reload(tmp_path: Path) -> None:
    state = (
        "from async_expert_ext.magics.options import AsyncExpert\n"
        "ip = get_ipython()\n"
        "print(json.dumps([sum(isinstance(c, AsyncExpert) for c in ip.configurables),"
        " {k: len(v) for k, v in ip.events.callbacks.items()},"
        " len(ip.input_transformers_post), len(ip.input_transformer_manager.cleanup_transforms),"
        " len(ip.input_transformer_manager.line_transforms),"
        " 'async_scan' in ip.magics_manager.magics['line'], 'async_scan' in ip.magics_manager.magics['cell']]))"
    )
    cells = run_cells(
        [
            "import json\n%load_ext async_expert_ext",
            state,
            "%load_ext async_expert_ext",
            "%reload_ext async_expert_ext",
            "%reload_ext async_expert_ext",
            state,
            "%config AsyncExpert.ignore = ['AEX102']",
            "%%async_scan -q\nimport asyncio, time, requests\nasync def f():\n    time.sleep(1)\n    requests.get('u')\n    await asyncio.sleep(0)\n",
            _dump(),
        ],
        cwd=tmp_path,
    )
    assert all(c.error is None for c in cells), [c.error for c in cells]
    first, last = _json(cells[1]), _json(cells[5])
    assert first == last
    assert first[0] == 1 and first[-2:] == [True, True]
    # %config set after two reloads still reaches the (single) configurable
    assert _json(cells[8]) == [["AEX101", "In[8]:4"]]


@kernel
def test_namespace_seeds_quoting_and_memory_flags(tmp_path: Path) -> None:
    cells = run_cells(
        [
            "%load_ext async_expert_ext",  # In[1]
            # names the history cannot explain: only the live namespace knows them
            ("import asyncio, threading\nexec('import time as tt; import requests as rq')\n"
            "globals()['client'] = rq.Session()\nglobals()['nap'] = tt.sleep\nglobals()['lk'] = threading.Lock()"),  # In[2]
            ("%%async_scan -q\nasync def f():\n    tt.sleep(1)\n    client.post('http://example.invalid')\n"
            "    nap(2)\n    lk.acquire()\n    await asyncio.sleep(0)\n"),  # In[3]
            _dump(),  # In[4]
            "%%async_scan -q --memory 'mem dir/mem.md'\nimport asyncio\nasync def g():\n    await asyncio.sleep(0)\n",  # In[5]
            "%%async_scan -q --no-memory --memory other.md\nx = 1\n",  # In[6]
            "%async_scan -q --select 'AEX101, AEX102' -o picked",  # In[7]
            _dump("picked"),  # In[8]
        ],
        cwd=tmp_path,
    )
    assert all(c.error is None for c in cells), [(c.source, c.error) for c in cells if c.error]
    assert _json(cells[3]) == [["AEX101", "In[3]:3"], ["AEX102", "In[3]:4"], ["AEX101", "In[3]:5"], ["AEX109", "In[3]:6"]]
    memory = tmp_path / "mem dir" / "mem.md"
    assert memory.is_file() and "In[5]" in memory.read_text()
    assert not (tmp_path / "other.md").exists()
    # the session scan: the history cannot resolve tt/client/nap, the namespace can
    assert _json(cells[7]) == []  # In[3] never ran, In[2] has no coroutine


# -- helpers, without a kernel -----------------------------------------------------
def test_namespace_seed_from_live_objects() -> None:
    import functools
    import os
    import socket
    import threading
    import time as t

    import requests

    from async_expert_ext.magics.scan import namespace_seed

    class Local:
        pass

    sess = requests.Session()
    sock = socket.socket()
    fh = open(os.devnull)  # noqa: SIM115 - a live file object for the seed
    try:
        seed = namespace_seed(
            {
                "t": t,
                "nap": t.sleep,
                "system": os.system,
                "rget": requests.get,
                "fetch": sess.get,
                "part": functools.partial(t.sleep, 1),
                "Session": requests.Session,
                "sess": sess,
                "sock": sock,
                "lock": threading.Lock(),
                "rlock": threading.RLock(),
                "ev": threading.Event(),
                "fh": fh,
                "n": 3,
                "local": Local(),
                "_hidden": t,
                "In": [],
            }
        )
    finally:
        sock.close()
        fh.close()
    assert seed["aliases"] == {
        "t": "time",
        "nap": "time.sleep",
        "system": "os.system",
        "rget": "requests.get",
        "fetch": "requests.Session.get",
        "part": "time.sleep",
        "Session": "requests.Session",
    }
    types = seed["types"]
    assert types["sess"] == "requests.Session" and types["sock"] == "socket.socket"
    assert types["lock"] == types["rlock"] == "threading.Lock" and types["ev"] == "threading.Event"
    assert types["fh"] == "io.File"
    assert "n" not in types and "local" not in types  # builtins and function-local classes carry nothing
    assert "_hidden" not in seed["aliases"] and "In" not in seed["aliases"]


def test_cell_python_keeps_line_numbers() -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    from async_expert_ext.magics.scan import cell_python

    tm = TransformerManager().transform_cell
    raw = "\n\nimport os\n!ls\nfiles = !ls\n%time x = 1\nos?\nasync def f():\n    await x\n"
    out = cell_python(raw, tm)
    assert out is not None
    lines = out.split("\n")
    assert lines[2] == "import os" and "system" in lines[3] and "getoutput" in lines[4] and lines[7] == "async def f():"
    assert cell_python("%%time\nx = 1\n", tm) == "\nx = 1\n"
    assert cell_python("%%bash\nls\n", tm) is None
    assert cell_python("%%async_scan\nx = 1\n", tm) is None
    assert cell_python("%time x = 1\ny = 2", None) == "pass\ny = 2"


def test_resolve_target_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from async_expert_ext.errors import TargetNotFound
    from async_expert_ext.magics.scan import resolve_target

    monkeypatch.chdir(tmp_path)
    (tmp_path / "json").mkdir()
    ns = {"json": 1, "obj": type("O", (), {"attr": "value"})()}
    assert resolve_target("json", ns) == ("path", "json")  # an existing path first
    (tmp_path / "json").rmdir()
    assert resolve_target("json", ns) == ("object", 1)  # then the namespace
    assert resolve_target("obj.attr", ns) == ("object", "value")
    assert resolve_target("json", {}) == ("module", "json")  # then a module
    with pytest.raises(TargetNotFound, match="no file, name or module called 'nope_xyz'"):
        resolve_target("nope_xyz", ns)
    with pytest.raises(TargetNotFound, match="no file, name or module called 'obj.missing'"):
        resolve_target("obj.missing", ns)
