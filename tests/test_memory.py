"""The memory file: entries, recall, concurrency, corruption, unwritable paths, rotation, CLI."""
from __future__ import annotations

import datetime as dt
import io
import json
import multiprocessing
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from async_expert_ext import memory as mem
from async_expert_ext.config import Settings
from async_expert_ext.model import Finding, LoopReport, ScanReport
from async_expert_ext.scan.runner import scan_paths

DAY1 = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.timezone.utc)
DAY2 = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.timezone.utc)
DAY3 = dt.datetime(2026, 11, 3, 8, 15, tzinfo=dt.timezone.utc)

APP_V1 = """\
import time
import requests

async def handler():
    time.sleep(1)
    return requests.get("https://example.com")
"""

# the same code with three lines inserted above: both findings move down by 3
APP_V2_MOVED = """\
import time
import requests

CONSTANT = 1
# a comment


async def handler():
    time.sleep(1)
    return requests.get("https://example.com")
"""

# time.sleep fixed, requests.get still there
APP_V3_FIXED = """\
import asyncio
import requests

async def handler():
    await asyncio.sleep(1)
    return requests.get("https://example.com")
"""


#: the rule families grow while this is written; these tests are about the memory file
ONLY_BLOCKING = Settings(select=("blocking-call-in-async",), cache=False)


def _scan(path: Path) -> ScanReport:
    # (not aex.scan: once async_expert_ext.scan the subpackage is imported it shadows that function)
    report = scan_paths([str(path)], ONLY_BLOCKING)
    report.target = str(path)
    return report


def _kinds_lines(report: ScanReport) -> list[tuple[str, int]]:
    return sorted((f.kind, f.line) for f in report.findings)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname='demo'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(mem.ENV_VAR, raising=False)
    return tmp_path


# ---------------------------------------------------------------------------
# path resolution
# ---------------------------------------------------------------------------


def test_default_path_is_under_the_project_root(project: Path) -> None:
    sub = project / "pkg" / "deep"
    sub.mkdir(parents=True)
    assert mem.resolve_memory_path(start=sub) == project / ".claude" / "sub_agents_memory.md"


def test_default_path_without_project_is_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mem.ENV_VAR, raising=False)
    bare = tmp_path / "bare"
    bare.mkdir()
    monkeypatch.chdir(bare)
    # tmp dirs have no pyproject/.git above them (pytest's base temp is under /tmp)
    assert mem.resolve_memory_path() == bare / ".claude" / "sub_agents_memory.md"


def test_path_precedence_and_off_switches(project: Path) -> None:
    s = Settings(memory_file="notes/mem.md")
    env = {mem.ENV_VAR: str(project / "env.md")}
    # flag / %config beats the environment, which beats pyproject, which beats the default
    assert mem.resolve_memory_path("flag.md", settings=s, environ=env) == project / "flag.md"
    assert mem.resolve_memory_path(None, settings=s, environ=env) == project / "env.md"
    assert mem.resolve_memory_path(None, settings=s, environ={}) == project / "notes" / "mem.md"
    assert mem.resolve_memory_path(None, settings=Settings(), environ={}) == project / ".claude" / "sub_agents_memory.md"
    # empty at the winning level: off
    assert mem.resolve_memory_path("", settings=s, environ=env) is None
    assert mem.resolve_memory_path(None, settings=s, environ={mem.ENV_VAR: ""}) is None
    assert mem.resolve_memory_path(None, settings=Settings(memory_file=""), environ={}) is None


def test_memory_off_writes_nothing(project: Path) -> None:
    (project / "app.py").write_text(APP_V1)
    res = mem.record_analysis(_scan(project / "app.py"), tool="async-expert scan", path="")
    assert res.status == "off" and res.path is None
    assert not (project / ".claude").exists()
    assert res.summary() == "memory: off"


# ---------------------------------------------------------------------------
# entries and recall
# ---------------------------------------------------------------------------


def test_entry_has_every_part_and_machine_readable_copy(project: Path) -> None:
    app = project / "app.py"
    app.write_text(APP_V1)
    report = _scan(app)
    assert _kinds_lines(report) == [("blocking-call-in-async", 5), ("blocking-call-in-async", 6)]
    res = mem.record_analysis(report, tool="async-expert scan", target="app.py", now=DAY1)
    path = project / ".claude" / "sub_agents_memory.md"
    assert res.status == "written" and res.path == path
    assert f"wrote entry to {path}" in res.summary()
    text = path.read_text()
    assert "## 2026-11-01 10:00:00 UTC · async-expert scan · `app.py` · 2 critical, 0 warning, 0 info" in text
    for heading in ("### Critical issues", "### Async pattern analysis", "### Verification plan"):
        assert heading in text
    assert "### Runtime measures" not in text  # static scan
    assert "`app.py:5` in `handler`" in text and "*(new)*" in text
    assert "| blocking-call-in-async | 2 | critical |" in text
    m = re.search(r"<!-- async-expert-data\n(.*?)\n-->", text, re.S)
    data = json.loads(m.group(1))
    assert data["tool"] == "async-expert scan" and data["time"] == "2026-11-01T10:00:00Z"
    assert data["counts"] == {"critical": 2, "warning": 0, "info": 0}
    assert sorted((d["kind"], d["line"], d["status"]) for d in data["findings"]) == [
        ("blocking-call-in-async", 5, "new"),
        ("blocking-call-in-async", 6, "new"),
    ]
    assert {d["fingerprint"] for d in data["findings"]} == {f.fingerprint for f in report.findings}


def test_recall_across_an_edit_that_moves_the_lines(project: Path) -> None:
    app = project / "app.py"
    app.write_text(APP_V1)
    first = _scan(app)
    mem.record_analysis(first, tool="async-expert scan", target="app.py", now=DAY1)
    app.write_text(APP_V2_MOVED)
    moved = _scan(app)
    assert _kinds_lines(moved) == [("blocking-call-in-async", 9), ("blocking-call-in-async", 10)]
    res = mem.record_analysis(moved, tool="%async_scan", target="app.py", now=DAY2)
    # same findings, recognised although their lines moved; not a "re-checked, unchanged" note
    assert res.status == "written"
    assert res.new == [] and res.fixed == []
    assert sorted(res.seen.values()) == ["2026-11-01", "2026-11-01"]
    for f in moved.findings:
        assert res.status_of(f) == "seen before (first 2026-11-01)"
    _, entries, warns = mem.read_memory(project / ".claude" / "sub_agents_memory.md")
    assert warns == []
    assert [e.tool for e in entries] == ["async-expert scan", "%async_scan"]
    assert sorted((d["line"], d["status"], d["first_seen"]) for d in entries[1].findings) == [
        (9, "seen", "2026-11-01"),
        (10, "seen", "2026-11-01"),
    ]
    assert "seen before, first 2026-11-01" in res.entry


def test_fixed_finding_is_reported_as_fixed(project: Path) -> None:
    app = project / "app.py"
    app.write_text(APP_V1)
    mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", now=DAY1)
    app.write_text(APP_V3_FIXED)
    fixed_report = _scan(app)
    assert _kinds_lines(fixed_report) == [("blocking-call-in-async", 6)]
    res = mem.record_analysis(fixed_report, tool="async-expert scan", target="app.py", now=DAY2)
    assert res.fixed_since == "2026-11-01 10:00:00 UTC"
    assert [(d["kind"], d["line"], d["snippet"]) for d in res.fixed] == [("blocking-call-in-async", 5, "time.sleep(1)")]
    assert "1 fixed since 2026-11-01 10:00:00 UTC" in res.summary()
    assert "### Fixed since 2026-11-01 10:00:00 UTC" in res.entry
    assert "`time.sleep(1)`" in res.entry.split("### Fixed since")[1]
    _, entries, _ = mem.read_memory(project / ".claude" / "sub_agents_memory.md")
    assert [d["line"] for d in entries[-1].fixed] == [5]
    # a scan of another target does not count as fixing this one
    other = project / "other.py"
    other.write_text("async def f():\n    pass\n")
    res2 = mem.record_analysis(_scan(other), tool="async-expert scan", target="other.py", now=DAY3)
    assert res2.fixed == [] and res2.previous is None


def test_unchanged_rerun_adds_one_line(project: Path) -> None:
    app = project / "app.py"
    app.write_text(APP_V1)
    mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", now=DAY1)
    path = project / ".claude" / "sub_agents_memory.md"
    before = path.read_text()
    # the same target named by the magic in a notebook: same analysis family, same file
    res = mem.record_analysis(_scan(app), tool="%async_scan", target=str(app), now=DAY2)
    after = path.read_text()
    assert res.status == "unchanged"
    assert after.startswith(before)
    added = after[len(before) :]
    assert added.count("\n") == 1
    assert added.startswith("- 2026-11-02 09:30:00 UTC · %async_scan · ")
    assert "re-checked, unchanged (2 critical, 0 warning, 0 info; same as 2026-11-01 10:00:00 UTC)" in added
    _, entries, warns = mem.read_memory(path)
    assert warns == []
    assert [(e.unchanged, len(e.findings)) for e in entries] == [(False, 2), (True, 2)]
    # a later fix is "fixed since" the re-check
    app.write_text(APP_V3_FIXED)
    res3 = mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", now=DAY3)
    assert res3.fixed_since == "2026-11-02 09:30:00 UTC" and len(res3.fixed) == 1


def test_two_unchanged_reruns_in_a_row_read_back_without_warnings(project: Path) -> None:
    app = project / "app.py"
    app.write_text(APP_V1)
    mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", now=DAY1)
    r2 = mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", now=DAY2)
    r3 = mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", now=DAY3)
    assert (r2.status, r3.status) == ("unchanged", "unchanged")
    _, entries, warns = mem.read_memory(project / ".claude" / "sub_agents_memory.md")
    assert warns == []
    assert [(e.unchanged, len(e.findings)) for e in entries] == [(False, 2), (True, 2), (True, 2)]


def test_identical_lines_in_one_function_are_counted_separately(project: Path) -> None:
    app = project / "twice.py"
    app.write_text("import time\n\nasync def f():\n    time.sleep(1)\n    time.sleep(1)\n")
    r1 = _scan(app)
    assert _kinds_lines(r1) == [("blocking-call-in-async", 4), ("blocking-call-in-async", 5)]
    assert r1.findings[0].fingerprint == r1.findings[1].fingerprint
    mem.record_analysis(r1, tool="scan", target="twice.py", now=DAY1)
    app.write_text("import time\n\nasync def f():\n    time.sleep(1)\n")
    res = mem.record_analysis(_scan(app), tool="scan", target="twice.py", now=DAY2)
    assert len(res.fixed) == 1 and res.fixed[0]["key"].endswith("~2")
    assert len(res.seen) == 1 and res.new == []


# ---------------------------------------------------------------------------
# concurrency: 8 processes x 10 scans into one file
# ---------------------------------------------------------------------------


def _worker(args: tuple[str, str, int, int]) -> list[str]:
    folder, mem_path, worker, count = args
    from async_expert_ext.config import Settings as S
    from async_expert_ext.memory import record_analysis
    from async_expert_ext.scan.runner import scan_paths as sp

    statuses = []
    for i in range(count):
        src = Path(folder) / f"w{worker}_{i}.py"
        # the blocking call sits on line 3 + i, so each file's finding line differs
        src.write_text("import time\n" + "\n" * (i + 1) + f"async def job_{worker}_{i}():\n    time.sleep({i})\n")
        report = sp([str(src)], S(select=("blocking-call-in-async",), cache=False))
        res = record_analysis(report, tool="async-expert scan", target=str(src), path=mem_path)
        statuses.append(res.status)
    return statuses


@pytest.mark.slow
def test_eight_processes_ten_scans_each_lose_nothing(tmp_path: Path) -> None:
    mem_path = tmp_path / "shared" / "memory.md"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        results = pool.map(_worker, [(str(tmp_path), str(mem_path), w, 10) for w in range(8)])
    assert results == [["written"] * 10] * 8
    _, entries, warns = mem.read_memory(mem_path)
    assert warns == []
    assert len(entries) == 80
    got = {}
    for e in entries:
        assert len(e.findings) == 1, e.target
        d = e.findings[0]
        got[Path(e.target).name] = (d["kind"], d["line"], d["symbol"])
    expected = {
        f"w{w}_{i}.py": ("blocking-call-in-async", i + 4, f"job_{w}_{i}") for w in range(8) for i in range(10)
    }
    assert got == expected
    text = mem_path.read_text()
    assert len(re.findall(r"^## \d{4}-\d\d-\d\d", text, re.M)) == 80
    assert not list(mem_path.parent.glob("*.tmp"))


# ---------------------------------------------------------------------------
# damaged files, unwritable paths
# ---------------------------------------------------------------------------


def test_corrupted_file_is_read_and_never_rewritten(project: Path) -> None:
    app = project / "app.py"
    app.write_text(APP_V1)
    path = project / ".claude" / "sub_agents_memory.md"
    mem.record_analysis(_scan(app), tool="scan", target="app.py", now=DAY1)
    other = project / "other.py"
    other.write_text("import time\nasync def g():\n    time.sleep(2)\n")
    mem.record_analysis(_scan(other), tool="scan", target="other.py", now=DAY2)
    text = path.read_text()
    # damage the first entry's JSON, hand-edit some prose, add a heading with no data
    damaged = text.replace('"tool":"scan","target":"app.py"', '"tool":"scan","target":"app.py', 1)
    assert damaged != text
    damaged = damaged.replace("### Critical issues", "### Critical issues\n\nMY NOTE: fixed on Monday?", 1)
    damaged += "\n## 2026-11-02 12:00:00 UTC · typed by hand\n\nsome notes\n"
    path.write_text(damaged)
    _, entries, warns = mem.read_memory(path)
    assert [e.target for e in entries] == ["other.py"]
    assert any("unparseable entry data" in w for w in warns)
    assert any("has no async-expert-data block" in w for w in warns)
    with pytest.warns(mem.MemoryWarning) as caught:
        res = mem.record_analysis(_scan(other), tool="scan", target="other.py", now=DAY3)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "unparseable entry data" in messages[0] and "has no async-expert-data block" in messages[1]
    assert res.warnings == messages
    assert res.status == "unchanged"
    after = path.read_text()
    assert after.startswith(damaged)  # the damaged part is kept byte for byte
    _, entries2, _ = mem.read_memory(path)
    assert [(e.target, e.unchanged) for e in entries2] == [("other.py", False), ("other.py", True)]


def test_invalid_utf8_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "m.md"
    path.write_bytes(b"# memory\n\xff\xfe garbage \x00\n")
    (tmp_path / "a.py").write_text(APP_V1)
    res = mem.record_analysis(_scan(tmp_path / "a.py"), tool="scan", path=path, now=DAY1)
    assert res.status == "written"
    assert path.read_bytes().startswith(b"# memory\n\xff\xfe garbage \x00\n")
    assert len(mem.read_memory(path)[1]) == 1


def test_temp_file_of_a_killed_writer_is_cleaned_and_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "m.md"
    (tmp_path / "a.py").write_text(APP_V1)
    mem.record_analysis(_scan(tmp_path / "a.py"), tool="scan", path=path, now=DAY1)
    before = path.read_bytes()
    stale = tmp_path / ".m.md.k1ll3d.tmp"
    stale.write_bytes(before[: len(before) // 2])  # what a writer killed mid-write leaves
    mem.record_analysis(_scan(tmp_path / "a.py"), tool="scan", path=path, now=DAY2)
    assert not stale.exists()
    assert path.read_bytes().startswith(before)


def test_unwritable_path_warns_and_returns(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file")
    (tmp_path / "a.py").write_text(APP_V1)
    report = _scan(tmp_path / "a.py")
    for bad in (blocker / "memory.md", Path("/proc/1/no-such-dir/memory.md")):
        with pytest.warns(mem.MemoryWarning, match="not written"):
            res = mem.record_analysis(report, tool="scan", path=bad, now=DAY1)
        assert res.status == "failed" and res.path == bad
        assert "not written" in res.summary()
        # recall still answers for the caller (everything is new)
        assert all(res.status_of(f) == "new" for f in report.findings)
    assert blocker.read_text() == "a regular file"


def test_lock_timeout_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from filelock import FileLock

    path = tmp_path / "m.md"
    (tmp_path / "a.py").write_text(APP_V1)
    monkeypatch.setattr(mem, "LOCK_TIMEOUT_S", 0.2)
    holder = FileLock(str(path) + ".lock")
    with holder:
        # a different process would block; in one process filelock is re-entrant per object,
        # so take the lock from a child process instead
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            status = pool.apply(_record_with_short_timeout, (str(tmp_path / "a.py"), str(path)))
    assert status == "failed"
    assert not path.exists()


def _record_with_short_timeout(src: str, path: str) -> str:
    import warnings as w

    from async_expert_ext import memory as m
    from async_expert_ext.config import Settings as S
    from async_expert_ext.scan.runner import scan_paths as sp

    m.LOCK_TIMEOUT_S = 0.2
    with w.catch_warnings():
        w.simplefilter("ignore")
        return m.record_analysis(sp([src], S(select=("blocking-call-in-async",), cache=False)), tool="scan", path=path).status


# ---------------------------------------------------------------------------
# redaction
# ---------------------------------------------------------------------------

REDACTION_CASES = [
    ('conn = psycopg2.connect("postgresql://admin:hunter2@db:5432/app")', "hunter2", 'postgresql://admin:***@db:5432/app'),
    ('r = requests.get(url, headers={"Authorization": "Bearer eyJhbGciOi.abc"})', "eyJhbGciOi", '"Authorization": "Bearer ***"'),
    ('headers = {"Authorization": f"Bearer {tok}"}', "NOTHING", 'f"Bearer {tok}"'),
    ("client.headers['authorization'] = 'Basic dXNlcjpwYXNz'", "dXNlcjpwYXNz", "'authorization'] = 'Basic ***'"),
    ('headers = {"Authorization": "abcdef0123456789"}', "abcdef0123456789", '"Authorization": "***"'),
    ("raw = 'GET / HTTP/1.1\\r\\nAuthorization: s3cr3tvalue\\r\\n'", "s3cr3tvalue", "Authorization: ***"),
    ('session.post(u, data={"password": "s3cr3t!"})', "s3cr3t!", '"password": "***"'),
    ("db = connect(user='bob', password='pa55word')", "pa55word", "password='***'"),
    ('API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"', "abcdefghijklmnop", 'API_KEY = "***"'),
    ('openai.api_key = os.environ["OPENAI_API_KEY"]', "NOTHING", 'os.environ["OPENAI_API_KEY"]'),
    ('call(token=get_token(), password=pw)', "NOTHING", "token=get_token(), password=pw"),
    ('x = "Server=db;Database=app;User Id=sa;Password=Xy9!zz;"', "Xy9!zz", "Password=***;"),
    ('aws = "AKIAIOSFODNN7EXAMPLE"', "AKIAIOSFODNN7EXAMPLE", 'aws = "***"'),
    ('gh = "ghp_0123456789abcdefghijABCDEFGHIJ012345"', "ghp_0123", 'gh = "***"'),
    ('redis.from_url("redis://:topsecret@cache:6379/0")', "topsecret", "redis://:***@cache"),
    ('git_url = "https://ghp_0123456789abcdefghij0123456789ab@github.com/x.git"', "0123456789abcdef", "https://***@github.com"),
    ('key = """-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"""', "MIIEpAIBAAKCAQEA", 'key = """***"""'),
    ("max_tokens = 100", "NOTHING", "max_tokens = 100"),
    ('client_secret: "abc123def"', "abc123def", 'client_secret: "***"'),
]


@pytest.mark.parametrize("text,secret,expected", REDACTION_CASES)
def test_redact(text: str, secret: str, expected: str) -> None:
    out = mem.redact(text)
    if secret != "NOTHING":
        assert secret not in out
    assert expected in out


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    src = tmp_path / "svc.py"
    src.write_text(
        "import time, requests\n\n"
        "async def handler():\n"
        '    requests.get("https://admin:hunter2@internal/api", headers={"Authorization": "Bearer tok_live_123456"})\n'
        '    time.sleep(1); password = "pa55word"\n'
    )
    report = _scan(src)
    assert _kinds_lines(report) == [("blocking-call-in-async", 4), ("blocking-call-in-async", 5)]
    assert "hunter2" in report.findings[0].snippet  # the report itself is not altered
    path = tmp_path / "m.md"
    mem.record_analysis(report, tool="scan", path=path, now=DAY1)
    text = path.read_text()
    for secret in ("hunter2", "tok_live_123456", "pa55word"):
        assert secret not in text
    assert "https://admin:***@internal/api" in text


# ---------------------------------------------------------------------------
# rotation
# ---------------------------------------------------------------------------


def test_rotation_moves_old_entries_to_a_dated_archive(tmp_path: Path) -> None:
    path = tmp_path / "m.md"
    recorded = []
    for i in range(12):
        src = tmp_path / f"f{i}.py"
        src.write_text(APP_V1)
        t = DAY1 + dt.timedelta(minutes=i)
        res = mem.record_analysis(_scan(src), tool="scan", target=f"f{i}.py", path=path, now=t, max_bytes=12_000)
        recorded.append((t, f"f{i}.py"))
        assert res.status == "written"
    archives = sorted(tmp_path.glob("m.archive-2026-11-01*.md"))
    assert archives, "no archive written"
    assert path.stat().st_size <= 12_000 + 6_000
    seen = set()
    for p in [*archives, path]:
        _, entries, warns = mem.read_memory(p)
        assert warns == []
        seen.update((e.time, e.target) for e in entries)
    assert seen == set(recorded)  # nothing deleted
    newest = max(archives, key=lambda p: p.stat().st_mtime_ns)
    assert f"Older entries: `{newest.name}`" in path.read_text()


# ---------------------------------------------------------------------------
# runtime reports
# ---------------------------------------------------------------------------


def _loop_report(worst_ms: float = 1003.4) -> LoopReport:
    finding = Finding(
        code="AEX901",
        kind="blocking-call-in-async",
        severity="critical",
        message="the loop was blocked for 1003 ms",
        path="In[3]",
        line=4,
        symbol="fetch",
        snippet="time.sleep(1)",
        source="runtime",
        extra={"blocked_ms": worst_ms},
    )
    return LoopReport(
        finding_list=[finding],
        blocking_records=[
            {"duration_ms": 120.0, "location": "In[3]:9", "snippet": "json.loads(big)", "function": "parse"},
            {"duration_ms": worst_ms, "location": "In[3]:4", "snippet": "time.sleep(1)", "function": "fetch"},
        ],
        lag_records=[{"t_s": 0.1, "lag_ms": 2.0}, {"t_s": 1.1, "lag_ms": 1010.2}],
        task_records=[
            {"name": "Task-7", "coro": "poll", "created_at": "In[3]:12", "state": "pending"},
            {"name": "Task-8", "coro": "fetch", "created_at": "In[3]:13", "state": "done"},
        ],
        target="In[3]",
        seconds=1.25,
    )


def test_runtime_entry_has_headline_measures(tmp_path: Path) -> None:
    path = tmp_path / "m.md"
    res = mem.record_analysis(_loop_report(), tool="%%loop_profile", path=path, now=DAY1)
    assert res.status == "written"
    text = path.read_text()
    assert "· %%loop_profile · `In[3]` · 1 critical, 0 warning, 0 info" in text
    runtime = text.split("### Runtime measures")[1]
    assert "worst blocking line: `In[3]:4` in `fetch` `time.sleep(1)`, blocked the loop for 1003.4 ms" in runtime
    assert "max loop lag: 1010.2 ms" in runtime
    assert "leaked tasks: 1" in runtime and "Task-7 (poll) created at In[3]:12" in runtime
    _, entries, _ = mem.read_memory(path)
    r = entries[0].runtime
    assert (r["worst_block_at"], r["worst_block_ms"], r["max_lag_ms"], r["leaked_tasks"]) == ("In[3]:4", 1003.4, 1010.2, 1)
    # same blocking line and leaked count: a re-check note even though the timing differs a little
    res2 = mem.record_analysis(_loop_report(998.0), tool="%%loop_profile", path=path, now=DAY2)
    assert res2.status == "unchanged"
    # a static scan of the same target is another family: never "unchanged" against a profile
    res3 = mem.record_analysis(ScanReport(target="In[3]"), tool="%async_scan", path=path, now=DAY3)
    assert res3.status == "written" and res3.fixed == []


def test_runtime_headline_reads_partial_reports() -> None:
    from async_expert_ext.render.markdown import runtime_headline

    class Partial:
        lag_records = [{"lag_ms": float("nan")}, {"lag_ms": 12.5}]
        finding_list = []

    h = runtime_headline(Partial())
    assert h["max_lag_ms"] == 12.5 and h["worst_block_at"] == "" and h["leaked_tasks"] == 0
    assert runtime_headline(ScanReport()) is None


# ---------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str]:
    from async_expert_ext.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


def test_cli_memory_json(project: Path) -> None:
    app = project / "app.py"
    app.write_text(APP_V1)
    path = project / "m.md"
    mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", path=path, now=DAY1)
    app.write_text(APP_V3_FIXED)
    mem.record_analysis(_scan(app), tool="async-expert scan", target="app.py", path=path, now=DAY2)
    code, out = _cli(["memory", "--path", str(path), "--format", "json"])
    assert code == 0
    data = json.loads(out)
    assert data["path"] == str(path)
    entries = data["entries"]
    assert [e["time"] for e in entries] == ["2026-11-01T10:00:00Z", "2026-11-02T09:30:00Z"]
    for e in entries:
        assert {"time", "tool", "target", "counts", "findings"} <= set(e)
        assert e["tool"] == "async-expert scan" and e["target"] == "app.py"
    assert entries[0]["counts"] == {"critical": 2, "warning": 0, "info": 0}
    assert sorted(d["line"] for d in entries[0]["findings"]) == [5, 6]
    assert [(d["kind"], d["line"], d["status"]) for d in entries[1]["findings"]] == [("blocking-call-in-async", 6, "seen")]
    assert [d["line"] for d in entries[1]["fixed"]] == [5]
    # filters and stats
    code, out = _cli(["memory", "--path", str(path), "--format", "json", "--since", "2026-11-02", "--stats"])
    data = json.loads(out)
    assert [e["time"] for e in data["entries"]] == ["2026-11-02T09:30:00Z"]
    assert [(r["kind"], r["entries"], r["open"]) for r in data["stats"]] == [("blocking-call-in-async", 1, 1)]


def test_cli_memory_text_and_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from async_expert_ext.cli import main

    path = project / "m.md"
    assert main(["memory", "--path", str(path)]) == 0
    assert f"No memory file at {path}" in capsys.readouterr().out
    assert main(["memory", "--path", str(path), "--since", "last tuesday"]) == 2
    assert "--since" in capsys.readouterr().err
    (project / "app.py").write_text(APP_V1)
    mem.record_analysis(_scan(project / "app.py"), tool="async-expert scan", target="app.py", path=path, now=DAY1)
    assert main(["memory", "--path", str(path), "--kind", "never-awaited"]) == 0
    assert capsys.readouterr().out.startswith("0 memory entries")
    assert main(["memory", "--path", str(path), "--stats"]) == 0
    out = capsys.readouterr().out
    assert "blocking-call-in-async: in 1 entry, 2 finding(s), 2 distinct, 2 still open" in out


def test_cli_scan_records_in_the_project_memory(project: Path) -> None:
    """`async-expert scan` writes the entry at the default location of its project."""
    app = project / "app.py"
    app.write_text(APP_V1)
    code, out = _cli(["scan", "app.py", "--select", "blocking-call-in-async"])
    assert f"memory: wrote entry to {project / '.claude' / 'sub_agents_memory.md'}; 2 new, 0 seen before" in out
    assert code == 1
    path = project / ".claude" / "sub_agents_memory.md"
    _, entries, warns = mem.read_memory(path)
    assert warns == []
    assert [(e.tool, e.target) for e in entries] == [("async-expert scan", "app.py")]
    assert sorted(d["line"] for d in entries[0].findings) == [5, 6]
    # --no-memory writes nothing more
    size = path.stat().st_size
    _cli(["scan", "app.py", "--no-memory", "--select", "blocking-call-in-async"])
    assert path.stat().st_size == size


def test_cli_scan_with_an_unwritable_memory_path_still_reports(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from async_expert_ext.cli import main

    (project / "app.py").write_text(APP_V1)
    (project / "blocker").write_text("x")
    code = main(["scan", "app.py", "--select", "blocking-call-in-async", "--memory", "blocker/mem.md"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "app.py:5 [AEX101 blocking-call-in-async]" in out
    assert err.startswith("async-expert: memory: not written (memory file ") and "blocker/mem.md" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_profile_records_runtime_measures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    prog = tmp_path / "prog.py"
    prog.write_text(
        "import asyncio, time\n\n"
        "async def main():\n"
        "    await asyncio.sleep(0.02)\n"
        "    time.sleep(0.25)\n"
        "    await asyncio.sleep(0.02)\n"
    )
    path = tmp_path / "m.md"
    proc = subprocess.run(
        [sys.executable, "-m", "async_expert_ext", "profile", "prog.py", "--no-profile", "--memory", str(path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"memory: wrote entry to {path}" in proc.stdout
    _, entries, warns = mem.read_memory(path)
    assert warns == []
    assert [(e.tool, e.target) for e in entries] == [("async-expert profile", "prog.py")]
    r = entries[0].runtime
    assert r["worst_block_at"] == "prog.py:5" and r["worst_block_ms"] >= 200 and r["leaked_tasks"] == 0


def test_no_warnings_on_clean_round_trip(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(APP_V1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mem.record_analysis(_scan(tmp_path / "a.py"), tool="scan", path=tmp_path / "m.md", now=DAY1)
        mem.record_analysis(_scan(tmp_path / "a.py"), tool="scan", path=tmp_path / "m.md", now=DAY2)
    _, entries, warns = mem.read_memory(tmp_path / "m.md")
    assert warns == [] and [e.unchanged for e in entries] == [False, True]
