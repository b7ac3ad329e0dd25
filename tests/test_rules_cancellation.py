"""Unit tests of the cancellation rule family (AEX3xx, kind cancelled-error-swallowed).

Every test asserts code, kind and line, or that the correct variant is quiet."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_paths, scan_source

CORPUS = Path(__file__).parent / "corpus"
FAMILY = ("AEX3",)
KIND = "cancelled-error-swallowed"


def hits(src: str) -> set[tuple[str, str, int]]:
    text = textwrap.dedent(src)
    compile(text, "mod.py", "exec")  # a test source that does not parse would pass vacuously
    report = scan_source(text, path="mod.py", notebook=False, module="mod", settings=Settings(select=FAMILY, cache=False))
    return {(f.code, f.kind, f.line) for f in report.findings}


# ---------------------------------------------------------------------------
# AEX301 except CancelledError


@pytest.mark.parametrize(
    "imports,clause",
    [
        ("import asyncio", "asyncio.CancelledError"),
        ("from asyncio import CancelledError as Stop", "Stop"),
        ("import asyncio.exceptions", "asyncio.exceptions.CancelledError"),
        ("import asyncio", "(ValueError, asyncio.CancelledError)"),
        ("import asyncio as aio", "aio.CancelledError"),
    ],
)
def test_except_cancelled_error_swallowed(imports, clause):
    src = f"""
    {imports}

    async def listener(inbox, handled):
        while True:
            try:
                msg = await inbox.get()
            except {clause}:
                continue
            handled.append(msg)
    """
    assert hits(src) == {("AEX301", KIND, 8)}


def test_except_cancelled_error_in_async_generator():
    src = """
    import asyncio

    async def ticks():
        while True:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass
            yield 1
    """
    assert hits(src) == {("AEX301", KIND, 8)}


@pytest.mark.parametrize(
    "body",
    [
        "raise",
        "raise RuntimeError('stopped') from None",
        "log.info('bye')\n                raise",
        "return",
        "break",
        "if flag:\n                    raise\n                continue",
        "error = exc",
        "errors.append(exc)",
    ],
)
def test_except_cancelled_error_that_propagates_or_leaves_is_fine(body):
    src = f"""
    import asyncio, logging
    log = logging.getLogger()

    async def listener(inbox, flag, errors):
        while True:
            try:
                await inbox.get()
            except asyncio.CancelledError as exc:
                {body}
    """
    assert hits(src) == set()


def test_except_exception_is_not_a_finding():
    src = """
    async def listener(inbox):
        while True:
            try:
                await inbox.get()
            except Exception:
                continue
    """
    assert hits(src) == set()


def test_cancel_then_await_idiom_is_fine():
    src = """
    import asyncio, contextlib

    async def stop(self, task):
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        print("stopped")
    """
    assert hits(src) == set()


def test_sync_code_is_not_checked():
    src = """
    import asyncio

    def result_or_none(fut):
        try:
            return fut.result()
        except asyncio.CancelledError:
            pass
        return None
    """
    assert hits(src) == set()


def test_handler_at_the_end_of_the_coroutine_is_fine():
    # the coroutine ends right after the clean-up: like a `return`
    src = """
    import asyncio

    async def shutdown_on_exit(workers):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            for w in workers:
                w.kill()
    """
    assert hits(src) == set()


# ---------------------------------------------------------------------------
# AEX302 except BaseException / bare except


def test_bare_except_with_foreign_noqa_still_reported():
    src = """
    async def heartbeat_reader(inbox):
        while True:
            try:
                item = await inbox.get()
            except:  # noqa: E722
                pass
    """
    assert hits(src) == {("AEX302", KIND, 6)}


def test_except_base_exception_swallowed():
    src = """
    async def reader(inbox, log):
        while True:
            try:
                await inbox.get()
            except BaseException:
                log.exception("oops")
    """
    assert hits(src) == {("AEX302", KIND, 6)}


def test_our_noqa_silences():
    src = """
    async def reader(inbox):
        while True:
            try:
                await inbox.get()
            except:  # noqa: AEX302
                pass
    """
    assert hits(src) == set()


_NO_AWAIT = """
import asyncio

async def f(x):
    while True:
        try:
            x.parse()
        except BaseException:
            pass
        await asyncio.sleep(1)
"""

_CANCEL_FIRST = """
import asyncio

async def f(inbox):
    while True:
        try:
            await inbox.get()
        except asyncio.CancelledError:
            raise
        except BaseException:
            pass
"""

_RERAISE = """
async def f(inbox, cleanup):
    while True:
        try:
            await inbox.get()
        except BaseException:
            cleanup()
            raise
"""


@pytest.mark.parametrize(
    "src",
    [_NO_AWAIT, _CANCEL_FIRST, _RERAISE],
    ids=["no-await-in-try", "cancelled-re-raised-first", "re-raise"],
)
def test_broad_except_quiet(src):
    assert hits(src) == set()


def test_broad_except_handing_exception_to_a_raising_helper_is_fine():
    src = """
    class Sock:
        def _convert_socket_error(self, exc):
            if isinstance(exc, OSError):
                raise RuntimeError() from exc
            raise exc

        def _log(self, exc):
            print(exc)

        async def receive(self):
            while True:
                try:
                    return await self._sock.recv(10)
                except BaseException as exc:
                    self._convert_socket_error(exc)

        async def send(self, data):
            while True:
                try:
                    await self._sock.send(data)
                except BaseException as exc:
                    self._log(exc)
    """
    assert hits(src) == {("AEX302", KIND, 22)}


def test_broad_except_helper_in_another_file(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("def reraise(exc):\n    raise exc\n\ndef note(exc):\n    print(exc)\n")
    (pkg / "io.py").write_text(
        textwrap.dedent(
            """
            from .errors import reraise, note

            async def a(s):
                while True:
                    try:
                        await s.recv()
                    except BaseException as e:
                        reraise(e)

            async def b(s):
                while True:
                    try:
                        await s.recv()
                    except BaseException as e:
                        note(e)
            """
        )
    )
    report = scan_paths([str(pkg)], Settings(select=FAMILY, cache=False), jobs=1)
    assert {(f.code, f.kind, Path(f.path).name, f.line) for f in report.findings} == {("AEX302", KIND, "io.py", 15)}


# ---------------------------------------------------------------------------
# AEX303 contextlib.suppress


def test_suppress_cancelled_error():
    src = """
    import asyncio
    from contextlib import suppress
    import contextlib

    async def worker(q):
        while True:
            with suppress(asyncio.CancelledError):
                await q.get()
            with contextlib.suppress(BaseException):
                await q.get()
            with suppress(ValueError):
                await q.get()
    """
    assert hits(src) == {("AEX303", KIND, 8), ("AEX303", KIND, 10)}


# ---------------------------------------------------------------------------
# corpus and real packages


def test_corpus_case_18():
    expected = json.loads((CORPUS / "expected.json").read_text())["18_cancelled_error_swallowed.py"]
    report = scan_paths([str(CORPUS / "18_cancelled_error_swallowed.py")], Settings(select=FAMILY, cache=False), jobs=1)
    got = {(f.kind, f.line) for f in report.findings}
    for finding in expected["findings"]:
        assert any((finding["kind"], line) in got for line in finding["lines"]), (finding, got)
    assert got == {(KIND, 20), (KIND, 34)}


@pytest.mark.parametrize("package", ["starlette", "httpx", "anyio", "aiohttp"])
def test_real_packages_scan_without_crash(package):
    import importlib.util
    import os

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin
    report = scan_paths([os.path.dirname(spec.origin)], Settings(select=FAMILY, cache=False), jobs=1)
    assert report.errors == []
    assert report.files_scanned
    # these libraries handle cancellation deliberately: nothing to report
    assert [(f.path, f.line) for f in report.findings] == []


def test_noreturn_helper_and_stored_exception_are_fine():
    src = """
    from typing import NoReturn

    def fail(exc) -> NoReturn:
        chain(exc)

    class Nursery:
        def _add_exc(self, exc):
            self.errors.append(exc)

        async def checkpoint(self, s):
            try:
                await s.checkpoint()
            except BaseException as exc:
                self._add_exc(exc)
            try:
                await s.checkpoint()
            except BaseException as exc:
                fail(exc)
            await s.done()
    """
    assert hits(src) == set()
