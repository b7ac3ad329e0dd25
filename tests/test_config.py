"""Settings: defaults, merging, ``[tool.async_expert]`` in pyproject.toml, and
``%config AsyncExpert.<option>`` (unit level and in a real kernel)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from async_expert_ext.config import Settings, find_project_root, load_pyproject
from async_expert_ext.errors import ConfigError
from async_expert_ext.model import Severity
from async_expert_ext.scan.runner import scan_source

SRC = (
    "import asyncio, time, requests, mylib\n"
    "async def f():\n"
    "    time.sleep(1)\n"
    "    requests.get('http://example.invalid')\n"
    "    mylib.fetch_sync()\n"
    "    await asyncio.sleep(0)\n"
)


def _found(settings: Settings) -> list[tuple[str, int, str]]:
    return sorted((f.code, f.line, f.severity.value) for f in scan_source(SRC, path="m.py", notebook=False, settings=settings))


# -- Settings.merged ---------------------------------------------------------
def test_defaults() -> None:
    s = Settings()
    assert (s.select, s.ignore, s.extra_blocking, s.exclude) == ((), (), (), ())
    assert s.min_severity is Severity.INFO and s.rule_severity == {} and s.cache is True


def test_merged_parses_and_skips_none() -> None:
    s = Settings().merged(
        select="AEX1, never-awaited  AEX3",
        ignore=["AEX105"],
        min_severity="WARNING",
        rule_severity={"AEX101": "info"},
        jobs="2",
        cache=None,
    )
    assert s.select == ("AEX1", "never-awaited", "AEX3")
    assert s.ignore == ("AEX105",)
    assert s.min_severity is Severity.WARNING
    assert s.rule_severity == {"AEX101": Severity.INFO}
    assert s.jobs == 2 and s.cache is True
    assert Settings().merged() == Settings()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"colour": "red"}, "unknown async_expert option 'colour'"),
        ({"min_severity": "loud"}, "loud"),
        ({"rule_severity": {"AEX101": "fatal"}}, "fatal"),
        ({"rule_severity": ["AEX101"]}, "rule_severity"),
        ({"jobs": "many"}, "jobs"),
    ],
)
def test_merged_errors(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings().merged(**overrides)


# -- pyproject.toml ----------------------------------------------------------
def _pyproject(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_load_pyproject_table(tmp_path: Path) -> None:
    _pyproject(
        tmp_path,
        """\
        [project]
        name = "demo"

        [tool.async_expert]
        select = ["AEX1"]
        ignore = ["AEX102"]
        extra-blocking = ["mylib.fetch_sync"]
        severity = "warning"
        exclude = ["tests/fixtures/*"]

        [tool.async_expert.rule_severity]
        AEX101 = "info"
        """,
    )
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    s = load_pyproject(sub)  # found upward from a subfolder
    assert s.select == ("AEX1",) and s.ignore == ("AEX102",)
    assert s.extra_blocking == ("mylib.fetch_sync",)
    assert s.min_severity is Severity.WARNING
    assert s.rule_severity == {"AEX101": Severity.INFO}
    assert s.exclude == ("tests/fixtures/*",)
    assert find_project_root(sub) == tmp_path.resolve()


def test_load_pyproject_applies_over_base_and_without_table(tmp_path: Path) -> None:
    _pyproject(tmp_path, "[tool.async_expert]\nignore = ['AEX105']\n")
    s = load_pyproject(tmp_path, base=Settings(select=("AEX1",)))
    assert s.select == ("AEX1",) and s.ignore == ("AEX105",)
    other = tmp_path / "other"
    other.mkdir()
    _pyproject(other, "[tool.ruff]\nline-length = 100\n")
    assert load_pyproject(other) == Settings()  # the nearest pyproject wins, even without a table


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("[tool.async_expert]\nselct = ['AEX1']\n", "unknown [tool.async_expert] key 'selct'"),
        ("[tool.async_expert]\nseverity = 'loud'\n", "loud"),
        ("[tool.async_expert\nselect = 1\n", "pyproject.toml"),
        ("[tool.async_expert.rule_severity]\nAEX101 = 'fatal'\n", "fatal"),
    ],
)
def test_load_pyproject_errors(tmp_path: Path, body: str, fragment: str) -> None:
    _pyproject(tmp_path, body)
    with pytest.raises(ConfigError) as exc:
        load_pyproject(tmp_path)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value).strip() or fragment == "pyproject.toml"


# -- the settings change what a scan reports ----------------------------------
def test_settings_drive_the_scan() -> None:
    assert _found(Settings()) == [("AEX101", 3, "critical"), ("AEX102", 4, "critical")]
    assert _found(Settings(extra_blocking=("mylib.fetch_sync",))) == [
        ("AEX101", 3, "critical"),
        ("AEX102", 4, "critical"),
        ("AEX111", 5, "critical"),
    ]
    assert _found(Settings(select=("AEX102",))) == [("AEX102", 4, "critical")]
    assert _found(Settings(ignore=("blocking-call-in-async",))) == []
    demoted = Settings().merged(rule_severity={"AEX101": "info"})
    assert _found(demoted) == [("AEX101", 3, "info"), ("AEX102", 4, "critical")]
    assert _found(demoted.merged(min_severity="warning")) == [("AEX102", 4, "critical")]


def test_current_settings_precedence(tmp_path: Path) -> None:
    """flags > %config (traitlets) > pyproject > defaults."""
    from async_expert_ext.magics.options import AsyncExpert, current_settings

    _pyproject(tmp_path, "[tool.async_expert]\nignore = ['AEX102']\nextra_blocking = ['mylib.fetch_sync']\n")
    AsyncExpert.clear_instance()
    try:
        s = current_settings(str(tmp_path))
        assert s.ignore == ("AEX102",) and s.extra_blocking == ("mylib.fetch_sync",)
        cfg = AsyncExpert.instance()
        cfg.ignore = ["AEX101"]
        cfg.rule_severity = {"AEX111": "warning"}
        s = current_settings(str(tmp_path))
        assert s.ignore == ("AEX101",) and s.extra_blocking == ("mylib.fetch_sync",)
        assert s.rule_severity == {"AEX111": Severity.WARNING}
        s = current_settings(str(tmp_path), ignore=["AEX111"])
        assert s.ignore == ("AEX111",)
        cfg.ignore = []  # an explicit empty list clears pyproject's
        assert current_settings(str(tmp_path)).ignore == ()
        cfg.severity = "loud"
        with pytest.raises(ConfigError):
            current_settings(str(tmp_path))
    finally:
        AsyncExpert.clear_instance()


# -- in a real kernel -----------------------------------------------------------
@pytest.mark.kernel
def test_config_and_pyproject_in_a_kernel(tmp_path: Path) -> None:
    from kernel_helpers import run_cells

    _pyproject(tmp_path, "[tool.async_expert]\nignore = ['AEX102']\nextra_blocking = ['mylib.fetch_sync']\n")
    scan = "%%async_scan -q\n" + SRC  # body lines are 2..6: sleep 4, get 5, fetch_sync 6
    dump = "import json; print(json.dumps([[f.code, f.location, f.severity.value] for f in _async_scan]))"
    cells = run_cells(
        [
            "%load_ext async_expert_ext",
            scan,
            dump,  # 2: pyproject
            "%config AsyncExpert.ignore = ['AEX101']",
            scan,
            dump,  # 5: %config ignore replaces pyproject's
            "%config AsyncExpert.select = ['AEX111']",
            scan,
            dump,  # 8: select
            "%config AsyncExpert.select = []\n%config AsyncExpert.ignore = []",
            "%config AsyncExpert.rule_severity = {'AEX101': 'info'}",
            scan,
            dump,  # 12: per-rule severity
            "%config AsyncExpert.severity = 'warning'",
            scan,
            dump,  # 15: minimum severity drops the demoted rule
            "%config AsyncExpert.extra_blocking = ['other.thing']",
            scan,
            dump,  # 18: extra_blocking from %config replaces pyproject's
            "%%async_scan -q --select AEX102\n" + SRC,
            dump,  # 20: a flag beats %config
            "%config AsyncExpert.severity = 'loud'",
            scan,  # 22: invalid %config value -> one-line UsageError
            "%config AsyncExpert.severity = 'info'\nopen('pyproject.toml', 'w').write('[tool.async_expert]\\nselct = 1\\n')",
            scan,  # 24: invalid pyproject -> one-line UsageError
            "import os; os.remove('pyproject.toml'); print(json.dumps(len(_async_scan.findings)))",  # 25: state kept
            "%%async_scan -q\nimport asyncio, time\nasync def g():\n    time.sleep(1)  # noqa: AEX101\n    time.sleep(2)  # noqa: E722\n    await asyncio.sleep(0)\n",
            dump,  # 27: suppression comments through the magic
        ],
        cwd=tmp_path,
    )

    def rows(i: int) -> list:
        assert cells[i].error is None, cells[i].error
        return json.loads(cells[i].stdout.strip().splitlines()[-1])

    assert all(c.error is None for c in cells[:22]), [(c.source, c.error) for c in cells[:22] if c.error]
    assert rows(2) == [["AEX101", "In[2]:4", "critical"], ["AEX111", "In[2]:6", "critical"]]
    assert rows(5) == [["AEX102", "In[5]:5", "critical"], ["AEX111", "In[5]:6", "critical"]]
    assert rows(8) == [["AEX111", "In[8]:6", "critical"]]
    assert rows(12) == [["AEX102", "In[12]:5", "critical"], ["AEX111", "In[12]:6", "critical"], ["AEX101", "In[12]:4", "info"]]
    assert rows(15) == [["AEX102", "In[15]:5", "critical"], ["AEX111", "In[15]:6", "critical"]]
    assert rows(18) == [["AEX102", "In[18]:5", "critical"]]
    assert rows(20) == [["AEX102", "In[20]:5", "critical"]]
    for i, fragment in ((22, "loud"), (24, "selct")):
        err = cells[i].error
        assert err is not None and err.ename == "UsageError" and fragment in err.evalue, (i, err)
    assert rows(25) == 1  # the report of cell 20 is still there
    assert rows(27) == [["AEX101", "In[27]:5", "info"]]  # rule_severity from cell 11 still applies
