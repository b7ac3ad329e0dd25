"""``%%loop_profile`` where no event loop runs while cells execute (terminal IPython):
the cell is run on IPython's own loop (``%autoawait``), with the same line numbers."""
from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    '''
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    ip = TerminalInteractiveShell.instance()
    ip.run_cell("%load_ext async_expert_ext")
    r = ip.run_cell("%%loop_profile --no-profile --no-memory -o rep\\nimport time\\ntime.sleep(0.2)\\nx = 41 + 1\\n")
    print("RESULT1", r.error_in_exec, r.error_before_exec)
    ip.run_cell("print('BLOCKING', [(b['line'], b['duration_ms'] >= 150) for b in rep.blocking_records], x)")
    ip.run_cell("%autoawait off")
    r = ip.run_cell("%%loop_profile --no-profile --no-memory\\nz = 1\\n")
    print("RESULT2", type(r.error_in_exec).__name__)
    '''
)


def test_loop_profile_in_terminal_ipython_uses_ipythons_loop(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = proc.stdout
    assert "RESULT1 None None" in out, out + proc.stderr
    assert "BLOCKING [(3, True)] 42" in out, out + proc.stderr
    # without %autoawait there is no loop to run the cell on: a one-line usage error
    assert "RESULT2 UsageError" in out, out
    assert "turn on `%autoawait asyncio`" in out + proc.stderr
