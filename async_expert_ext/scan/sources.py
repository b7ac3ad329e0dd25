"""Finding and reading what a scan covers, without importing or running it.

- files are decoded as PEP 263 says (coding cookie or BOM, else UTF-8);
- binary files (a NUL byte in the first 8 KiB) and huge files (over
  :data:`MAX_BYTES`) are skipped with a note;
- folders are walked recursively, skipping hidden folders, virtual
  environments, build output and caches, and never entering a symlink loop;
- notebooks contribute their code cells, with IPython magics neutralised so that
  line numbers stay those of the cell;
- a dotted module is located with :func:`importlib.util.find_spec`, which may
  import its parent packages but never the module itself.
"""
from __future__ import annotations

import fnmatch
import functools
import importlib.util
import io
import json
import os
import re
import stat
import tokenize
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from ..errors import TargetNotFound

__all__ = [
    "SourceUnit",
    "MAX_BYTES",
    "SKIP_DIRS",
    "decode_source",
    "iter_python_files",
    "notebook_cells",
    "neutralise_magics",
    "module_name_for",
    "find_module_path",
    "Planned",
    "plan_paths",
    "read_plan",
]

#: Files larger than this are skipped with a note (bytes).
MAX_BYTES = 2 * 1024 * 1024
#: Folder names never entered when walking a folder.
SKIP_DIRS = frozenset(
    {".venv", "venv", "env", ".env", "build", "dist", "__pycache__", "node_modules", ".tox", ".nox", ".git", ".hg", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs"}
)


@dataclass
class SourceUnit:
    """One piece of source to scan.

    Attributes:
        path: the label findings carry (a file path, ``In[5]``, ``nb.ipynb[cell 3]``).
        module: dotted module name used for qualnames.
        package: the package relative imports resolve against.
        text: the decoded source (None when it could not be read; see ``note``).
        notebook: a notebook cell (top-level await allowed).
        note: why the unit was skipped, or "".
        line_offset: added to every line number (live objects scanned from a slice).
    """

    path: str
    module: str
    package: str = ""
    text: str | None = None
    notebook: bool = False
    note: str = ""


def decode_source(data: bytes) -> str:
    """Decode Python source bytes as PEP 263 says.

    Raises:
        SyntaxError: for an unknown or invalid coding cookie.
        UnicodeDecodeError: when the bytes are not in the declared encoding.
    """
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_unit(path: str, label: str, module: str, package: str) -> SourceUnit:
    """Read one file into a :class:`SourceUnit` (never raises; failures become notes)."""
    unit = SourceUnit(path=label, module=module, package=package)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            # a FIFO or device named *.py would block open() or never end
            unit.note = f"{label}: skipped, not a regular file"
            return unit
        size = st.st_size
        if size > MAX_BYTES:
            unit.note = f"{label}: skipped, {size / 1048576:.1f} MiB is over the {MAX_BYTES // 1048576} MiB limit"
            return unit
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        unit.note = f"{label}: unreadable ({exc.strerror or exc})"
        return unit
    if b"\x00" in data[:8192]:
        unit.note = f"{label}: skipped, binary file"
        return unit
    try:
        unit.text = decode_source(data)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        unit.note = f"{label}: cannot decode ({exc})"
    return unit


@functools.lru_cache(maxsize=4096)
def _package_parts(folder: str) -> tuple[str, ...]:
    """The dotted package path of a folder (``("pkg", "sub")``), from the
    ``__init__.py`` files in it and above it; ``()`` outside a package.
    Memoised: a folder scan asks once per folder, not once per file."""
    if not os.path.isfile(os.path.join(folder, "__init__.py")):
        return ()
    parent = os.path.dirname(folder)
    if parent == folder:
        return (os.path.basename(folder),)
    return (*_package_parts(parent), os.path.basename(folder))


def module_name_for(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(module, package)`` of a file, from the ``__init__.py`` files above it."""
    p = os.path.realpath(os.fspath(path))
    name = os.path.basename(p)
    stem = name.rpartition(".")[0] or name
    parts = [*_package_parts(os.path.dirname(p))]
    if name != "__init__.py":
        parts.append(stem)
    module = ".".join(parts) or stem
    package = module if name == "__init__.py" else module.rpartition(".")[0]
    return module, package


def _excluded(path: str, patterns: Sequence[str]) -> bool:
    if not patterns:
        return False
    name = os.path.basename(path)
    norm = path.replace(os.sep, "/")
    return any(
        fnmatch.fnmatch(norm, pat) or fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(norm, "*/" + pat.lstrip("/"))
        for pat in patterns
    )


def iter_python_files(root: str, exclude: Sequence[str] = ()) -> Iterator[str]:
    """Every ``.py``/``.pyi``-less Python file under ``root`` (sorted, recursive),
    following symlinks but never entering a folder twice (so loops end)."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            real = os.path.realpath(folder)
        except OSError:
            continue
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:  # e.g. a symlink to itself: let read_unit note why
                is_dir = False
            if is_dir:
                if entry.name.startswith(".") or entry.name in SKIP_DIRS or entry.name.endswith(".egg-info"):
                    continue
                if _excluded(entry.path, exclude):
                    continue
                subdirs.append(entry.path)
            elif entry.name.endswith(".py") and not _excluded(entry.path, exclude):
                yield entry.path
        stack.extend(reversed(subdirs))


_MAGIC_LINE = re.compile(r"^(\s*)(%{1,2}|!{1,2})")
_ASSIGN_MAGIC = re.compile(r"^(\s*)([\w.,\s]+)=\s*(%|!)")
#: cell magics whose body is Python
PYTHON_CELL_MAGICS = frozenset({"async_scan", "loop_profile", "time", "timeit", "capture", "prun", "pyinstrument", "debug"})


def neutralise_magics(cell: str) -> str | None:
    """Make a notebook cell parseable as Python, keeping its line numbers.

    Line magics, shell escapes (``!ls``, ``x = !ls``) and help (``obj?``) become
    ``pass`` statements (or ``x = None``). A cell magic whose body is not Python
    (``%%bash``, ``%%html``) gives None: there is nothing to scan.
    """
    lines = cell.split("\n")
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        name = first[2:].split()[0] if len(first) > 2 else ""
        if name not in PYTHON_CELL_MAGICS:
            return None
        lines[0] = ""
    out = []
    for line in lines:
        m = _MAGIC_LINE.match(line)
        if m:
            out.append(f"{m.group(1)}pass")
            continue
        m = _ASSIGN_MAGIC.match(line)
        if m and not line.lstrip().startswith("#"):
            out.append(f"{m.group(1)}{m.group(2).strip()} = None")
            continue
        stripped = line.rstrip()
        if stripped.endswith("?") and not stripped.lstrip().startswith("#") and re.match(r"^\s*[\w.]+\?{1,2}$", stripped):
            out.append(re.sub(r"[\w.]+\?{1,2}$", "pass", stripped))
            continue
        out.append(line)
    return "\n".join(out)


def notebook_cells(path: str) -> list[tuple[int, str]]:
    """``(index, source)`` of the code cells of a notebook (1-based index).

    Raises:
        ValueError: when the file is not a valid notebook (JSON with ``cells``).
        OSError: when it cannot be read.
    """
    with open(path, "rb") as fh:
        data = json.loads(fh.read().decode("utf-8"))
    if not isinstance(data, dict) or "cells" not in data:
        raise ValueError("not a notebook: no 'cells'")
    out = []
    n = 0
    for cell in data["cells"]:
        if cell.get("cell_type") != "code":
            continue
        n += 1
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(src)
        out.append((n, src))
    return out


def find_module_path(name: str) -> str:
    """The file (or package folder) of a dotted module, found with
    :func:`importlib.util.find_spec` (the module itself is not imported).

    Raises:
        TargetNotFound: when no such module can be found.
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError) as exc:
        raise TargetNotFound(f"no module named {name!r} ({exc})") from None
    if spec is None:
        raise TargetNotFound(f"no module named {name!r}")
    if spec.submodule_search_locations:
        locs = list(spec.submodule_search_locations)
        if locs:
            return locs[0]
    if spec.origin and spec.origin not in ("built-in", "frozen") and spec.origin.endswith(".py"):
        return spec.origin
    raise TargetNotFound(f"module {name!r} has no Python source ({spec.origin})")


@dataclass(frozen=True)
class Planned:
    """A file a scan will read: its real path, the label findings carry, its module
    and package, and whether it is a notebook (whose code cells become units)."""

    path: str
    label: str
    module: str
    package: str
    notebook: bool = False


def plan_paths(paths: Iterable[str], exclude: Sequence[str] = ()) -> list[Planned]:
    """The files that scanning ``paths`` reads, without reading them (folders are
    walked, ``exclude`` applied).

    Raises:
        TargetNotFound: when a path does not exist.
    """
    _package_parts.cache_clear()  # __init__.py files may have come or gone since the last scan
    out: list[Planned] = []
    for raw in paths:
        if not os.path.exists(raw):
            raise TargetNotFound(f"no such file or folder: {raw}")
        if os.path.isdir(raw):
            for f in iter_python_files(raw, exclude):
                module, package = module_name_for(f)
                out.append(Planned(f, _display(f), module, package))
        elif raw.endswith(".ipynb"):
            out.append(Planned(raw, _display(raw), "__main__", "", notebook=True))
        else:
            module, package = module_name_for(raw)
            out.append(Planned(raw, _display(raw), module, package))
    return out


def read_plan(plan: Iterable[Planned]) -> Iterator[SourceUnit]:
    """The source units of planned files (a notebook gives one unit per code cell)."""
    for p in plan:
        if p.notebook:
            yield from notebook_units(p.path)
        else:
            yield read_unit(p.path, p.label, p.module, p.package)


def units_for_paths(paths: Iterable[str], exclude: Sequence[str] = ()) -> Iterator[SourceUnit]:
    """Source units for files, folders and notebooks (:func:`plan_paths` then :func:`read_plan`).

    Raises:
        TargetNotFound: when a path does not exist.
    """
    return read_plan(plan_paths(paths, exclude))


def notebook_units(path: str) -> Iterator[SourceUnit]:
    """One unit per code cell of a notebook, labelled ``nb.ipynb[cell N]``; magics are
    neutralised (line numbers kept) and non-Python cell magics skipped. An unreadable
    notebook gives one unit with a note."""
    label = _display(path)
    try:
        cells = notebook_cells(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        yield SourceUnit(path=label, module="__main__", note=f"{label}: not a readable notebook ({exc})")
        return
    for n, src in cells:
        text = neutralise_magics(src)
        if text is None:
            continue
        yield SourceUnit(path=f"{label}[cell {n}]", module="__main__", text=text, notebook=True)


def _display(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
