"""SARIF 2.1.0 rendering of scan reports (``async-expert scan --format sarif``).

The output validates against the OASIS SARIF 2.1.0 JSON schema (errata 01,
https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json;
a copy is vendored in ``tests/data`` and checked with ``jsonschema`` in the
tests), and follows the subset GitHub code scanning reads
(https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning):

- every registered rule is a ``tool.driver.rules`` entry with its short and
  full description, ``help`` (text and Markdown: why it hurts, the fix, the
  before/after example) and ``helpUri`` (its first documentation reference);
- severities map to levels: critical -> ``error``, warning -> ``warning``,
  info -> ``note``;
- each result has a relative ``artifactLocation`` (``uriBaseId: "%SRCROOT%"``,
  the working directory) or an absolute ``file://`` URI, a region with 1-based
  columns counted in Unicode code points, the enclosing function as a logical
  location, the call chain of interprocedural findings as related locations and
  ``partialFingerprints`` from :attr:`Finding.fingerprint`;
- scan notes (unreadable, binary, huge files) are tool execution notifications.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..model import Finding, ScanReport, Severity

__all__ = ["render_scan", "SARIF_SCHEMA", "SARIF_VERSION", "LEVELS"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/async-expert-ext/"
#: Finding severity -> SARIF ``level``.
LEVELS = {Severity.CRITICAL: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_CELL = re.compile(r"^(?P<file>.+\.ipynb)\[cell (?P<cell>\d+)\]$")
_FRAME = re.compile(r"^(?P<what>.*) \((?P<path>.+):(?P<line>\d+)\)$")


def _uri(path: str) -> tuple[str, dict[str, Any]] | None:
    """``(uri, extra artifactLocation fields)`` for a finding path; None for
    labels that are not files (``In[5]``, ``<cell>``)."""
    if not path or path.startswith("<") or path.startswith("In["):
        return None
    if os.path.isabs(path):
        return Path(path).as_uri(), {}
    return quote(path.replace(os.sep, "/")), {"uriBaseId": "%SRCROOT%"}


def _column(snippet: str, col: int) -> int:
    """1-based code-point column from ast's 0-based UTF-8 byte offset."""
    if not snippet or col <= 0:
        return col + 1
    raw = snippet.encode("utf-8")
    return len(raw[:col].decode("utf-8", errors="ignore")) + 1


def _rule_descriptor(meta: dict[str, Any]) -> dict[str, Any]:
    refs = [r for r in meta.get("references", ()) if isinstance(r, str) and "://" in r]
    text_parts = [meta.get("explanation") or meta.get("message") or meta["kind"]]
    if meta.get("fix"):
        text_parts.append(f"Fix: {meta['fix']}")
    md_parts = list(text_parts)
    if meta.get("fix_example"):
        text_parts.append(meta["fix_example"])
        md_parts.append(f"```python\n{meta['fix_example']}\n```")
    if refs:
        text_parts.append("References: " + " ".join(refs))
        md_parts.append("References:\n" + "\n".join(f"- <{r}>" for r in refs))
    short = meta.get("message") or meta["kind"]
    desc: dict[str, Any] = {
        "id": meta["code"],
        "name": meta.get("name") or meta["code"],
        "shortDescription": {"text": re.sub(r"\{[^}]*\}", "...", short)},
        "fullDescription": {"text": meta.get("explanation") or short},
        "help": {"text": "\n\n".join(text_parts), "markdown": "\n\n".join(md_parts)},
        "defaultConfiguration": {"level": LEVELS[Severity.parse(meta.get("severity", "warning"))]},
        "properties": {
            "kind": meta["kind"],
            "section": meta.get("section", ""),
            "precision": {"high": "high", "medium": "medium", "low": "low"}.get(meta.get("confidence", "high"), "medium"),
            "tags": ["async", meta["kind"]],
        },
    }
    if refs:
        desc["helpUri"] = refs[0]
    return desc


def _rules_for(report: ScanReport) -> list[dict[str, Any]]:
    from ..scan.registry import all_rules

    metas: dict[str, dict[str, Any]] = {code: cls.doc() for code, cls in all_rules().items()}
    for f in report.findings:  # runtime or plug-in codes not in the registry
        if f.code not in metas:
            metas[f.code] = {
                "code": f.code,
                "name": f.code,
                "kind": f.kind,
                "severity": f.severity.value,
                "section": f.section.value,
                "confidence": f.confidence.value,
                "message": f.kind,
                "explanation": f.explanation,
                "fix": f.fix,
                "fix_example": f.fix_example,
                "references": list(f.references),
            }
    return [_rule_descriptor(metas[c]) for c in sorted(metas)]


def _location(path: str, line: int, *, col: int = 0, end_line: int = 0, snippet: str = "", symbol: str = "") -> dict[str, Any] | None:
    cell = _CELL.match(path)
    file_path = cell.group("file") if cell else path
    uri = _uri(file_path)
    loc: dict[str, Any] = {}
    if uri is not None:
        art: dict[str, Any] = {"uri": uri[0], **uri[1]}
        phys: dict[str, Any] = {"artifactLocation": art}
        if line > 0:
            region: dict[str, Any] = {"startLine": line, "startColumn": _column(snippet, col)}
            if end_line >= line:
                region["endLine"] = end_line
            if snippet:
                region["snippet"] = {"text": snippet}
            phys["region"] = region
        loc["physicalLocation"] = phys
    logical = []
    if symbol:
        logical.append({"fullyQualifiedName": symbol, "kind": "function"})
    if cell or uri is None:
        logical.append({"name": path, "kind": "module"})
    if logical:
        loc["logicalLocations"] = logical
    if cell:
        loc["properties"] = {"notebookCell": int(cell.group("cell")), "lineIsInCell": True}
    elif uri is None and line > 0:
        loc["properties"] = {"line": line}
    return loc or None


def _result(f: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    text = f.message
    if f.fix:
        text = text.rstrip()
        text += ("" if text.endswith((".", "!", "?", ")")) else ".") + f" Fix: {f.fix}"
    res: dict[str, Any] = {
        "ruleId": f.code,
        "ruleIndex": rule_index[f.code],
        "level": LEVELS[f.severity],
        "message": {"text": text},
        "partialFingerprints": {"asyncExpertFingerprint/v1": f.fingerprint},
        "properties": {
            "kind": f.kind,
            "severity": f.severity.value,
            "section": f.section.value,
            "confidence": f.confidence.value,
            "source": f.source,
        },
    }
    loc = _location(f.path, f.line, col=f.col, end_line=f.end_line, snippet=f.snippet, symbol=f.symbol)
    if loc:
        res["locations"] = [loc]
    related = []
    for i, step in enumerate(f.call_chain):
        m = _FRAME.match(step)
        if not m:
            continue
        rel = _location(m.group("path"), int(m.group("line")))
        if rel is None:
            continue
        rel["id"] = i
        rel["message"] = {"text": m.group("what")}
        related.append(rel)
    if related:
        res["relatedLocations"] = related
    if f.call_chain:
        res["properties"]["callChain"] = list(f.call_chain)
    if f.extra:
        res["properties"]["extra"] = dict(f.extra)
    return res


def render_scan(report: ScanReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log (a JSON-serialisable dict with one run).

    Returns:
        ``{"$schema": ..., "version": "2.1.0", "runs": [{"tool": {"driver": {...,
        "rules": [...]}}, "results": [...], "invocations": [...], ...}]}``.
    """
    rules = _rules_for(report)
    index = {r["id"]: i for i, r in enumerate(rules)}
    notifications = [
        {"level": "warning", "message": {"text": note}, "descriptor": {"id": "scan-note"}}
        for note in report.errors
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "async-expert",
                "fullName": "async-expert-ext static async scanner",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(os.getcwd()).as_uri() + "/"}},
        "invocations": [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": notifications,
                "properties": {"filesScanned": len(report.files_scanned), "seconds": round(report.seconds, 6)},
            }
        ],
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index) for f in report.findings],
    }
    if report.target:
        run["properties"] = {"target": report.target}
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
