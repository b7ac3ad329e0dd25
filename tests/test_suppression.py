"""Suppression comments: ``# noqa[: CODES]`` and ``# async-expert: ignore[kinds]``.

Every case scans the same two blocking calls and checks which (code, line) pairs
survive, so a comment that silences too much or too little fails.
"""
from __future__ import annotations

import textwrap

import pytest

from async_expert_ext.config import Settings
from async_expert_ext.scan.runner import scan_cells, scan_paths, scan_source


def _found(src: str, **kw: object) -> list[tuple[str, int]]:
    report = scan_source(textwrap.dedent(src), path="mod.py", notebook=False, **kw)  # type: ignore[arg-type]
    return sorted((f.code, f.line) for f in report)


def _two_calls(comment: str) -> str:
    return (
        "import asyncio, time, requests\n"
        "async def f():\n"
        f"    time.sleep(1){comment}\n"
        "    requests.get('http://example.invalid')\n"
        "    await asyncio.sleep(0)\n"
    )


BOTH = [("AEX101", 3), ("AEX102", 4)]
ONLY_HTTP = [("AEX102", 4)]


def test_no_comment_reports_both() -> None:
    assert _found(_two_calls("")) == BOTH


@pytest.mark.parametrize(
    "comment",
    [
        "  # noqa: AEX101",
        "  # noqa:AEX101",
        "  # NOQA: aex101",
        "  # noqa",
        "  # noqa: E501, AEX101",
        "  # noqa: AEX1",  # a code prefix
        "  # async-expert: ignore[blocking-call-in-async]",
        "  # async-expert: ignore[AEX101]",
        "  # async-expert: ignore",
        "  # slow on purpose  # noqa: AEX101",
    ],
)
def test_comment_silences_only_its_line(comment: str) -> None:
    assert _found(_two_calls(comment)) == ONLY_HTTP


@pytest.mark.parametrize(
    "comment",
    [
        "  # noqa: E722",  # a flake8 code never silences an AEX finding
        "  # noqa: B006,E501",
        "  # noqa: AEX102",  # another of our codes
        "  # noqa: AEX2",  # a prefix of other codes
        "  # async-expert: ignore[never-awaited]",  # another kind
        "  # async-expert: ignore[]",
        "  # a comment mentioning noqa later",
    ],
)
def test_comment_that_does_not_match_keeps_the_finding(comment: str) -> None:
    assert _found(_two_calls(comment)) == BOTH


def test_suppression_on_the_last_line_of_a_multiline_call() -> None:
    src = """\
    import asyncio, requests
    async def f():
        requests.get(
            'http://example.invalid',
        )  # noqa: AEX102
        requests.get(
            'http://example.invalid',
        )
        await asyncio.sleep(0)
    """
    assert _found(src) == [("AEX102", 6)]


def test_interprocedural_finding_silenced_at_the_call_site() -> None:
    src = """\
    import asyncio, time
    def helper():
        time.sleep(1)
    async def a():
        helper()  # noqa: AEX120
        await asyncio.sleep(0)
    async def b():
        helper()
        await asyncio.sleep(0)
    """
    assert _found(src) == [("AEX120", 8)]


def test_suppression_in_notebook_cells_and_files(tmp_path) -> None:
    cells = [
        ("In[1]", "import asyncio, time\n"),
        ("In[2]", "async def f():\n    time.sleep(1)  # noqa: AEX101\n    time.sleep(2)\n    await asyncio.sleep(0)\n"),
    ]
    assert [(f.code, f.location) for f in scan_cells(cells)] == [("AEX101", "In[2]:3")]
    file = tmp_path / "m.py"
    file.write_text(_two_calls("  # async-expert: ignore[blocking-call-in-async]"))
    report = scan_paths([str(file)], Settings(cache=False))
    assert [(f.code, f.line) for f in report] == ONLY_HTTP


def test_ignore_comment_and_settings_combine() -> None:
    # the comment silences line 3, the setting the rest of the kind
    assert _found(_two_calls("  # noqa: AEX101"), settings=Settings(ignore=("AEX102",))) == []
