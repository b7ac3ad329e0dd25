"""JSON rendering of scan reports (``async-expert scan --format json``)."""
from __future__ import annotations

import json

from ..model import ScanReport

__all__ = ["render_scan"]


def render_scan(report: ScanReport, *, indent: int | None = None) -> str:
    """One JSON object: ``{"findings": [Finding.to_dict()...], "files_scanned": N,
    "errors": ["note", ...], "seconds": S, "target": T}`` (``seconds`` is the scan's
    wall time in seconds). Non-ASCII text is kept as is."""
    return json.dumps(report.to_dict(), indent=indent, ensure_ascii=False, default=str)
