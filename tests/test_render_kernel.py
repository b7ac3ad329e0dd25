"""``display_report`` in a real kernel (nbclient): ONE display_data carrying the
widget view, ``text/html`` and ``text/plain``; and the scan magic shows it."""
from __future__ import annotations

import pytest
from kernel_helpers import run_cells

pytestmark = pytest.mark.kernel

WIDGET = "application/vnd.jupyter.widget-view+json"

CODE = "import time\\n\\nasync def handler():\\n    time.sleep(1)\\n"


def test_display_report_is_one_bundle_with_fallbacks(tmp_path):
    cells = run_cells(
        [
            "from async_expert_ext.render import display_report\n"
            "from async_expert_ext.scan.runner import scan_source\n"
            f"display_report(scan_source('{CODE}', path='app.py'))",
            "%load_ext async_expert_ext",
            "%%async_scan --no-memory\nimport time\nasync def handler():\n    time.sleep(1)\n",
        ],
        cwd=tmp_path,
    )
    for cell in (cells[0], cells[2]):
        assert cell.error is None, cell.error
        bundles = [b for b in cell.bundles if WIDGET in b]
        assert len(bundles) == 1, cell.bundles
        bundle = bundles[0]
        assert {"text/plain", "text/html", WIDGET} <= set(bundle)
    plain0 = "".join(cells[0].bundles[-1]["text/plain"])
    assert "app.py:4 [AEX101 blocking-call-in-async]" in plain0
    html2 = "".join([b for b in cells[2].bundles if WIDGET in b][0]["text/html"])
    assert "In[3]:4" in html2 and "AEX101" in html2
