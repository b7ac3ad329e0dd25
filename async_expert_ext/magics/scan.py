"""``%async_scan`` / ``%%async_scan``: the static scanner in a notebook.

Targets (nothing is imported or run, except that live objects already exist):

- ``%%async_scan`` scans the cell body without running it. Line numbers are the
  ones Jupyter shows for the cell: the ``%%async_scan`` line is line 1, so the
  first body line is line 2. Findings are labelled ``In[7]:3`` (the cell's
  execution count), and the body is linked with the cells run before it, so a
  helper defined in an earlier cell that blocks is reported at its call site.
- ``%async_scan`` with no argument scans every cell run so far in the session,
  linked as one program; each cell is labelled by its execution count
  (``In[5]:3``). The cell holding the current ``%async_scan`` call and the bodies of
  earlier ``%%async_scan`` cells (which never ran) are skipped; cells whose
  cell magic does not hold Python (``%%bash``, ``%%html``) are skipped too.
- ``%async_scan PATH...``: files, folders (recursive; ``--exclude GLOB``) and
  ``.ipynb`` notebooks.
- ``%async_scan NAME``: a function, class, method, module or FastAPI/Starlette app
  in the user namespace (dotted attribute access allowed: ``obj.method``).
- ``%async_scan dotted.module``: located with :func:`importlib.util.find_spec`.

When an argument could mean several things the order is: an existing path, then a
name in the user namespace, then an importable module.

Every bad input raises IPython's :class:`~IPython.core.error.UsageError` with one
line; the kernel's namespace is never touched except for ``_async_scan`` and ``-o NAME``.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import keyword
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .. import errors
from ..config import Settings
from ..model import ScanReport

__all__ = [
    "MAGICS",
    "AsyncScanMagics",
    "cell_python",
    "current_cell_number",
    "namespace_seed",
    "resolve_target",
    "runtime_type_name",
    "session_cells",
]

#: Names IPython puts in every user namespace; never used as scan seeds.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})

#: C-level modules whose functions are documented under another name.
_MODULE_ALIASES = {"posix": "os", "nt": "os", "_io": "io", "_socket": "socket", "_thread": "threading", "_sqlite3": "sqlite3"}

#: Runtime classes whose name differs from the one the rule tables use.
_RUNTIME_TYPES = {
    "_thread.lock": "threading.Lock",
    "_thread.RLock": "threading.Lock",
    "threading.RLock": "threading.Lock",
    "threading._RLock": "threading.Lock",
    "_io.TextIOWrapper": "io.File",
    "_io.BufferedReader": "io.File",
    "_io.BufferedWriter": "io.File",
    "_io.BufferedRandom": "io.File",
    "_io.FileIO": "io.File",
    "io.TextIOWrapper": "io.File",
    "io.BufferedReader": "io.File",
    "io.BufferedWriter": "io.File",
    "io.BufferedRandom": "io.File",
    "io.FileIO": "io.File",
    "concurrent.futures._base.Future": "concurrent.futures.Future",
    "concurrent.futures._base.Executor": "concurrent.futures.Executor",
    "concurrent.futures.thread.ThreadPoolExecutor": "concurrent.futures.Executor",
    "concurrent.futures.process.ProcessPoolExecutor": "concurrent.futures.Executor",
    "sqlalchemy.engine.base.Engine": "sqlalchemy.Engine",
    "sqlalchemy.engine.base.Connection": "sqlalchemy.Connection",
    "sqlalchemy.orm.session.Session": "sqlalchemy.orm.Session",
    "sqlalchemy.orm.session.sessionmaker": "sqlalchemy.orm.sessionmaker",
    "redis.client.Redis": "redis.Redis",
    "pymongo.mongo_client.MongoClient": "pymongo.MongoClient",
    "pymysql.connections.Connection": "pymysql.Connection",
    "urllib3.poolmanager.PoolManager": "urllib3.PoolManager",
    "http.client.HTTPSConnection": "http.client.HTTPConnection",
    "fastapi.applications.FastAPI": "fastapi.FastAPI",
    "fastapi.routing.APIRouter": "fastapi.APIRouter",
    "starlette.applications.Starlette": "starlette.Starlette",
}

#: (module prefix, class name) pairs that make an object an ASGI app for ``_scan_app``.
_APP_CLASSES = {("fastapi", "FastAPI"), ("fastapi", "APIRouter"), ("starlette", "Starlette"), ("starlette", "Router")}


# ---------------------------------------------------------------------------
# seeds from the live namespace
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _known_types() -> frozenset[str]:
    """Object types the rule tables know (constructor results and method tables)."""
    from ..scan.knowledge import CONSTRUCTORS
    from ..scan.registry import all_rules

    out: set[str] = set()
    for value in CONSTRUCTORS.values():
        out.update((value,) if isinstance(value, str) else value)
    for cls in all_rules().values():
        out.update(getattr(cls, "methods", {}) or {})
    out.update(_RUNTIME_TYPES.values())
    out.discard("tuple")
    return frozenset(out)


def runtime_type_name(cls: type) -> str | None:
    """The type name the scanner uses for instances of ``cls``.

    Walks the MRO, so a subclass of ``requests.Session`` is a ``"requests.Session"``.
    Classes defined in notebook cells give ``"__main__.Name"``; other
    library classes their canonical dotted name; builtins (``int``, ``dict``) None.
    """
    from ..scan.knowledge import canonical

    known = _known_types()
    for klass in getattr(cls, "__mro__", (cls,)):
        mod = getattr(klass, "__module__", "") or ""
        qual = getattr(klass, "__qualname__", "") or ""
        full = f"{mod}.{qual}"
        if full in _RUNTIME_TYPES:
            return _RUNTIME_TYPES[full]
        name = canonical(f"{_MODULE_ALIASES.get(mod, mod)}.{qual}")
        if name in known:
            return name
    mod = getattr(cls, "__module__", "") or ""
    if mod in ("builtins", "") or "<locals>" in getattr(cls, "__qualname__", ""):
        return None
    if mod == "__main__":
        return f"__main__.{cls.__qualname__}"
    return canonical(f"{mod}.{cls.__qualname__}")


def _callable_qualname(value: Any) -> str | None:
    from ..scan.knowledge import canonical

    if isinstance(value, types.MethodType) or (
        isinstance(value, types.BuiltinMethodType) and getattr(value, "__self__", None) is not None
        and not inspect.ismodule(value.__self__)
    ):
        owner = value.__self__
        base = owner.__qualname__ if isinstance(owner, type) else runtime_type_name(type(owner))
        if isinstance(owner, type):
            base = runtime_type_name(owner) or base
        return f"{base}.{value.__name__}" if base else None
    if isinstance(value, functools.partial):
        return _callable_qualname(value.func)
    if isinstance(value, type):
        return runtime_type_name(value)
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        mod = getattr(value, "__module__", None) or ""
        qual = getattr(value, "__qualname__", None) or getattr(value, "__name__", "")
        if not qual or "<locals>" in qual or "<lambda>" in qual:
            return None
        mod = _MODULE_ALIASES.get(mod, mod)
        if not mod:
            return None
        return canonical(f"{mod}.{qual}")
    return None


def namespace_seed(ns: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Names the scanner should know before a cell's first line, from a live namespace.

    Args:
        ns: the kernel's user namespace.

    Returns:
        ``{"aliases": {name: qualified name}, "types": {name: type name}}``:
        modules by their ``__name__`` (``import time as t`` -> ``{"t": "time"}``),
        functions and classes by ``module.qualname`` (``from time import sleep``
        -> ``"time.sleep"``; cell functions -> ``"__main__.f"``), bound methods by
        their instance's type, and instances by :func:`runtime_type_name`
        (a ``requests.Session()`` -> ``"requests.Session"``). Private names
        (``_x``) and IPython's own names are skipped.
    """
    aliases: dict[str, str] = {}
    typ: dict[str, str] = {}
    for name, value in list(ns.items()):
        if name.startswith("_") or name in _IPYTHON_NAMES or not name.isidentifier():
            continue
        try:
            if inspect.ismodule(value):
                if value.__name__ != "__main__":
                    aliases[name] = value.__name__
                continue
            if callable(value) and not _is_instance_of_user_callable(value):
                q = _callable_qualname(value)
                if q:
                    aliases[name] = q
                continue
            t = runtime_type_name(type(value))
            if t:
                typ[name] = t
        except Exception:  # noqa: BLE001, S112 - a namespace object with a hostile __getattr__
            continue
    return {"aliases": aliases, "types": typ}


def _is_instance_of_user_callable(value: Any) -> bool:
    """True for instances of classes with ``__call__`` (typed like any instance)."""
    return not isinstance(
        value, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType, functools.partial)
    )


# ---------------------------------------------------------------------------
# session cells
# ---------------------------------------------------------------------------
def _cell_magic_name(text: str) -> str | None:
    first = text.lstrip("\n").split("\n", 1)[0].strip() if text.strip() else ""
    if text.startswith("%%") and len(first) > 2:
        return first[2:].split()[0]
    return None


def cell_python(raw: str, transform: Callable[[str], str] | None = None) -> str | None:
    """The Python of a notebook cell, keeping the cell's line numbers.

    Line magics, ``!shell`` lines and ``obj?`` go through IPython's input transformer
    (``transform``, e.g. ``ip.transform_cell``), so they become the calls IPython runs.
    A leading cell magic line whose body is Python (``%%time``, ``%%loop_profile``)
    becomes a blank line; a cell magic whose body is not Python (``%%bash``) or that
    never runs its body (``%%async_scan``) gives None.

    Args:
        raw: the cell as typed.
        transform: IPython's cell transformer; without one, magics are replaced by
            ``pass`` (:func:`async_expert_ext.scan.sources.neutralise_magics`).
    """
    from ..scan.sources import PYTHON_CELL_MAGICS, neutralise_magics

    name = _cell_magic_name(raw)
    if name is not None:
        if name == "async_scan" or name not in PYTHON_CELL_MAGICS:
            return None
        raw = "\n" + raw.split("\n", 1)[1] if "\n" in raw else ""
    if transform is None:
        return neutralise_magics(raw)
    try:
        out = transform(raw)
    except Exception:  # noqa: BLE001 - a broken third-party transformer: fall back
        return neutralise_magics(raw)
    raw_lines = raw.rstrip("\n").split("\n")
    lead = 0
    for line in raw_lines:
        if line.strip():
            break
        lead += 1
    out = "\n" * lead + out
    if len(out.rstrip("\n").split("\n")) != len(raw_lines) and raw.strip():
        return neutralise_magics(raw)  # a transformer moved lines: keep numbering instead
    return out


def current_cell_number(ip: Any) -> int:
    """The execution count of the cell being run (the ``n`` of ``In[n]``).

    IPython 9 increments ``execution_count`` before running a cell and stores its
    input first, so the running cell is the last entry of the input history.
    """
    hist = getattr(getattr(ip, "history_manager", None), "input_hist_raw", None) or []
    if len(hist) > 1:
        return len(hist) - 1
    return max(int(getattr(ip, "execution_count", 1)) - 1, 0)


def session_cells(ip: Any, *, skip: Iterable[int] = ()) -> list[tuple[str, str]]:
    """``[("In[1]", python), ...]``: the cells run so far in this kernel session.

    Args:
        ip: the InteractiveShell.
        skip: execution counts to leave out (the cell running the scan).
    """
    skipped = set(skip)
    raw_hist = list(getattr(ip.history_manager, "input_hist_raw", []) or [])
    if not raw_hist:
        raw_hist = list(ip.user_ns.get("In", []) or [])
    transform = getattr(ip, "transform_cell", None)
    out: list[tuple[str, str]] = []
    for n, raw in enumerate(raw_hist):
        if n == 0 or n in skipped or not raw or not raw.strip():
            continue
        text = cell_python(raw, transform)
        if text is None or not text.strip():
            continue
        out.append((f"In[{n}]", text))
    return out


# ---------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------
def _is_app(obj: Any) -> bool:
    for klass in getattr(type(obj), "__mro__", ()):
        mod = (getattr(klass, "__module__", "") or "").split(".")[0]
        if (mod, klass.__name__) in _APP_CLASSES:
            return True
    return False


def _defining_modules(obj: Any) -> list[Any]:
    """Imported modules (other than ``__main__``) with a global bound to ``obj``."""
    found = []
    for mod in list(sys.modules.values()):
        if mod is None or getattr(mod, "__name__", "") in ("__main__", "builtins"):
            continue
        try:
            values = vars(mod).values()
        except TypeError:
            continue
        if any(v is obj for v in list(values)) and str(getattr(mod, "__file__", "") or "").endswith(".py"):
            found.append(mod)
    return found


def _scan_app(obj: Any, *, name: str, settings: Settings, ip: Any = None) -> ScanReport:
    """Scan a FastAPI/Starlette application (or router) object.

    Route-aware (:func:`async_expert_ext.fastapi_inspect.inspect_app`): the files of
    the endpoints, dependencies and middleware and the project modules they import;
    else the module file that defines ``obj``, or the session's cells when the app
    was built in the notebook (then findings are matched to routes by name).

    Raises:
        async_expert_ext.errors.TargetNotFound: when no source can be found.
    """
    from ..fastapi_inspect import inspect_app
    from ..scan.runner import scan_cells, scan_paths

    # route-aware scan: the files of the endpoints, dependencies and middleware, plus the
    # project modules they import; the AppInspection (per-route DataFrame: .frame())
    # is kept as `_async_app` and on the report as `app_inspection`
    insp = inspect_app(obj, settings=settings)
    if insp.files:
        report = insp.report
        report.target = name
        report.app_inspection = insp  # type: ignore[attr-defined]
        if ip is not None:
            ip.user_ns["_async_app"] = insp
        return report
    mods = _defining_modules(obj)
    if mods:
        report = scan_paths([m.__file__ for m in mods], settings)
        report.target = name
        return report
    if ip is not None and any(v is obj for v in ip.user_ns.values()):
        cells = session_cells(ip, skip=[current_cell_number(ip)])
        if cells:
            report = scan_cells(cells, settings, target=name, seed=namespace_seed(ip.user_ns))
            ip.user_ns["_async_app"] = inspect_app(obj, settings=settings, report=report)
            return report
    files = []
    for route in getattr(obj, "routes", []) or []:
        fn = getattr(route, "endpoint", None)
        try:
            f = inspect.getsourcefile(inspect.unwrap(fn)) if fn is not None else None
        except TypeError:
            f = None
        if f and os.path.isfile(f) and "site-packages" not in f and f not in files:
            files.append(f)
    if not files:
        raise errors.TargetNotFound(f"cannot find the source of app {name!r}")
    report = scan_paths(files, settings)
    report.target = name
    return report


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    if isinstance(obj, property) and obj.fget is not None:
        obj = obj.fget
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if isinstance(obj, functools.partial):
        obj = obj.func
    try:
        return inspect.unwrap(obj)
    except ValueError:
        return obj


def _cell_span(cells: list[tuple[str, str]], qualname: str) -> tuple[str, int, int] | None:
    """The last cell defining ``qualname`` at its top level, and its line span."""
    parts = qualname.split(".")
    for label, text in reversed(cells):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            try:
                tree = compile(text, label, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            except (SyntaxError, ValueError):
                continue
        body: list[ast.stmt] = tree.body  # type: ignore[attr-defined]
        node: ast.AST | None = None
        for part in parts:
            node = next(
                (n for n in reversed(body) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part),
                None,
            )
            if node is None:
                break
            body = node.body  # type: ignore[attr-defined]
        if node is not None:
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])  # type: ignore[attr-defined]
            return label, start, node.end_lineno or node.lineno  # type: ignore[attr-defined]
    return None


def _within(report: ScanReport, path: str, start: int, end: int, target: str) -> ScanReport:
    kept = [f for f in report.findings if f.path == path and start <= f.line <= end]
    out = dataclasses.replace(report, findings=kept, target=target)
    out.sources = report.sources
    return out


def _scan_object(obj: Any, name: str, settings: Settings, ip: Any) -> ScanReport:
    """Scan the source of a live object (see the module docstring)."""
    from ..scan.runner import scan_cells, scan_paths

    if inspect.ismodule(obj):
        file = getattr(obj, "__file__", None)
        if not file or not str(file).endswith(".py") or not os.path.isfile(file):
            raise errors.TargetNotFound(f"module {name!r} has no Python source file")
        path = os.path.dirname(file) if os.path.basename(file) == "__init__.py" else file
        report = scan_paths([path], settings)
        report.target = name
        return report
    if _is_app(obj):
        return _scan_app(obj, name=name, settings=settings, ip=ip)
    target = _unwrap(obj)
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.iscode(target)):
        cls = type(target)
        if getattr(cls, "__module__", "builtins") == "builtins":
            raise errors.UsageError(f"cannot scan {name!r}: a {cls.__name__} object has no Python source")
        target = cls  # an instance: scan its class
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", getattr(target, "__name__", name))
    file = None
    if module != "__main__":
        try:
            file = inspect.getsourcefile(target)
        except TypeError:
            file = None
    if file and os.path.isfile(file):
        try:
            lines, start = inspect.getsourcelines(target)
        except (OSError, TypeError) as exc:
            raise errors.TargetNotFound(f"cannot read the source of {name!r}: {exc}") from None
        end = start + len(lines) - 1
        report = scan_paths([file], settings)
        path = report.files_scanned[0] if report.files_scanned else file
        return _within(report, path, max(start, 1), end, name)
    # defined in the notebook: find the defining cell in this session's history
    if ip is None:
        raise errors.TargetNotFound(f"cannot find the source of {name!r}")
    cells = session_cells(ip, skip=[current_cell_number(ip)])
    span = _cell_span(cells, qualname) if "<locals>" not in qualname else None
    if span is None:
        raise errors.TargetNotFound(f"cannot find the source of {name!r} in this session's cells")
    label, start, end = span
    report = scan_cells(cells, settings, target=name, seed=namespace_seed(ip.user_ns))
    return _within(report, label, start, end, name)


# ---------------------------------------------------------------------------
# target resolution
# ---------------------------------------------------------------------------
_MISSING = object()


def _lookup(ns: Mapping[str, Any], name: str) -> Any:
    head, *rest = name.split(".")
    if not head.isidentifier() or head not in ns:
        return _MISSING
    obj = ns[head]
    for part in rest:
        if not part.isidentifier():
            return _MISSING
        try:
            obj = getattr(obj, part)
        except Exception:  # noqa: BLE001 - any failing attribute means "no such name"
            return _MISSING
    return obj


def resolve_target(arg: str, ns: Mapping[str, Any]) -> tuple[str, Any]:
    """What ``arg`` names: ``("path", path)``, ``("object", obj)`` or ``("module", name)``.

    Order: an existing path, then a name in ``ns`` (``a.b`` follows attributes),
    then an importable module (found with :func:`importlib.util.find_spec`,
    which may import parent packages but not the module itself).

    Raises:
        async_expert_ext.errors.TargetNotFound: ``no file, name or module called 'x'``.
    """
    path = os.path.expanduser(arg)
    if os.path.exists(path):
        return "path", path
    obj = _lookup(ns, arg)
    if obj is not _MISSING:
        return "object", obj
    if all(p.isidentifier() for p in arg.split(".")):
        from ..scan.sources import find_module_path

        try:
            find_module_path(arg)
        except errors.TargetNotFound as exc:
            if "has no Python source" in str(exc):
                raise
        else:
            return "module", arg
    raise errors.TargetNotFound(f"no file, name or module called {arg!r}")


# ---------------------------------------------------------------------------
# the magics
# ---------------------------------------------------------------------------
def _unquote(value: str | None) -> str | None:
    """Drop one pair of surrounding quotes (IPython splits magic lines keeping them)."""
    if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _split_keys(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v for raw in values for v in (_unquote(raw) or "").replace(",", " ").split() if v]
    return out or None


def _check_keys(flag: str, keys: list[str] | None) -> None:
    """Reject ``--select``/``--ignore`` values that match no rule code, prefix or kind."""
    from ..scan.registry import check_selectors

    check_selectors(flag, keys)


def _display_report(report: ScanReport, recall: Any = None) -> None:
    """Show a report through :func:`async_expert_ext.render.display_report` (the
    widget view where a widget frontend runs, else one text/html + text/plain bundle);
    ``recall`` (the memory file's answer) marks findings new / seen before."""
    from ..render import display_report

    display_report(report, memory=recall)


def _progress() -> Any:
    """A progress bar for folder and package scans (shown past a few dozen files)."""
    from ..render.progress import make_progress

    return make_progress()


def _record_memory(report: ScanReport, *, enabled: bool, path: str | None, settings: Settings) -> Any:
    """The one call site of the memory file (:func:`async_expert_ext.memory.record_analysis`).

    ``--no-memory`` skips it; ``--memory PATH`` beats ``%config AsyncExpert.memory_file``
    and ``[tool.async_expert] memory_file`` (both carried by ``settings``). Returns the
    recall result, or None when nothing was recorded. Never raises: the memory file must
    not cost the user their scan.
    """
    if not enabled:
        return None
    try:
        from ..memory import record_analysis
    except ImportError:  # pragma: no cover - the memory module ships with the package
        return None
    try:
        import warnings

        from ..memory import MemoryWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemoryWarning)  # summarised by the caller
            return record_analysis(report, tool="%async_scan", target=report.target, path=path, settings=settings, start=os.getcwd())
    except Exception as exc:  # noqa: BLE001 - never lose the scan to the memory file
        print(f"async_scan: memory file not updated ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


@magics_class
class AsyncScanMagics(Magics):
    """``%async_scan`` and ``%%async_scan``: the static async scanner."""

    @magic_arguments.magic_arguments()
    @magic_arguments.argument(
        "target",
        nargs="*",
        help=(
            "What to scan: FILE.py, FOLDER/, NOTEBOOK.ipynb, a NAME in the namespace (function, class, "
            "module, FastAPI/Starlette app) or a dotted.module. None: every cell run so far (In[n]:line). "
            "Order when ambiguous: existing path > namespace name > importable module."
        ),
    )
    @magic_arguments.argument("--select", action="append", metavar="CODES", help="Only report these codes, code prefixes or kinds (comma or space separated; repeatable).")
    @magic_arguments.argument("--ignore", action="append", metavar="CODES", help="Never report these codes, code prefixes or kinds (comma or space separated; repeatable).")
    @magic_arguments.argument("--severity", metavar="MIN", help="Lowest severity shown: critical, warning or info.")
    @magic_arguments.argument("--exclude", action="append", metavar="GLOB", help="Skip paths matching GLOB in folder scans (repeatable).")
    @magic_arguments.argument("-o", "--output", metavar="NAME", help="Also store the ScanReport in the namespace as NAME (the last one is always `_async_scan`).")
    @magic_arguments.argument("--no-memory", action="store_true", help="Do not record this analysis in the memory file.")
    @magic_arguments.argument("--memory", metavar="PATH", help="Record this analysis in the memory file at PATH.")
    @magic_arguments.argument("-q", "--quiet", action="store_true", help="Store the report without displaying it.")
    @line_cell_magic
    def async_scan(self, line: str = "", cell: str | None = None) -> None:
        """Scan async code for event-loop bugs without running it.

        %%async_scan scans the cell body (which does not run); line numbers are
        the cell's, the %%async_scan line being line 1. %async_scan alone scans
        every cell run so far, as In[n]:line.

        Findings: blocking calls in coroutines, never-awaited coroutines,
        fire-and-forget tasks, swallowed cancellation, locks across awaits,
        missing timeouts, unclosed sessions ... each with a fix. Silence one line with
        `# noqa: AEX101` or `# async-expert: ignore[blocking-call-in-async]`.
        Configure with %config AsyncExpert.select/ignore/extra_blocking/severity/
        rule_severity or [tool.async_expert] in pyproject.toml.

        The report is displayed, stored as `_async_scan` (and as NAME with -o).
        """
        ip: Any = self.shell
        try:
            try:
                args = magic_arguments.parse_argstring(self.async_scan, line)
            except (ValueError, SyntaxError) as exc:
                raise errors.UsageError(f"cannot parse the arguments of %async_scan: {exc}") from None
            args.target = [_unquote(t) or "" for t in args.target]
            args.output, args.memory, args.severity = _unquote(args.output), _unquote(args.memory), _unquote(args.severity)
            if args.output is not None and (not args.output.isidentifier() or keyword.iskeyword(args.output)):
                raise errors.UsageError(f"-o {args.output!r} is not a valid Python name")
            select, ignore = _split_keys(args.select), _split_keys(args.ignore)
            _check_keys("--select", select)
            _check_keys("--ignore", ignore)
            from .options import current_settings

            settings = current_settings(
                os.getcwd(),
                select=select,
                ignore=ignore,
                min_severity=args.severity,
                exclude=_split_keys(args.exclude),
                memory_file=args.memory,
            )
            report = self._scan(args.target, cell, settings)
        except errors.AsyncExpertError as exc:
            raise UsageError(_one_line(str(exc))) from None
        ip.user_ns["_async_scan"] = report
        if args.output:
            ip.user_ns[args.output] = report
        recall = _record_memory(report, enabled=not args.no_memory, path=args.memory, settings=settings)
        if not args.quiet:
            _display_report(report, recall)
        if recall is not None and recall.status == "failed":
            print(recall.summary(), file=sys.stderr)
        elif recall is not None and recall.status != "off" and not args.quiet:
            print(recall.summary())  # where the memory entry went; new / seen before / fixed

    def _scan(self, targets: list[str], cell: str | None, settings: Settings) -> ScanReport:
        from ..scan.runner import scan_cells, scan_module, scan_paths

        ip: Any = self.shell
        current = current_cell_number(ip)
        if cell is not None:
            if targets:
                raise errors.UsageError("%%async_scan scans its cell body and takes no target; use the line magic for files")
            label = f"In[{current}]"
            text = cell_python("\n" + cell, getattr(ip, "transform_cell", None))
            if text is None:
                text = "\n" + cell
            history = session_cells(ip, skip=[current])
            report = scan_cells([*history, (label, text)], settings, target=label, seed=namespace_seed(ip.user_ns))
            out = dataclasses.replace(
                report,
                findings=[f for f in report.findings if f.path == label],
                files_scanned=[label],
                errors=[e for e in report.errors if e.startswith(label)],
            )
            out.sources = report.sources
            return out
        if not targets:
            cells = session_cells(ip, skip=[current])
            return scan_cells(cells, settings, target="session", seed=namespace_seed(ip.user_ns))
        resolved = [resolve_target(t, ip.user_ns) for t in targets]
        if len(resolved) > 1:
            bad = [t for t, (k, _) in zip(targets, resolved) if k != "path"]
            if bad:
                raise errors.UsageError(f"several targets must all be paths; {bad[0]!r} is not")
            return scan_paths([v for _, v in resolved], settings, progress=_progress())
        kind, value = resolved[0]
        if kind == "path":
            return scan_paths([value], settings, progress=_progress())
        if kind == "module":
            return scan_module(value, settings, progress=_progress())
        return _scan_object(value, targets[0], settings, ip)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


MAGICS = [AsyncScanMagics]
