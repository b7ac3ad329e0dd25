"""The memory file: each analysis appends what it learned; later sessions recall it.

An AI coding agent (the ``.claude/sub_agents_memory.md`` convention), a person
over several days, or a class in a workshop reads this file to start from what is
already known: what was found and where, what has been fixed, which patterns recur.

One entry point is used by every tool (``%async_scan``, ``%%loop_profile``,
``async-expert scan``, ``async-expert profile``)::

    from async_expert_ext.memory import record_analysis
    recall = record_analysis(report, tool="async-expert scan", target="app/")
    print(recall.summary())          # "memory: wrote entry to ...; 2 new, 1 seen before, 1 fixed since ..."
    recall.status(finding)           # "new" | "seen before (first 2026-11-02)"

The module has two halves:

* **pure**: path resolution (:func:`resolve_memory_path`), redaction
  (:func:`redact`), entry formatting (:func:`format_entry`, :func:`format_recheck`),
  parsing (:func:`parse_memory`) and recall (:func:`compute_recall`);
* **I/O**: :func:`record_analysis` (lock, read, recall, write) and
  :func:`read_memory` (lock, read, parse).

File format (markdown, newest entry last)::

    ## 2026-11-29 06:45:15 UTC · async-expert scan · `app/` · 2 critical, 0 warning, 1 info
    ... readable sections (critical issues, patterns, FastAPI, verification plan, runtime measures) ...
    <!-- async-expert-data
    {"v": 1, "time": "2026-11-29T06:45:15Z", "tool": ..., "target": ..., "counts": ..., "findings": [...]}
    -->

A re-run that finds exactly the same thing appends one line instead::

    - 2026-11-29 07:02:11 UTC · async-expert scan · `app/`: re-checked, unchanged ... <!-- async-expert-recheck {...} -->

Only the JSON in those comments is parsed, never the prose, so people may edit
the prose freely. A data block that does not parse is skipped with a warning and
kept byte for byte.

Safety: a :class:`filelock.FileLock` (``<file>.lock`` beside it) serialises
read-recall-write across kernels and processes; every write builds the complete
new file in a temporary file in the same folder and ``os.replace``-s it in, so a
reader never sees a torn entry and a crash never truncates the file. Past
``max_bytes`` (default 1 MiB) the whole file is first moved, unchanged, to a dated
archive beside it (``sub_agents_memory.archive-2026-11-29.md``) and the new file
starts with the newest entries; nothing is deleted. An unwritable path gives a
warning in :attr:`RecallResult.warnings`; it never raises.
"""
from __future__ import annotations

import bisect
import datetime as _dt
import json
import os
import re
import tempfile
import warnings as _warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import Finding
from .render.markdown import (
    PARTS,
    code_span,
    render_parts,
    report_counts,
    report_findings,
    runtime_headline,
)

__all__ = [
    "DEFAULT_RELATIVE_PATH",
    "ENV_VAR",
    "DEFAULT_MAX_BYTES",
    "MemoryWarning",
    "MemoryEntry",
    "RecallResult",
    "resolve_memory_path",
    "redact",
    "redact_finding",
    "format_entry",
    "format_recheck",
    "parse_memory",
    "compute_recall",
    "record_analysis",
    "record_quietly",
    "read_memory",
    "filter_entries",
    "pattern_stats",
    "render_entries_text",
    "parse_since",
]

#: Where the memory file goes, relative to the project root.
DEFAULT_RELATIVE_PATH = Path(".claude") / "sub_agents_memory.md"
#: Environment variable naming the memory file ("" turns it off).
ENV_VAR = "ASYNC_EXPERT_MEMORY"
#: Size limit of the memory file, bytes; past it older entries go to an archive.
DEFAULT_MAX_BYTES = 1024 * 1024
#: Seconds to wait for another process's lock before giving up (with a warning).
LOCK_TIMEOUT_S = 30.0
FORMAT_VERSION = 1

_HEADER = (
    "# async-expert memory\n\n"
    "Written by async-expert-ext: one entry per analysis (`%async_scan`, `%%loop_profile`, "
    "`async-expert scan|profile`), newest last.\n"
    "Each entry keeps a machine-readable copy in an HTML comment (`async-expert-data`); "
    "the prose may be edited freely.\n"
)


class MemoryWarning(UserWarning):
    """A memory-file problem that does not stop the analysis (unwritable path,
    unparseable entry, lock timeout)."""


# ---------------------------------------------------------------------------
# Path resolution
# ---------------------------------------------------------------------------


def resolve_memory_path(
    path: str | os.PathLike[str] | None = None,
    *,
    settings: Any = None,
    start: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """The memory file to use, or None when memory is turned off.

    Precedence: ``path`` (a ``--memory`` flag, passed by the caller) >
    ``%config AsyncExpert.memory_file`` (read here when the extension is loaded) >
    the ``ASYNC_EXPERT_MEMORY`` environment variable >
    ``settings.memory_file`` (``[tool.async_expert] memory_file``) > the default
    ``.claude/sub_agents_memory.md`` under the project root. An empty string at
    the winning level turns memory off (that is what ``--no-memory`` passes).

    Relative paths are taken from the working directory, except the pyproject
    setting and the default, which are taken from the project root (the nearest
    folder upward from ``start`` holding ``pyproject.toml`` or ``.git``, see
    :func:`async_expert_ext.config.find_project_root`).

    Args:
        path: an explicit path; "" turns memory off; None: not given.
        settings: a :class:`~async_expert_ext.config.Settings` (only
            ``memory_file`` is read).
        start: where to look for the project root (default: the working directory).
        environ: the environment (default: ``os.environ``).
    """
    from .config import find_project_root

    env = os.environ if environ is None else environ
    if path is not None:
        return _absolute(path, None)
    configured_here = _ipython_config_path()
    if configured_here is not None:
        return _absolute(configured_here, None)
    if ENV_VAR in env:
        return _absolute(env[ENV_VAR], None)
    root = find_project_root(start)
    configured = getattr(settings, "memory_file", None) if settings is not None else None
    if configured is not None:
        return _absolute(configured, root)
    return root / DEFAULT_RELATIVE_PATH


def _ipython_config_path() -> str | None:
    """``%config AsyncExpert.memory_file`` when the extension is loaded and it was set."""
    import sys

    options = sys.modules.get("async_expert_ext.magics.options")
    cls = getattr(options, "AsyncExpert", None)
    if cls is None or not cls.initialized():
        return None
    value = getattr(cls.instance(), "memory_file", None)
    return value if isinstance(value, str) else None


def _absolute(value: str | os.PathLike[str], base: Path | None) -> Path | None:
    text = os.fspath(value)
    if not str(text).strip():
        return None
    p = Path(os.path.expanduser(text))
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return p


# ---------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------

_SECRET_KEY = (
    r"[A-Za-z0-9_.-]*?(?:passw(?:or)?d|passwd|pwd|pass|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key|session[_-]?key|signature)[A-Za-z0-9_-]*"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.S,
)
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)[A-Za-z0-9._~+/=:-]{6,}")
_AUTHORIZATION = re.compile(
    r"""(?i)(["']?(?:proxy-)?authorization["']?\s*[:=]\s*[rbu]{0,2}(?P<q>["']))(?P<val>(?:(?!(?P=q)).)+)(?P=q)"""
)
_AUTHORIZATION_TEXT = re.compile(r"(?i)((?:proxy-)?authorization:[ \t]+)(?!(?:bearer|basic|token|digest)\b)([^\s\"',;}]+)")
_URL_CREDS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@:'\"]*):([^\s/@'\"]+)@")
_URL_TOKEN_USER = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([A-Za-z0-9_-]{20,})@")
_QUOTED_VALUE = re.compile(
    r"""(?ix)
    (["']?""" + _SECRET_KEY + r"""["']?\s*(?:=|:|=>)\s*[rbuf]{0,2})   # key = / key: / "key":
    (?P<q>["'])(?P<val>(?:(?!(?P=q)).)+)(?P=q)
    """
)
_BARE_VALUE = re.compile(r"(?i)(\b" + _SECRET_KEY + r"\s*[=:]\s*)(?![\"'\s])([^\s;&,'\"(){}\[\]]+)")
_KNOWN_TOKENS = re.compile(
    r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
_HARMLESS = re.compile(r"(?i)^(?:none|null|true|false|\d+(?:\.\d+)?|\*\*\*)$")
_IDENTIFIER_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def redact(text: str) -> str:
    """Replace secrets in ``text`` with ``***``.

    Covers: PEM private keys; ``Bearer``/``Basic``/``Token`` credentials and
    ``Authorization`` header values; passwords in URLs (``scheme://user:***@host``)
    and long token user names (``https://***@host``); values of keys that name a
    secret (``password``, ``passwd``, ``pwd``, ``secret``, ``token``, ``api_key``,
    ``access_key``, ``client_secret``, ``credentials`` ...) in assignments, keyword
    arguments, dict literals, headers and ``key=value;`` connection strings; and
    well-known token formats (OpenAI ``sk-``, Stripe ``sk_live_``, GitHub ``ghp_``,
    Slack ``xox?-``, AWS ``AKIA``, Google ``AIza``, GitLab ``glpat-``, JWTs).

    A bare value that is a Python name (``password=pw``, ``token=get_token()``) or a
    number/bool/None is a reference, not a secret, and is kept.
    """
    if not text:
        return text
    out = _PRIVATE_KEY.sub("***", str(text))
    out = _URL_CREDS.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", out)
    out = _URL_TOKEN_USER.sub(lambda m: f"{m.group(1)}***@", out)
    out = _AUTHORIZATION.sub(_redact_authorization, out)
    out = _AUTHORIZATION_TEXT.sub(lambda m: f"{m.group(1)}***", out)
    out = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}***", out)
    out = _QUOTED_VALUE.sub(_redact_quoted, out)
    out = _BARE_VALUE.sub(_redact_bare, out)
    out = _KNOWN_TOKENS.sub("***", out)
    return out


def _redact_authorization(m: re.Match[str]) -> str:
    value = m.group("val").strip()
    scheme = value.split(None, 1)
    if value.startswith("***") or "{" in value:  # done already, or an f-string placeholder
        return m.group(0)
    if len(scheme) == 2 and scheme[0].lower() in ("bearer", "basic", "token", "digest"):
        return m.group(0)  # the scheme is kept; _AUTH_HEADER replaces the credential
    return f"{m.group(1)}***{m.group('q')}"


def _redact_quoted(m: re.Match[str]) -> str:
    val = m.group("val")
    if _HARMLESS.match(val.strip()) or val.startswith("***") or val.strip().lower().startswith(("bearer ***", "basic ***")):
        return m.group(0)
    return f"{m.group(1)}{m.group('q')}***{m.group('q')}"


def _redact_bare(m: re.Match[str]) -> str:
    value = m.group(2)
    end = m.end(2)
    rest = m.string[end:]
    if _HARMLESS.match(value) or value.startswith("***"):
        return m.group(0)
    # a Python reference: a name or dotted name, possibly called / subscripted
    if _IDENTIFIER_REF.match(value) and (not rest or rest[:1] in "([)],\n" or rest[:1].isspace()):
        return m.group(0)
    return f"{m.group(1)}***"


def redact_finding(f: Finding) -> Finding:
    """A copy of ``f`` with :func:`redact` applied to every text taken from user
    code (snippet, message, explanation, call chain, string values in ``extra``).
    The fingerprint is unchanged (it is not stored from the copy)."""
    extra = {k: (redact(v) if isinstance(v, str) else v) for k, v in dict(f.extra or {}).items()}
    return f.replace(
        snippet=redact(f.snippet),
        message=redact(f.message),
        explanation=redact(f.explanation),
        call_chain=tuple(redact(c) for c in f.call_chain),
        extra=extra,
    )


# ---------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------


def _utc(now: _dt.datetime | None) -> _dt.datetime:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.timezone.utc)
    return now.astimezone(_dt.timezone.utc).replace(microsecond=0)


def _iso(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_time(text: Any) -> _dt.datetime | None:
    if not isinstance(text, str):
        return None
    s = text.strip().replace("Z", "+00:00")
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.astimezone(_dt.timezone.utc)


def _family(tool: str) -> str:
    t = tool.lower()
    if "profile" in t:
        return "profile"
    if "scan" in t:
        return "scan"
    return t.strip() or "?"


def _target_key(target: str, start: str | os.PathLike[str] | None = None) -> str:
    """Identity of a target across tools: the resolved path when it is a path."""
    text = str(target or "").strip()
    if not text or "\n" in text or len(text) > 4096:
        return text
    try:
        p = Path(os.path.expanduser(text))
        if not p.is_absolute():
            p = Path(start or os.getcwd()) / p
        if p.exists():
            return str(p.resolve())
    except (OSError, ValueError):
        pass
    return text


def occurrence_keys(findings: Sequence[Finding]) -> list[str]:
    """One key per finding: its fingerprint, with ``~2``, ``~3`` ... appended for
    the second, third ... finding sharing a fingerprint (two identical lines in
    one function), so that a multiset of findings compares correctly."""
    seen: dict[str, int] = {}
    keys = []
    for f in sorted(findings, key=lambda f: (f.path, f.line, f.col, f.code)):
        fp = f.fingerprint
        n = seen.get(fp, 0) + 1
        seen[fp] = n
        keys.append((id(f), fp if n == 1 else f"{fp}~{n}"))
    by_id = dict(keys)
    return [by_id[id(f)] for f in findings]


@dataclass
class MemoryEntry:
    """One parsed entry of the memory file (a full entry or a re-check note).

    Attributes:
        time: UTC time of the analysis.
        tool: ``"%async_scan"``, ``"async-expert scan"``, ``"%%loop_profile"`` ...
        target: what was analysed, as the user named it.
        target_key: the resolved path of the target (or the target text).
        counts: ``{"critical": n, "warning": n, "info": n}``.
        findings: dicts with ``key`` (occurrence key), ``fingerprint``, ``code``, ``kind``,
            ``severity``, ``path``, ``line``, ``symbol``, ``message``, ``snippet`` (redacted),
            ``fix``, ``first_seen`` (``YYYY-MM-DD``) and ``status`` (``new`` / ``seen``).
        fixed: dicts of the findings gone since the previous entry for the target.
        fixed_since: the time of that previous entry (ISO), or "".
        runtime: the headline measures of a runtime run (see
            :func:`~async_expert_ext.render.markdown.runtime_headline`), or None.
        unchanged: True for a "re-checked, unchanged" note.
        same_as: for a note, the time (ISO) of the entry it repeats.
        line: the 1-based line of the entry's data in the file.
    """

    time: _dt.datetime
    tool: str
    target: str
    target_key: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)
    fixed_since: str = ""
    runtime: dict[str, Any] | None = None
    unchanged: bool = False
    same_as: str = ""
    line: int = 0

    @property
    def family(self) -> str:
        """``"scan"`` or ``"profile"``: entries of one family are compared."""
        return _family(self.tool)

    def keys(self) -> set[str]:
        return {str(d.get("key") or d.get("fingerprint")) for d in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """``{"time", "tool", "target", "counts", "findings", "fixed", "fixed_since",
        "runtime", "unchanged", "same_as"}`` (time as ISO 8601 UTC)."""
        return {
            "time": _iso(self.time),
            "tool": self.tool,
            "target": self.target,
            "counts": dict(self.counts),
            "findings": [dict(d) for d in self.findings],
            "fixed": [dict(d) for d in self.fixed],
            "fixed_since": self.fixed_since,
            "runtime": self.runtime,
            "unchanged": self.unchanged,
            "same_as": self.same_as,
        }


@dataclass
class RecallResult:
    """What the memory file knew, and what was written.

    Attributes:
        path: the memory file (None when memory is off).
        status: ``"written"`` (a full entry), ``"unchanged"`` (a one-line note),
            ``"off"`` (memory turned off) or ``"failed"`` (see ``warnings``).
        new: occurrence keys of findings never seen before in this file.
        seen: occurrence key -> the date (``YYYY-MM-DD``) the finding was first seen.
        fixed: the findings of the previous entry for the same target that are gone
            now (dicts as in :attr:`MemoryEntry.findings`).
        fixed_since: the time of that previous entry, ``YYYY-MM-DD HH:MM:SS UTC``, or "".
        previous: the previous entry for the same target and tool family, or None.
        entry: the markdown that was appended ("" when nothing was written).
        archived_to: the archive file written by a size rotation, or None.
        warnings: one-line problems (unwritable path, skipped unparseable parts).
    """

    path: Path | None = None
    status: str = "off"
    new: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    fixed: list[dict[str, Any]] = field(default_factory=list)
    fixed_since: str = ""
    previous: MemoryEntry | None = None
    entry: str = ""
    archived_to: Path | None = None
    warnings: list[str] = field(default_factory=list)
    _keys: dict[str, str] = field(default_factory=dict, repr=False)

    def key_of(self, f: Finding) -> str:
        """The occurrence key of ``f`` in the recorded report (its fingerprint when unknown)."""
        return self._keys.get(_identity(f), f.fingerprint)

    def status_of(self, f: Finding) -> str:
        """``"new"``, ``"seen before (first YYYY-MM-DD)"``, or "" when memory is off."""
        if self.status == "off" and not self.seen and not self.new:
            return ""
        key = self.key_of(f)
        if key in self.seen:
            return f"seen before (first {self.seen[key]})"
        return "new"

    def summary(self) -> str:
        """One line for the user: where it wrote, and new / seen / fixed counts."""
        if self.status == "off":
            return "memory: off"
        parts = [f"{len(self.new)} new", f"{len(self.seen)} seen before"]
        if self.fixed:
            parts.append(f"{len(self.fixed)} fixed since {self.fixed_since}")
        recall = ", ".join(parts)
        if self.status == "written":
            head = f"memory: wrote entry to {self.path}"
        elif self.status == "unchanged":
            head = f"memory: re-checked, unchanged (noted in {self.path})"
        else:
            head = f"memory: not written ({'; '.join(self.warnings) or 'unknown error'})"
        if self.archived_to is not None:
            head += f" (older entries moved to {self.archived_to})"
        return f"{head}; {recall}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``{"path", "status", "new", "seen", "fixed", "fixed_since",
        "archived_to", "warnings"}``."""
        return {
            "path": str(self.path) if self.path else None,
            "status": self.status,
            "new": list(self.new),
            "seen": dict(self.seen),
            "fixed": [dict(d) for d in self.fixed],
            "fixed_since": self.fixed_since,
            "archived_to": str(self.archived_to) if self.archived_to else None,
            "warnings": list(self.warnings),
        }

    def _repr_markdown_(self) -> str:
        lines = [self.summary()]
        for d in self.fixed:
            lines.append(f"- fixed: {d.get('kind')} at `{d.get('path')}` {code_span(d.get('snippet') or '')}")
        return "\n".join(lines)


def _identity(f: Finding) -> str:
    return f"{f.fingerprint}|{f.path}|{f.line}|{f.col}|{f.code}"


def _finding_record(f: Finding, key: str, status: str, first_seen: str) -> dict[str, Any]:
    r = redact_finding(f)
    return {
        "key": key,
        "fingerprint": f.fingerprint,
        "code": r.code,
        "kind": r.kind,
        "severity": r.severity.value,
        "path": r.path,
        "line": r.line,
        "symbol": r.symbol,
        "message": r.message,
        "snippet": r.snippet.strip(),
        "fix": r.fix,
        "source": r.source,
        "status": status,
        "first_seen": first_seen,
    }


def _dump(data: Mapping[str, Any]) -> str:
    # "<" and ">" escaped so that "-->" can never end the comment early.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("critical", "warning", "info"))


def _heading_target(target: str) -> str:
    t = " ".join(redact(target or "<source>").split())
    if len(t) > 120:
        t = t[:117] + "..."
    return code_span(t)


def format_entry(
    report: Any,
    *,
    tool: str,
    target: str,
    time: _dt.datetime,
    recall: RecallResult,
    target_key: str = "",
    max_findings: int = 50,
) -> str:
    """The markdown of one full entry (pure).

    Args:
        report: a ScanReport or LoopReport (read with
            :func:`~async_expert_ext.render.markdown.report_findings`).
        tool: the tool name shown in the heading.
        target: what was analysed.
        time: the UTC time of the analysis.
        recall: new / seen / fixed information from :func:`compute_recall`.
        target_key: the resolved target (stored in the data block).
        max_findings: the most findings listed per section (the data block has all).

    Returns:
        Markdown text starting with the ``## <time> UTC · <tool> · <target> · <counts>``
        heading and ending with the ``async-expert-data`` comment and a newline.
    """
    findings = report_findings(report)
    counts = report_counts(findings)
    headline = runtime_headline(report)
    if headline:
        headline = {k: (redact(v) if isinstance(v, str) else v) for k, v in headline.items()}
        headline["leaked"] = [redact(x) for x in headline.get("leaked") or []]
    keys = occurrence_keys(findings)
    red = [redact_finding(f) for f in findings]
    notes_by_id = {}
    records = []
    for f, r, k in zip(findings, red, keys):
        first = recall.seen.get(k, "")
        status = "seen" if first else "new"
        notes_by_id[id(r)] = f"seen before, first {first}" if first else "new"
        records.append(_finding_record(f, k, status, first or time.strftime("%Y-%m-%d")))

    def note(f: Finding) -> str:
        return notes_by_id.get(id(f), "")

    heading = f"## {_human(time)} · {tool} · {_heading_target(target)} · {_counts_text(counts)}"
    lines = [heading, ""]
    recall_bits = [f"{len(recall.new)} new", f"{len(recall.seen)} seen before"]
    if recall.fixed:
        recall_bits.append(f"{len(recall.fixed)} fixed since {recall.fixed_since}")
    elif recall.previous is not None:
        recall_bits.append(f"none fixed since {recall.fixed_since}")
    lines.append(f"**Recall:** {', '.join(recall_bits)}.")
    errors = [redact(e) for e in getattr(report, "errors", []) or [] if isinstance(e, str)]
    if getattr(report, "files_scanned", None) is not None:
        scanned = report.scanned_text() if hasattr(report, "scanned_text") else f"{len(report.files_scanned)} file(s)"
        lines.append(f"**Scanned:** {scanned}.")
    lines.append("")
    parts = ["critical", "patterns", "fastapi", "verification", "runtime"]
    recommendations = [redact(str(r)) for r in getattr(report, "recommendations", None) or []]  # a load run's
    bodies = render_parts(red, parts=parts, notes=note, max_findings=max_findings, headline=headline, recommendations=recommendations)
    for pid in parts:
        if pid in bodies:
            lines.append(f"### {PARTS[pid]}")
            lines.append("")
            lines.append(bodies[pid])
            lines.append("")
    if recall.fixed:
        lines.append(f"### Fixed since {recall.fixed_since}")
        lines.append("")
        for d in recall.fixed[:max_findings]:
            where = f"`{d.get('path', '')}:{d.get('line', 0)}`" + (f" in `{d['symbol']}`" if d.get("symbol") else "")
            lines.append(f"- {d.get('kind', '?')} at {where}: {code_span(d.get('snippet') or d.get('message') or '')}")
        if len(recall.fixed) > max_findings:
            lines.append(f"- ... and {len(recall.fixed) - max_findings} more.")
        lines.append("")
    if errors:
        lines.append("### Notes")
        lines.append("")
        lines.extend(f"- {' '.join(e.split())}" for e in errors[:20])
        lines.append("")
    data = {
        "v": FORMAT_VERSION,
        "time": _iso(time),
        "tool": tool,
        "target": redact(target),
        "target_key": redact(target_key or target),
        "counts": counts,
        "findings": records,
        "fixed": [dict(d) for d in recall.fixed],
        "fixed_since": recall.fixed_since,
        "runtime": headline,
    }
    lines.append("<!-- async-expert-data")
    lines.append(_dump(data))
    lines.append("-->")
    return "\n".join(lines) + "\n"


def format_recheck(
    *, tool: str, target: str, time: _dt.datetime, previous: MemoryEntry, target_key: str = ""
) -> str:
    """The one-line "re-checked, unchanged" note (pure), with its own data comment."""
    data = {
        "v": FORMAT_VERSION,
        "time": _iso(time),
        "tool": tool,
        "target": redact(target),
        "target_key": redact(target_key or target),
        "same_as": _iso(previous.time),
    }
    return (
        f"- {_human(time)} · {tool} · {_heading_target(target)}: re-checked, unchanged "
        f"({_counts_text(previous.counts)}; same as {_human(previous.time)}) "
        f"<!-- async-expert-recheck {_dump(data)} -->\n"
    )


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

_DATA_RE = re.compile(r"^<!-- async-expert-data[ \t]*\n(.*?)\n-->[ \t]*$", re.M | re.S)
_RECHECK_RE = re.compile(r"<!-- async-expert-recheck (\{.*?\}) -->")
_HEADING_RE = re.compile(r"^## \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b.*$", re.M)


class _Lines:
    """Offset -> 1-based line number, in O(log n) per lookup."""

    def __init__(self, text: str) -> None:
        self.starts = [m.end() for m in re.finditer("\n", text)]

    def __call__(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos) + 1


def parse_memory(text: str) -> tuple[list[MemoryEntry], list[str]]:
    """Parse a memory file's text (pure).

    Only the ``async-expert-data`` and ``async-expert-recheck`` comments are read.
    A comment whose JSON is damaged, and a heading with no readable data block
    before the next heading, are skipped with a warning; the prose is ignored.
    A re-check note's findings and counts are those of the entry it repeats.

    Returns:
        ``(entries in file order, warnings)``; each warning names the line.
    """
    entries: list[tuple[int, MemoryEntry]] = []
    warns: list[str] = []
    data_lines: list[int] = []
    line_of = _Lines(text)
    for m in _DATA_RE.finditer(text):
        line = line_of(m.start())
        data_lines.append(line)
        entry = _entry_from_json(m.group(1), line, warns, recheck=False)
        if entry is not None:
            entries.append((m.start(), entry))
    for m in _RECHECK_RE.finditer(text):
        line = line_of(m.start())
        entry = _entry_from_json(m.group(1), line, warns, recheck=True)
        if entry is not None:
            entries.append((m.start(), entry))
    # headings without a data block of their own
    headings = [(line_of(m.start()), m.group(0)) for m in _HEADING_RE.finditer(text)]
    for i, (hline, htext) in enumerate(headings):
        nxt = headings[i + 1][0] if i + 1 < len(headings) else 10**12
        j = bisect.bisect_right(data_lines, hline)  # the first data block after the heading
        if not (j < len(data_lines) and data_lines[j] < nxt):
            warns.append(f"line {hline}: entry {htext[3:60]!r} has no async-expert-data block; skipped")
    entries.sort(key=lambda pair: pair[0])
    out = [e for _, e in entries]
    by_time: dict[tuple[str, str, str], MemoryEntry] = {}
    for e in out:
        if not e.unchanged:
            by_time[(e.family, e.target_key, _iso(e.time))] = e
        else:
            src = by_time.get((e.family, e.target_key, e.same_as))
            if src is not None:
                e.counts = dict(src.counts)
                e.findings = [dict(d) for d in src.findings]
                e.runtime = src.runtime
                # a later note may say "same as" this note: chains of re-checks resolve
                by_time[(e.family, e.target_key, _iso(e.time))] = e
            else:
                warns.append(f"line {e.line}: re-check note refers to a missing entry {e.same_as}; kept without findings")
    return out, warns


def _entry_from_json(raw: str, line: int, warns: list[str], *, recheck: bool) -> MemoryEntry | None:
    what = "re-check note" if recheck else "entry data"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        warns.append(f"line {line}: unparseable {what} ({reason}); skipped")
        return None
    if not isinstance(data, dict):
        warns.append(f"line {line}: {what} is not a JSON object; skipped")
        return None
    t = _parse_time(data.get("time"))
    tool, target = data.get("tool"), data.get("target")
    if t is None or not isinstance(tool, str) or not isinstance(target, str):
        warns.append(f"line {line}: {what} lacks a valid time/tool/target; skipped")
        return None
    findings = data.get("findings", [])
    if not isinstance(findings, list) or not all(isinstance(d, dict) and d.get("fingerprint") for d in findings):
        warns.append(f"line {line}: {what} has malformed findings; skipped")
        return None
    raw_counts, raw_fixed, raw_runtime = data.get("counts"), data.get("fixed"), data.get("runtime")
    counts: dict[str, Any] = raw_counts if isinstance(raw_counts, dict) else {}
    fixed: list[Any] = raw_fixed if isinstance(raw_fixed, list) else []
    runtime: dict[str, Any] | None = raw_runtime if isinstance(raw_runtime, dict) else None
    return MemoryEntry(
        time=t,
        tool=tool,
        target=target,
        target_key=str(data.get("target_key") or target),
        counts={k: int(v) for k, v in counts.items() if isinstance(v, (int, float))},
        findings=findings,
        fixed=[d for d in fixed if isinstance(d, dict)],
        fixed_since=str(data.get("fixed_since") or ""),
        runtime=runtime,
        unchanged=recheck,
        same_as=str(data.get("same_as") or "") if recheck else "",
        line=line,
    )


# ---------------------------------------------------------------------------
# Recall
# ---------------------------------------------------------------------------


def compute_recall(
    entries: Sequence[MemoryEntry],
    findings: Sequence[Finding],
    *,
    tool: str,
    target_key: str,
) -> RecallResult:
    """New / seen-before / fixed for ``findings`` against past ``entries`` (pure).

    * seen before: the finding's occurrence key appears in any past entry; its
      first-seen date is the earliest ``first_seen`` or entry date recorded for it.
    * fixed: keys of the latest entry (or re-check) for the same target and tool
      family (scan vs profile) that are not in ``findings``.
    """
    keys = occurrence_keys(findings)
    first: dict[str, str] = {}
    for e in entries:
        day = e.time.strftime("%Y-%m-%d")
        for d in e.findings:
            k = str(d.get("key") or d.get("fingerprint"))
            raw_fs = d.get("first_seen")
            fs: str = raw_fs if isinstance(raw_fs, str) else day
            cand = min(fs, day) if re.fullmatch(r"\d{4}-\d\d-\d\d", fs) else day
            if k not in first or cand < first[k]:
                first[k] = cand
    result = RecallResult()
    for f, k in zip(findings, keys):
        result._keys[_identity(f)] = k
        if k in first:
            result.seen[k] = first[k]
        else:
            result.new.append(k)
    family = _family(tool)
    previous = None
    for e in reversed(entries):
        if e.family == family and e.target_key == target_key:
            previous = e
            break
    if previous is not None:
        result.previous = previous
        result.fixed_since = _human(previous.time)
        now_keys = set(keys)
        result.fixed = [dict(d) for d in previous.findings if str(d.get("key") or d.get("fingerprint")) not in now_keys]
    return result


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _unchanged(previous: MemoryEntry | None, findings: Sequence[Finding], headline: Mapping[str, Any] | None) -> bool:
    if previous is None:
        return False
    before = sorted((str(d.get("key") or d.get("fingerprint")), str(d.get("path")), _int(d.get("line"))) for d in previous.findings)
    now = sorted((k, f.path, f.line) for k, f in zip(occurrence_keys(findings), findings))
    if before != now:  # a finding appeared, went away or moved to another line
        return False
    if headline or previous.runtime:
        a, b = headline or {}, previous.runtime or {}
        if a.get("worst_block_at") != b.get("worst_block_at") or a.get("leaked_tasks") != b.get("leaked_tasks"):
            return False
    return True


# ---------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------


def _warn(result: RecallResult, message: str) -> None:
    result.warnings.append(message)
    _warnings.warn(message, MemoryWarning, stacklevel=3)


def _lock_for(path: Path) -> Any:
    from filelock import FileLock

    return FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s folder, fsync, os.replace."""
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(folder))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files left by a writer killed mid-write. Called under the
    lock: temporary files are only created under it, so none is in use."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            tmp.unlink()
        except OSError:
            pass


def _archive_name(path: Path, time: _dt.datetime) -> Path:
    stem, suffix = path.stem, path.suffix or ".md"
    base = path.with_name(f"{stem}.archive-{time.strftime('%Y-%m-%d')}{suffix}")
    n = 1
    candidate = base
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{stem}.archive-{time.strftime('%Y-%m-%d')}-{n}{suffix}")
    return candidate


def _entry_chunks(text: str) -> list[str]:
    """The file split into entry-sized chunks (each starting at an entry heading);
    the text before the first heading is not included."""
    starts = [m.start() for m in _HEADING_RE.finditer(text)]
    return [text[s : (starts[i + 1] if i + 1 < len(starts) else len(text))] for i, s in enumerate(starts)]


def record_analysis(
    report: Any,
    *,
    tool: str | None = None,
    target: str | None = None,
    path: str | os.PathLike[str] | None = None,
    settings: Any = None,
    start: str | os.PathLike[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: _dt.datetime | None = None,
) -> RecallResult:
    """Record one analysis in the memory file and return what it recalled.

    The single entry point every tool calls after an analysis. Under a file lock
    it reads the memory file, computes which findings are new, which were seen
    before (and when first) and which findings of the previous entry for the same
    target are gone (fixed), then writes the file back with one new entry
    appended (or a one-line "re-checked, unchanged" note when the findings are
    the same as last time). Never raises for file problems: they become
    :attr:`RecallResult.warnings` (also issued as :class:`MemoryWarning`), and the
    caller shows its report as usual.

    Args:
        report: a :class:`~async_expert_ext.model.ScanReport` or ``LoopReport``.
        tool: the tool's name as the user typed it: ``"%async_scan"``,
            ``"%%loop_profile"``, ``"async-expert scan"``, ``"async-expert profile"``.
            Entries of scan tools are compared with scan entries, profile with profile.
            Default: ``"scan"`` for a report with ``files_scanned``, else ``"profile"``.
        target: what was analysed (default: ``report.target``).
        path: the memory file from a ``--memory`` flag or ``%config`` ("" turns it
            off, as ``--no-memory`` does); see :func:`resolve_memory_path`.
        settings: :class:`~async_expert_ext.config.Settings` (its ``memory_file``).
        start: where to look for the project root (default: the working directory).
        max_bytes: size limit in bytes; past it the file is archived first.
        now: the analysis time (default: now, UTC); for tests.

    Returns:
        :class:`RecallResult`; ``status`` says whether an entry was ``"written"``,
        a note was added (``"unchanged"``), memory is ``"off"`` or writing ``"failed"``.
    """
    target = str(target if target is not None else getattr(report, "target", "") or "")
    if not tool:
        tool = "scan" if hasattr(report, "files_scanned") else "profile"
    time = _utc(now)
    mem_path = resolve_memory_path(path, settings=settings, start=start)
    findings = report_findings(report)
    if mem_path is None:
        off = RecallResult(path=None, status="off")
        for f, k in zip(findings, occurrence_keys(findings)):
            off._keys[_identity(f)] = k
        return off
    key = _target_key(target, start)
    result: RecallResult | None = None
    try:
        real = Path(os.path.realpath(mem_path))
        real.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock_for(real)
        with lock:
            _remove_stale_temps(real)
            old = _read_bytes(real)
            text = _decode(old)
            entries, parse_warnings = parse_memory(text)
            result = compute_recall(entries, findings, tool=tool, target_key=key)
            result.path = mem_path
            for w in parse_warnings:
                _warn(result, f"{mem_path}: {w}")
            headline = runtime_headline(report)
            if _unchanged(result.previous, findings, headline):
                assert result.previous is not None
                chunk = format_recheck(tool=tool, target=target, time=time, previous=result.previous, target_key=key)
                result.status = "unchanged"
            else:
                chunk = format_entry(report, tool=tool, target=target, time=time, recall=result, target_key=key)
                chunk = "\n" + chunk
                result.status = "written"
            result.entry = chunk.strip("\n") + "\n"
            new_bytes = chunk.encode("utf-8")
            if not old:
                body = _HEADER.encode("utf-8") + new_bytes
            elif len(old) + len(new_bytes) > max_bytes and entries:
                archive = _archive_name(real, time)
                _atomic_write(archive, old)  # the old file, byte for byte
                result.archived_to = archive
                keep: list[str] = []
                budget = max(0, max_bytes // 4)
                for piece in reversed(_entry_chunks(text)):
                    size = len(piece.encode("utf-8"))
                    if size > budget:
                        break
                    keep.append(piece)
                    budget -= size
                keep.reverse()
                pointer = f"\nOlder entries: `{archive.name}` (moved {_human(time)}).\n\n"
                body = (_HEADER + pointer + "".join(keep).rstrip("\n") + "\n").encode("utf-8") + new_bytes
            else:
                sep = b"" if old.endswith(b"\n") else b"\n"
                body = old + sep + new_bytes
            _atomic_write(real, body)
            return result
    except Exception as exc:  # OSError, filelock.Timeout, anything from a strange filesystem
        from filelock import Timeout

        if result is None:
            result = RecallResult()
        result.path = mem_path
        result.status = "failed"
        result.entry = ""
        reason = "the file is locked by another process" if isinstance(exc, Timeout) else f"{type(exc).__name__}: {exc}"
        _warn(result, f"memory file {mem_path} not written: {reason}")
        for f, k in zip(findings, occurrence_keys(findings)):
            result._keys.setdefault(_identity(f), k)
        return result


def record_quietly(
    report: Any,
    *,
    tool: str,
    target: str | None = None,
    path: str | os.PathLike[str] | None = None,
    enabled: bool = True,
    settings: Any = None,
    start: str | os.PathLike[str] | None = None,
) -> RecallResult | None:
    """:func:`record_analysis` for call sites in magics and commands: returns None
    when ``enabled`` is False (``--no-memory``), never raises, and issues no
    :class:`MemoryWarning` (the problems are in ``result.warnings`` and in
    ``result.summary()``, which the caller shows). Without ``settings`` the
    project's ``pyproject.toml`` (upward from ``start``) is read."""
    if not enabled:
        return None
    try:
        if settings is None:  # the project's [tool.async_expert] memory_file
            from .config import load_pyproject

            settings = load_pyproject(start)
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", MemoryWarning)
            return record_analysis(report, tool=tool, target=target, path=path, settings=settings, start=start)
    except Exception as exc:  # noqa: BLE001 - the memory file must never cost the user the report
        return RecallResult(path=None, status="failed", warnings=[f"memory file not updated: {type(exc).__name__}: {exc}"])


def read_memory(
    path: str | os.PathLike[str] | None = None,
    *,
    settings: Any = None,
    start: str | os.PathLike[str] | None = None,
) -> tuple[Path | None, list[MemoryEntry], list[str]]:
    """Read and parse the memory file.

    Takes the lock when it can (so a read never interleaves with a rotation);
    when the lock cannot be created (read-only folder) it reads without it,
    which is safe because writers replace the file atomically.

    Args:
        path, settings, start: as in :func:`resolve_memory_path`.

    Returns:
        ``(path, entries in file order, warnings)``; ``path`` is None when memory
        is off; a missing file gives no entries and no warning.
    """
    mem_path = resolve_memory_path(path, settings=settings, start=start)
    if mem_path is None:
        return None, [], []
    real = Path(os.path.realpath(mem_path))
    if real.is_dir():
        return mem_path, [], [f"{mem_path} is a folder, not a memory file"]
    try:
        lock = _lock_for(real)
        with lock:
            data = _read_bytes(real)
    except Exception:
        try:
            data = _read_bytes(real)
        except OSError as exc:
            return mem_path, [], [f"{mem_path}: {exc.strerror or exc}"]
    entries, warns = parse_memory(_decode(data))
    return mem_path, entries, warns


# ---------------------------------------------------------------------------
# Queries used by %async_memory and `async-expert memory`
# ---------------------------------------------------------------------------


def parse_since(text: str) -> _dt.datetime:
    """``YYYY-MM-DD`` or an ISO 8601 time (UTC unless it says otherwise).

    Raises:
        async_expert_ext.errors.UsageError: for anything else.
    """
    from .errors import UsageError

    t = _parse_time(text)
    if t is None:
        raise UsageError(f"--since: expected a date like 2026-11-02 or 2026-11-02T14:00, got {text!r}")
    return t


def filter_entries(
    entries: Iterable[MemoryEntry],
    *,
    target: str | None = None,
    kind: str | None = None,
    since: _dt.datetime | None = None,
    tool: str | None = None,
) -> list[MemoryEntry]:
    """Entries matching every given filter: ``target`` (a substring of the target
    or its resolved path), ``kind`` (a finding kind or code prefix present in the
    entry), ``since`` (at or after that UTC time), ``tool`` (substring)."""
    out = []
    for e in entries:
        if target and target not in e.target and target not in e.target_key:
            continue
        if kind and not any(d.get("kind") == kind or str(d.get("code", "")).startswith(kind) for d in e.findings):
            continue
        if since and e.time < since:
            continue
        if tool and tool not in e.tool:
            continue
        out.append(e)
    return out


def pattern_stats(entries: Sequence[MemoryEntry]) -> list[dict[str, Any]]:
    """Recurring patterns across entries, one row per kind, most frequent first.

    Returns:
        dicts ``{"kind", "entries" (int: entries it appears in), "findings" (int: occurrences
        over full entries, re-check notes not counted twice), "distinct" (int: distinct
        fingerprints), "open" (int: fingerprints present in the latest entry of their
        target), "first_seen", "last_seen" (``YYYY-MM-DD``), "fix" (str)}``.
    """
    rows: dict[str, dict[str, Any]] = {}
    latest: dict[tuple[str, str], MemoryEntry] = {}
    for e in entries:
        latest[(e.family, e.target_key)] = e
        day = e.time.strftime("%Y-%m-%d")
        kinds_here: set[str] = set()
        for d in e.findings:
            kind = str(d.get("kind", "?"))
            row = rows.setdefault(
                kind,
                {"kind": kind, "entries": 0, "findings": 0, "distinct": set(), "open": set(), "first_seen": day, "last_seen": day, "fix": ""},
            )
            if not e.unchanged:
                row["findings"] += 1
            row["distinct"].add(d.get("key") or d.get("fingerprint"))
            row["first_seen"] = min(row["first_seen"], str(d.get("first_seen") or day))
            row["last_seen"] = max(row["last_seen"], day)
            row["fix"] = row["fix"] or str(d.get("fix") or "")
            kinds_here.add(kind)
        for kind in kinds_here:
            rows[kind]["entries"] += 1
    for e in latest.values():
        for d in e.findings:
            rows[str(d.get("kind", "?"))]["open"].add(d.get("key") or d.get("fingerprint"))
    out = []
    for row in rows.values():
        row["distinct"] = len(row["distinct"])
        row["open"] = len(row["open"])
        out.append(row)
    out.sort(key=lambda r: (-r["entries"], -r["findings"], r["kind"]))
    return out


def render_entries_text(
    entries: Sequence[MemoryEntry], *, path: Path | None = None, stats: bool = False, warnings: Sequence[str] = ()
) -> str:
    """Plain text (also valid markdown) listing ``entries`` or, with ``stats``,
    the recurring patterns (:func:`pattern_stats`)."""
    lines: list[str] = []
    where = f" in {path}" if path else ""
    if stats:
        rows = pattern_stats(entries)
        lines.append(f"Recurring async patterns over {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}{where}:")
        if not rows:
            lines.append("  (none)")
        for r in rows:
            lines.append(
                f"- {r['kind']}: in {r['entries']} entr{'y' if r['entries'] == 1 else 'ies'}, "
                f"{r['findings']} finding(s), {r['distinct']} distinct, {r['open']} still open; "
                f"first {r['first_seen']}, last {r['last_seen']}"
            )
            if r["fix"]:
                lines.append(f"  fix: {r['fix']}")
    else:
        lines.append(f"{len(entries)} memory entr{'y' if len(entries) == 1 else 'ies'}{where}.")
        for e in entries:
            c = e.counts
            head = f"- {_human(e.time)} · {e.tool} · {e.target} · {_counts_text(c)}"
            if e.unchanged:
                lines.append(head + " (re-checked, unchanged)")
                continue
            new = sum(1 for d in e.findings if d.get("status") == "new")
            lines.append(head + f" ({new} new, {len(e.findings) - new} seen before, {len(e.fixed)} fixed)")
            for d in e.findings[:20]:
                lines.append(
                    f"    {str(d.get('severity', '')).upper():8} {d.get('path')}:{d.get('line')} "
                    f"{d.get('kind')} [{d.get('status', '')}, first {d.get('first_seen', '?')}]"
                )
            if len(e.findings) > 20:
                lines.append(f"    ... and {len(e.findings) - 20} more")
            for d in e.fixed[:20]:
                lines.append(f"    FIXED    {d.get('path')} {d.get('kind')} {d.get('snippet', '')}")
            if e.runtime:
                r = e.runtime
                lines.append(
                    f"    runtime: worst block {r.get('worst_block_ms', 0)} ms at {r.get('worst_block_at') or '-'}, "
                    f"max lag {r.get('max_lag_ms', 0)} ms, leaked tasks {r.get('leaked_tasks', 0)}"
                )
    for w in warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)

