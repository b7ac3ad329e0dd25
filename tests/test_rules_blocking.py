"""blocking-call-in-async rules (AEX101-AEX111, AEX120): positives, negatives and
name resolution (aliases, constructors, annotations) and the interprocedural linker."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_paths, scan_source


def scan(src: str, **settings):
    return scan_source(textwrap.dedent(src), path="mod.py", notebook=False, module="mod", settings=Settings(cache=False).merged(**settings))


def hits(report, code: str | None = None) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in report.findings if f.kind == "blocking-call-in-async" and (code is None or f.code == code)]


POSITIVE = [
    ("AEX101", "import time\nasync def f():\n    time.sleep(1)\n", 3),
    ("AEX101", "import time as t\nasync def f():\n    t.sleep(1)\n", 3),
    ("AEX101", "from time import sleep as nap\nasync def f():\n    nap(1)\n", 3),
    ("AEX101", "async def f():\n    import time\n    time.sleep(1)\n", 3),
    ("AEX101", "import time\ns = time.sleep\nasync def f():\n    s(1)\n", 4),
    ("AEX101", "import time\nasync def f(xs):\n    return [time.sleep(x) for x in xs]\n", 3),
    ("AEX102", "import requests\nasync def f(u):\n    return requests.get(u)\n", 3),
    ("AEX102", "import requests\nasync def f(u):\n    s = requests.Session()\n    return s.post(u)\n", 4),
    ("AEX102", "import requests\nasync def f(u):\n    with requests.Session() as s:\n        return s.get(u)\n", 4),
    ("AEX102", "import requests\nasync def f(s: requests.Session, u):\n    return s.get(u)\n", 3),
    ("AEX102", "import httpx\nasync def f(u):\n    return httpx.get(u)\n", 3),
    ("AEX102", "import httpx\nasync def f(u):\n    with httpx.Client() as c:\n        return c.get(u)\n", 4),
    ("AEX102", "from urllib.request import urlopen\nasync def f(u):\n    return urlopen(u).read()\n", 3),
    ("AEX102", "import urllib3\nasync def f(u):\n    pm = urllib3.PoolManager()\n    return pm.request('GET', u)\n", 4),
    ("AEX103", "import subprocess\nasync def f():\n    subprocess.run(['ls'])\n", 3),
    ("AEX103", "import os\nasync def f():\n    os.system('ls')\n", 3),
    ("AEX103", "import os\nasync def f(p):\n    os.waitpid(p, 0)\n", 3),
    ("AEX103", "import subprocess\nasync def f():\n    p = subprocess.Popen(['ls'])\n    p.communicate()\n", 4),
    ("AEX103", "from subprocess import Popen\nasync def f():\n    with Popen(['ls']) as p:\n        p.wait()\n", 4),
    ("AEX104", "async def f(p):\n    with open(p) as fh:\n        return fh.read()\n", 2),
    ("AEX104", "async def f(p):\n    fh = open(p)\n    data = fh.read()\n", 3),
    ("AEX104", "from pathlib import Path\nasync def f(p):\n    return Path(p).read_text()\n", 3),
    ("AEX104", "from pathlib import Path\nasync def f(p: Path):\n    return list(p.glob('*'))\n", 3),
    ("AEX105", "import os\nasync def f(p):\n    return os.path.exists(p)\n", 3),
    ("AEX106", "async def f():\n    return input('> ')\n", 2),
    ("AEX107", "import socket\nasync def f(h):\n    s = socket.socket()\n    s.connect((h, 80))\n", 4),
    ("AEX107", "import socket\nasync def f(h):\n    s = socket.create_connection((h, 80))\n    return s.recv(10)\n", 3),
    ("AEX108", "import sqlite3\nasync def f():\n    conn = sqlite3.connect('x.db')\n    return conn.execute('select 1').fetchall()\n", 4),
    ("AEX108", "import sqlite3\nasync def f(conn: sqlite3.Connection):\n    cur = conn.cursor()\n    cur.execute('select 1')\n", 3),
    ("AEX108", "import psycopg2\nasync def f():\n    conn = psycopg2.connect('')\n    cur = conn.cursor()\n    cur.execute('select 1')\n", 5),
    ("AEX108", "import redis\nr = redis.Redis()\nasync def f():\n    return r.get('k')\n", 4),
    ("AEX108", "import pymongo\nclient = pymongo.MongoClient()\nasync def f():\n    return client.shop.orders.find_one({})\n", 4),
    ("AEX108", "from sqlalchemy.orm import Session\nasync def f(db: Session):\n    return db.execute('select 1')\n", 3),
    ("AEX109", "import threading\nlock = threading.Lock()\nasync def f():\n    lock.acquire()\n", 4),
    ("AEX109", "import threading\nasync def f(ev: threading.Event):\n    ev.wait()\n", 3),
    ("AEX109", "import queue\nasync def f(q: queue.Queue):\n    return q.get()\n", 3),
    ("AEX109", "import threading\nasync def f(t: threading.Thread):\n    t.join()\n", 3),
    ("AEX110", "from concurrent.futures import ThreadPoolExecutor\nasync def f(x):\n    pool = ThreadPoolExecutor()\n    fut = pool.submit(abs, x)\n    return fut.result()\n", 5),
    ("AEX110", "import concurrent.futures as cf\nasync def f(fs):\n    cf.wait(fs)\n", 3),
]


@pytest.mark.parametrize("code,src,line", POSITIVE)
def test_blocking_positive(code: str, src: str, line: int) -> None:
    report = scan(src)
    assert (code, line) in hits(report), hits(report)


NEGATIVE = [
    # sync code, handed-off code and references are quiet
    "import time\ndef f():\n    time.sleep(1)\n",
    "import time, asyncio\nasync def f():\n    await asyncio.to_thread(time.sleep, 1)\n",
    "import time, asyncio\nasync def f():\n    await asyncio.to_thread(lambda: time.sleep(1))\n",
    "import time, asyncio\nasync def f():\n    def work():\n        time.sleep(1)\n    await asyncio.get_running_loop().run_in_executor(None, work)\n",
    "import requests, asyncio\nasync def f(u):\n    loop = asyncio.get_running_loop()\n    return await loop.run_in_executor(None, requests.get, u)\n",
    # awaited calls are async even when the name looks blocking
    "import httpx\nasync def f(u):\n    async with httpx.AsyncClient() as c:\n        return await c.get(u)\n",
    "import aiohttp\nasync def f(u):\n    async with aiohttp.ClientSession() as s:\n        async with s.get(u) as r:\n            return await r.read()\n",
    # a sync def endpoint runs in the threadpool
    "import time\nfrom fastapi import FastAPI\napp = FastAPI()\n@app.get('/x')\ndef x():\n    time.sleep(1)\n",
    # non-blocking variants
    "import queue\nasync def f(q: queue.Queue):\n    return q.get_nowait()\n",
    "import queue\nasync def f(q: queue.Queue):\n    return q.get(block=False)\n",
    "import threading\nlock = threading.Lock()\nasync def f():\n    return lock.acquire(blocking=False)\n",
    "import asyncio\nasync def f(q: asyncio.Queue):\n    return await q.get()\n",
    # a local name that shadows a module
    "async def f(time):\n    time.sleep(1)\n",
    # a sync generator function call only creates the generator
    "import time\ndef gen():\n    time.sleep(1)\n    yield 1\nasync def f():\n    g = gen()\n    return g\n",
]


@pytest.mark.parametrize("src", NEGATIVE)
def test_blocking_negative(src: str) -> None:
    report = scan(src)
    assert hits(report) == [], [(f.code, f.line, f.message) for f in report.findings]


def test_interprocedural_chain_in_one_file() -> None:
    report = scan(
        """
        import time

        def inner():
            time.sleep(1)

        def helper():
            inner()

        class Store:
            def save(self):
                helper()

            async def handler(self):
                self.save()
        """
    )
    found = [f for f in report.findings if f.code == "AEX120"]
    assert [(f.line, f.symbol) for f in found] == [(15, "Store.handler")]
    chain = found[0].call_chain
    assert "time.sleep" in chain[-1] and "mod.py:5" in chain[-1]
    assert len(chain) == 4  # call site, save -> helper, helper -> inner, inner's sleep


def test_interprocedural_stops_at_async_and_handoff() -> None:
    report = scan(
        """
        import asyncio, time

        def blocking():
            time.sleep(1)

        async def ok():
            await asyncio.to_thread(blocking)
            asyncio.get_running_loop().run_in_executor(None, blocking)
        """
    )
    assert hits(report) == []


def test_interprocedural_across_package_files(tmp_path: Path) -> None:
    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .db import load_rows\n")
    (pkg / "db.py").write_text("import sqlite3\n\ndef load_rows():\n    conn = sqlite3.connect('x')\n    return conn.execute('select 1').fetchall()\n")
    (pkg / "api.py").write_text("from . import load_rows\nfrom .db import load_rows as lr\n\nasync def list_rows():\n    a = load_rows()\n    b = lr()\n    return a, b\n")
    report = scan_paths([str(pkg)], Settings(cache=False))
    found = sorted((f.path.rsplit("/", 1)[-1], f.line) for f in report.findings if f.code == "AEX120")
    assert found == [("api.py", 5), ("api.py", 6)]


def test_blocking_sync_generator_iterated_in_coroutine() -> None:
    report = scan(
        """
        import queue

        def tokens(q: queue.Queue):
            while True:
                yield q.get()

        async def stream(q):
            for t in tokens(q):
                yield t
        """
    )
    assert ("AEX120", 9) in hits(report)


def test_extra_blocking_setting() -> None:
    src = "import mylib\nasync def f():\n    mylib.fetch_sync()\n"
    assert hits(scan(src)) == []
    assert hits(scan(src, extra_blocking=["mylib.fetch_sync"])) == [("AEX111", 3)]


def test_noqa_and_ignore_comments() -> None:
    src = (
        "import time\n"
        "async def f():\n"
        "    time.sleep(1)  # noqa: AEX101\n"
        "    time.sleep(2)  # noqa\n"
        "    time.sleep(3)  # async-expert: ignore[blocking-call-in-async]\n"
        "    time.sleep(4)  # noqa: E501\n"
        "    time.sleep(5)  # async-expert: ignore[never-awaited]\n"
    )
    assert hits(scan(src)) == [("AEX101", 6), ("AEX101", 7)]


def test_notebook_top_level_await_cell_counts_as_coroutine() -> None:
    cell = "import time\nawait asyncio.sleep(0)\ntime.sleep(1)\n"
    report = scan_source(cell, path="In[3]", settings=Settings(cache=False))
    assert [(f.code, f.location) for f in report.findings if f.code == "AEX101"] == [("AEX101", "In[3]:3")]


def test_select_ignore_and_severity_filters() -> None:
    src = "import time, os\nasync def f(p):\n    time.sleep(1)\n    os.path.exists(p)\n"
    assert {c for c, _ in hits(scan(src))} == {"AEX101", "AEX105"}
    assert {c for c, _ in hits(scan(src, select=["AEX105"]))} == {"AEX105"}
    assert {c for c, _ in hits(scan(src, ignore=["AEX1"]))} == set()
    assert {c for c, _ in hits(scan(src, min_severity="warning"))} == {"AEX101"}
    assert {c for c, _ in hits(scan(src, rule_severity={"AEX105": "critical"}, min_severity="critical"))} == {"AEX101", "AEX105"}


def test_rule_severity_override_applies_to_linked_findings() -> None:
    """AEX120 is made by the linker, outside any rule instance: the override still applies."""
    src = "import time\ndef helper():\n    time.sleep(1)\nasync def f():\n    helper()\n"
    default = scan(src)
    assert [(f.code, f.severity.value) for f in default.findings if f.code == "AEX120"] == [("AEX120", "critical")]
    by_code = scan(src, rule_severity={"AEX120": "info"})
    assert [(f.code, f.severity.value) for f in by_code.findings if f.code == "AEX120"] == [("AEX120", "info")]
    by_kind = scan(src, rule_severity={"blocking-call-in-async": "warning"}, min_severity="warning")
    assert [(f.code, f.severity.value) for f in by_kind.findings if f.code == "AEX120"] == [("AEX120", "warning")]


def test_cache_key_changes_with_the_scanner_code() -> None:
    from async_expert_ext.scan import runner

    sig = runner._rules_signature(runner.enabled_rules(Settings()), Settings())
    assert runner._scanner_code_hash() in sig and len(runner._scanner_code_hash()) == 16


def test_non_blocking_socket_calls_are_not_blocking() -> None:
    """anyio's pattern: setblocking(False), then connect/accept inside `except BlockingIOError`."""
    src = (
        "import socket\n"
        "async def connect_unix(path):\n"
        "    raw = socket.socket(socket.AF_UNIX)\n"
        "    raw.setblocking(False)\n"
        "    try:\n"
        "        raw.connect(path)\n"
        "    except BlockingIOError:\n"
        "        pass\n"
        "async def still_blocking(host):\n"
        "    s = socket.socket()\n"
        "    s.connect((host, 80))\n"
        "async def accept_loop(listener: socket.socket):\n"
        "    while True:\n"
        "        try:\n"
        "            client, _ = listener.accept()\n"
        "        except BlockingIOError:\n"
        "            await wait_readable(listener)\n"
    )
    assert hits(scan(src), "AEX107") == [("AEX107", 11)]


def test_property_getter_that_blocks_is_reported_where_it_is_read() -> None:
    report = scan(
        """
        import json
        from functools import cached_property

        class Settings:
            def __init__(self, path):
                self.path = path

            @property
            def data(self):
                with open(self.path) as fh:
                    return json.load(fh)

            @cached_property
            def cheap(self):
                return 1

            async def reload(self):
                return self.data

        async def handler(s: Settings):
            value = s.data
            s.data2 = 1
            return value, s.cheap
        """
    )
    found = sorted((f.code, f.line) for f in report.findings if f.code == "AEX120")
    assert found == [("AEX120", 19), ("AEX120", 22)]
    assert all("reading property `data`" in f.message for f in report.findings if f.code == "AEX120")
