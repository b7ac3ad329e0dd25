"""Run notebook cells in a real ipykernel (nbformat + nbclient) and read their outputs.

Usage::

    from kernel_helpers import run_cells

    cells = run_cells(["%load_ext async_expert_ext", "%%async_scan\\n..."], cwd=tmp_path)
    cells[1].error            # None, or CellError(ename, evalue, traceback)
    cells[1].mime("text/plain")  # every display_data/execute_result bundle's text/plain
    cells[1].stdout           # stream text

Each call starts one kernel (about 1-2 s), runs the cells in order in the
working directory ``cwd`` (``allow_errors``: a failing cell does not stop the
following ones) and shuts the kernel down. Keep cells of one test in one call.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["KERNEL_NAME", "CellError", "CellResult", "ensure_kernelspec", "run_cells"]

#: The kernelspec every kernel test runs.
KERNEL_NAME = "python3"

_spec_lock = threading.Lock()
_spec_ready = False


def ensure_kernelspec(name: str = KERNEL_NAME) -> None:
    """Make sure a kernelspec called ``name`` exists (``python -m ipykernel install
    --user`` when it does not). Idempotent and cheap after the first call."""
    global _spec_ready
    with _spec_lock:
        if _spec_ready:
            return
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            subprocess.run(
                [sys.executable, "-m", "ipykernel", "install", "--user", "--name", name],
                check=True,
                capture_output=True,
            )
        _spec_ready = True


@dataclass
class CellError:
    """An exception raised by a cell: ``ename`` (e.g. ``"UsageError"``), ``evalue``
    (the message) and the traceback lines (with ANSI colours)."""

    ename: str
    evalue: str
    traceback: list[str] = field(default_factory=list)


@dataclass
class CellResult:
    """What one executed cell produced.

    Attributes:
        source: the cell's source.
        execution_count: the ``n`` of ``In[n]``.
        outputs: the raw nbformat outputs.
        bundles: the mime bundles (``{"text/plain": ..., "text/html": ...}``) of every
            ``display_data``, ``update_display_data`` and ``execute_result`` output, in order.
        stdout / stderr: the stream text.
        error: the cell's exception, or None. IPython prints a ``UsageError`` as
            one stderr line instead of an error output; that line becomes
            ``CellError("UsageError", message)``.
    """

    source: str
    execution_count: int | None
    outputs: list[dict[str, Any]]
    bundles: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    error: CellError | None = None

    def mime(self, mimetype: str = "text/plain") -> str:
        """Every bundle's ``mimetype`` entry joined by newlines ('' when none)."""
        parts = []
        for b in self.bundles:
            value = b.get(mimetype)
            if value is None:
                continue
            parts.append("".join(value) if isinstance(value, list) else str(value))
        return "\n".join(parts)

    @property
    def text(self) -> str:
        """stdout, stderr and every text/plain bundle, for quick ``in`` checks."""
        return "\n".join(p for p in (self.stdout, self.stderr, self.mime("text/plain")) if p)


def _result(cell: Any) -> CellResult:
    res = CellResult(source=cell.source, execution_count=cell.get("execution_count"), outputs=[dict(o) for o in cell.outputs])
    for out in cell.outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            if out.get("name") == "stderr":
                res.stderr += text
            else:
                res.stdout += text
        elif kind in ("display_data", "update_display_data", "execute_result"):
            res.bundles.append(dict(out.get("data", {})))
        elif kind == "error":
            res.error = CellError(out.get("ename", ""), out.get("evalue", ""), list(out.get("traceback", [])))
    if res.error is None:
        # IPython shows a UsageError as one stderr line ("UsageError: ..."), not as an error output
        for line in res.stderr.splitlines():
            if line.startswith("UsageError: "):
                res.error = CellError("UsageError", line[len("UsageError: ") :], [])
                break
    return res


@contextmanager
def _environ(env: Mapping[str, str] | None) -> Iterator[None]:
    if not env:
        yield
        return
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cells(
    cells: Sequence[str],
    cwd: str | os.PathLike[str],
    *,
    timeout: float = 60.0,
    startup_timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    kernel_name: str = KERNEL_NAME,
) -> list[CellResult]:
    """Execute ``cells`` in order in a fresh kernel and return one result per cell.

    Args:
        cells: the source of each code cell.
        cwd: the kernel's working directory (use the test's ``tmp_path``).
        timeout: seconds one cell may run before nbclient gives up (the error is
            then recorded on that cell, as ``CellTimeoutError``, and the run stops).
        startup_timeout: seconds the kernel may take to start.
        env: extra environment variables for the kernel process.
        kernel_name: the kernelspec (created when missing, see :func:`ensure_kernelspec`).

    Returns:
        One :class:`CellResult` per cell, in order.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    ensure_kernelspec(kernel_name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=timeout,
        startup_timeout=int(startup_timeout),
        allow_errors=True,
        resources={"metadata": {"path": str(Path(cwd))}},
    )
    with _environ({**(env or {}), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}):
        try:
            client.execute()
        except (CellTimeoutError, DeadKernelError) as exc:
            # keep what ran; mark the first cell without a result
            for cell in nb.cells:
                if cell.get("execution_count") is None and not cell.outputs:
                    cell.outputs = [nbformat.v4.new_output("error", ename=type(exc).__name__, evalue=str(exc).splitlines()[0] if str(exc) else "", traceback=[])]
                    break
    return [_result(c) for c in nb.cells]
