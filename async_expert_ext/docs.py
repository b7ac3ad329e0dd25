"""Generate ``docs/rules.md`` from the rule registry.

``python -m async_expert_ext.docs`` writes the file; ``--check`` exits 1 when
the file on disk differs from what the registry produces (CI runs that).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .model import KINDS
from .scan.registry import all_rules

__all__ = ["render_rules_md", "main"]

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def render_rules_md() -> str:
    """The full text of docs/rules.md: an index table, then one section per rule
    (code, kind, severity, section, explanation, fix, before/after, references)."""
    rules = all_rules()
    out = [
        "# Rules",
        "",
        "Generated from the rule registry by `python -m async_expert_ext.docs`; do not edit by hand.",
        "CI fails when this file is stale.",
        "",
        f"{len(rules)} static rules. Select or ignore them by code, code prefix (`AEX1`) or kind.",
        "",
        "| code | name | kind | severity | confidence | message |",
        "|---|---|---|---|---|---|",
    ]
    for code, cls in rules.items():
        d = cls.doc()
        msg = d["message"].replace("|", "\\|")
        out.append(f"| [{code}](#{code.lower()}) | {d['name']} | `{d['kind']}` | {d['severity']} | {d['confidence']} | {msg} |")
    out += ["", "## Kinds", "", "| kind | meaning |", "|---|---|"]
    for kind, meaning in KINDS.items():
        out.append(f"| `{kind}` | {meaning} |")
    for code, cls in rules.items():
        d = cls.doc()
        out += [
            "",
            f"## {code}",
            "",
            f"**{d['name']}** · kind `{d['kind']}` · severity {d['severity']} · section {d['section']} · confidence {d['confidence']}",
            "",
            f"Message: {d['message']}",
            "",
            f"Why it hurts: {d['explanation']}",
            "",
            f"Fix: {d['fix']}",
        ]
        if d["fix_example"]:
            out += ["", "```python", d["fix_example"].rstrip(), "```"]
        if d["references"]:
            out += ["", "References:"] + [f"- <{r}>" for r in d["references"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/rules.md, or with ``--check`` return 1 when it is stale (0 otherwise)."""
    parser = argparse.ArgumentParser(prog="python -m async_expert_ext.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/rules.md is stale")
    parser.add_argument("--path", default=str(DEFAULT_PATH))
    args = parser.parse_args(argv)
    text = render_rules_md()
    path = Path(args.path)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run `python -m async_expert_ext.docs`", file=sys.stderr)
            return 1
        print(f"{path} is up to date ({text.count(chr(10) + '## AEX')} rules)")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
