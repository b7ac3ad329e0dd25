"""Parse once, walk once, link once: source units -> :class:`ScanReport`.

Entry points (none of them imports or runs the scanned code):

- :func:`scan_source`: one string (a cell or a file's text);
- :func:`scan_cells`: the cells of a session, linked as one program;
- :func:`scan_paths`: files, folders (recursive) and notebooks;
- :func:`scan_module`: a dotted module name, located with ``find_spec``.

Per-file results are cached on disk under the user cache dir, keyed by the
file's content, its module name, the rule set and the settings that change
per-file results. A whole-scan manifest (one small file per set of scanned
paths, validated by every file's content key) holds the linked findings, so a
warm re-scan reads the sources and one pickle, and neither walks nor links.
Cache hits are read in the parent; only the misses of big trees go to a
process pool, whose results are the serial ones (same order, same findings).
"""
from __future__ import annotations

import ast
import hashlib
import os
import pickle
import time
from collections.abc import Mapping
from typing import Any, Iterable, Iterator, Sequence

from .. import __version__
from ..config import Settings
from ..model import Finding, ScanReport, Severity
from .context import Dispatch, FileContext, walk_file
from .link import FileResult, Program
from .registry import Rule, all_rules, apply_refiners
from .sources import Planned, SourceUnit, find_module_path, plan_paths, read_plan, read_unit

__all__ = ["scan_source", "scan_cells", "scan_paths", "scan_module", "scan_units", "analyse_unit", "enabled_rules", "cache_dir"]

#: With ``jobs=0`` (automatic), trees with at least this many uncached files are walked
#: by a process pool. Forked workers start in milliseconds, so a few dozen files pay off
#: (aiohttp's 54 files: 0.45 s -> 0.33 s on 2 cores); a process with other threads
#: running (a Jupyter kernel) must not fork, and spawned workers re-import the
#: package (~0.3 s each), so there the pool waits for big trees.
POOL_THRESHOLD_FORK = 32
POOL_THRESHOLD_SPAWN = 300


def _pool_context() -> tuple[Any, int]:
    """The multiprocessing context for the worker pool and its automatic threshold:
    ``fork`` in a single-threaded process (the CLI), ``spawn`` otherwise (forking a
    process with running threads can deadlock the child)."""
    import multiprocessing
    import threading

    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork"), POOL_THRESHOLD_FORK
    return multiprocessing.get_context("spawn"), POOL_THRESHOLD_SPAWN


def _matches(rule: type[Rule], keys: Sequence[str]) -> bool:
    return any(rule.kind == k or rule.code.startswith(k) or (rule.name or rule.__name__) == k for k in keys)


def enabled_rules(settings: Settings) -> list[Rule]:
    """Instances of the rules that ``settings.select``/``ignore`` leave enabled,
    with per-rule severity overrides applied."""
    out = []
    for code, cls in all_rules().items():
        if settings.select and not _matches(cls, settings.select) and cls.kind != "syntax-error":
            continue
        if settings.ignore and _matches(cls, settings.ignore):
            continue
        sev = settings.rule_severity.get(code) or settings.rule_severity.get(cls.kind)
        out.append(cls(severity=sev))
    return out


def cache_dir() -> str:
    """The on-disk cache folder (``$ASYNC_EXPERT_CACHE_DIR`` or the user cache dir)."""
    env = os.environ.get("ASYNC_EXPERT_CACHE_DIR")
    if env:
        return env
    try:
        from platformdirs import user_cache_dir

        return os.path.join(user_cache_dir("async-expert"), "scan-v1")
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        return os.path.join(os.path.expanduser("~/.cache/async-expert"), "scan-v1")


_CODE_HASH: list[str] = []


def _scanner_code_hash() -> str:
    """A hash of the scanner's own source files (walker, resolution, every rule), so
    that cached results never outlive a change of the code that produced them."""
    if not _CODE_HASH:
        h = hashlib.sha1()
        here = os.path.dirname(os.path.abspath(__file__))
        for folder, _dirs, files in sorted(os.walk(here)):
            for name in sorted(files):
                if name.endswith(".py"):
                    try:
                        with open(os.path.join(folder, name), "rb") as fh:
                            h.update(name.encode() + b"\0" + fh.read())
                    except OSError:
                        continue
        _CODE_HASH.append(h.hexdigest()[:16])
    return _CODE_HASH[0]


def _rules_signature(rules: Sequence[Rule], settings: Settings) -> str:
    codes = ",".join(f"{r.code}:{r.effective_severity.value}" for r in rules)
    return f"{__version__}|{_scanner_code_hash()}|{codes}|{settings.signature()}"


def _link(results: Sequence[FileResult], settings: Settings) -> list[Finding]:
    """Every finding of one program: the files' own, the linker's (interprocedural),
    then the refiners' rewrites, with per-rule severity overrides applied to all of
    them (the linker's and refiners' findings are made outside any rule instance)."""
    program = Program(results)
    findings = [f for r in results for f in r.findings]
    findings.extend(program.run_checks())
    findings = apply_refiners(findings, program, settings)
    overrides = settings.rule_severity
    if overrides:
        findings = [
            f.replace(severity=overrides.get(f.code) or overrides[f.kind]) if (f.code in overrides or f.kind in overrides) else f
            for f in findings
        ]
    return _dedupe(findings)


def _syntax_error_finding(unit: SourceUnit, exc: SyntaxError) -> Finding:
    from .rules.core import SyntaxErrorRule

    line = exc.lineno or 1
    text = unit.text.splitlines()[line - 1] if unit.text and 0 < line <= len(unit.text.splitlines()) else ""
    return SyntaxErrorRule().make_finding(
        path=unit.path,
        line=line,
        col=max((exc.offset or 1) - 1, 0),
        snippet=text,
        message=f"syntax error: {exc.msg}; the rest of this file was not scanned",
    )


_PARSE_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def analyse_unit(unit: SourceUnit, rules: Sequence[Rule], settings: Settings, seed: dict | None = None) -> FileResult:
    """Parse and walk one unit (no cache). Syntax errors become a finding."""
    assert unit.text is not None
    try:
        if unit.notebook:
            tree = compile(unit.text, unit.path, "exec", flags=_PARSE_FLAGS, dont_inherit=True)
        else:
            tree = ast.parse(unit.text, filename=unit.path)
    except (SyntaxError, ValueError) as exc:
        if not isinstance(exc, SyntaxError):
            exc = SyntaxError(str(exc))
        return FileResult(path=unit.path, module=unit.module, findings=[_syntax_error_finding(unit, exc)])
    ctx = FileContext(
        unit.path,
        unit.module,
        unit.text,
        tree,  # type: ignore[arg-type]
        notebook=unit.notebook,
        package=unit.package,
        extra_blocking=settings.extra_blocking,
        seed=seed,
    )
    fresh = [type(r)(severity=r.effective_severity) for r in rules]
    try:
        return walk_file(ctx, Dispatch(fresh))
    except RecursionError:
        return FileResult(path=unit.path, module=unit.module, errors=[f"{unit.path}: too deeply nested to scan"])


def _unit_key(unit: SourceUnit, signature: str) -> str:
    """The per-file cache key: a hash of the rule-set signature, the unit's identity
    (path, module, package, notebook) and its text."""
    return hashlib.sha1(
        "\x00".join((signature, unit.path, unit.module, unit.package, str(unit.notebook), unit.text or "")).encode("utf-8", "surrogatepass")
    ).hexdigest()


def _cache_load(file: str) -> object | None:
    try:
        with open(file, "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError):
        return None


def _cache_store(file: str, value: object) -> None:
    """Write atomically (temporary file + ``os.replace``); failures are ignored."""
    try:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        tmp = f"{file}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, file)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        pass


def _unit_cache_file(key: str) -> str:
    return os.path.join(cache_dir(), key[:2], key + ".pickle")


def _cached_analyse(unit: SourceUnit, rules: Sequence[Rule], settings: Settings, signature: str, key: str | None = None) -> FileResult:
    if not settings.cache:
        return analyse_unit(unit, rules, settings)
    file = _unit_cache_file(key or _unit_key(unit, signature))
    hit = _cache_load(file)
    if isinstance(hit, FileResult):
        return hit
    result = analyse_unit(unit, rules, settings)
    _cache_store(file, result)
    return result


def _pool_worker(args: tuple[list[SourceUnit], Settings]) -> list[FileResult]:
    units, settings = args
    rules = enabled_rules(settings)
    sig = _rules_signature(rules, settings)
    return [_cached_analyse(u, rules, settings, sig) for u in units]


def scan_units(
    units: Iterable[SourceUnit],
    settings: Settings | None = None,
    *,
    target: str = "",
    jobs: int | None = None,
    progress: object = None,
) -> ScanReport:
    """Scan source units as one program (linked together) and build the report.

    Args:
        units: what to scan; units with a ``note`` are listed in ``errors``.
        settings: select/ignore/severity/extra_blocking/cache.
        target: the name of what was scanned, for the report.
        jobs: worker processes (default ``settings.jobs``; 0 = automatic).
        progress: optional callable ``progress(done, total)``.
    """
    settings = settings or Settings()
    started = time.perf_counter()
    rules = enabled_rules(settings)
    sig = _rules_signature(rules, settings)
    readable: list[SourceUnit] = []
    errors: list[str] = []
    for u in units:
        if u.text is None:
            errors.append(u.note or f"{u.path}: not scanned")
        else:
            readable.append(u)
    sources = {u.path: u.text or "" for u in readable}
    # the whole-scan manifest: one small file holding the linked findings of the
    # exact same set of units (same paths and contents) under the same rules
    keys = [_unit_key(u, sig) for u in readable] if settings.cache else []
    manifest = None
    if settings.cache:
        ident = hashlib.sha1("\x00".join([sig, *(f"{u.path}|{u.module}|{u.package}|{u.notebook}" for u in readable)]).encode("utf-8", "surrogatepass")).hexdigest()
        manifest = os.path.join(cache_dir(), "manifests", ident + ".pickle")
        validation = hashlib.sha1("".join(keys).encode()).hexdigest()
        hit = _cache_load(manifest)
        if isinstance(hit, dict) and hit.get("validation") == validation:
            if progress is not None:
                progress(len(readable), len(readable))  # type: ignore[operator]
            findings = list(hit["findings"])
            errors.extend(hit["errors"])
            return _finish(findings, [u.path for u in readable], errors, started, target, sources, settings)
    slots = _analyse_all(readable, keys, rules, settings, sig, jobs, progress)
    results: list[FileResult] = [r for r in slots if r is not None]
    file_errors = [e for r in results for e in r.errors]
    findings = _link(results, settings)
    errors.extend(file_errors)
    if manifest is not None:
        _cache_store(manifest, {"validation": validation, "findings": findings, "errors": file_errors})
    return _finish(findings, [u.path for u in readable], errors, started, target, sources, settings)


def _finish(
    findings: list[Finding],
    files: list[str],
    errors: list[str],
    started: float,
    target: str,
    sources: dict[str, str],
    settings: Settings,
) -> ScanReport:
    """The report: findings filtered by select/ignore/min severity; sources kept."""
    report = ScanReport(
        findings=findings,
        files_scanned=files,
        errors=errors,
        seconds=time.perf_counter() - started,
        target=target,
        sources=sources,
    )
    report = report.filter(settings.select, settings.ignore, settings.min_severity)
    report.sources = sources
    return report


def _analyse_all(
    readable: list[SourceUnit],
    keys: list[str],
    rules: Sequence[Rule],
    settings: Settings,
    sig: str,
    jobs: int | None,
    progress: object,
) -> list[FileResult | None]:
    """Per-unit results, in order: cache hits are read here; the misses among plain
    files go to a process pool when there are enough of them, and notebook cells
    are walked in order, each seeded with the names of the cells before it."""
    slots: list[FileResult | None] = [None] * len(readable)
    total = len(readable)
    done = 0
    misses: list[int] = []
    cells: list[int] = []
    for i, u in enumerate(readable):
        if u.notebook:
            cells.append(i)
            continue
        hit = _cache_load(_unit_cache_file(keys[i])) if keys else None
        if isinstance(hit, FileResult):
            slots[i] = hit
            done += 1
            if progress is not None:
                progress(done, total)  # type: ignore[operator]
        else:
            misses.append(i)
    jobs = settings.jobs if jobs is None else jobs
    if jobs == 0:
        jobs = (os.cpu_count() or 1) if len(misses) >= _pool_context()[1] else 1
    if jobs > 1 and len(misses) >= max(2 * jobs, 8):
        for i, r in zip(misses, _run_pool([readable[i] for i in misses], settings, jobs)):
            slots[i] = r
        done += len(misses)
        if progress is not None:
            progress(done, total)  # type: ignore[operator]
    else:
        for i in misses:
            slots[i] = _cached_analyse(readable[i], rules, settings, sig, keys[i] if keys else None)
            done += 1
            if progress is not None:
                progress(done, total)  # type: ignore[operator]
    seeds: dict[str, dict] = {}
    for i in cells:
        u = readable[i]
        notebook = u.path.rpartition("[cell ")[0] or u.path
        r = analyse_unit(u, rules, settings, seed=seeds.get(notebook))
        seeds[notebook] = next_cell_seed(seeds.get(notebook), r)
        slots[i] = r
        done += 1
        if progress is not None:
            progress(done, total)  # type: ignore[operator]
    return slots


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple] = set()
    out = []
    for f in findings:
        key = (f.code, f.path, f.line, f.col, f.message)
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out


def _run_pool(units: list[SourceUnit], settings: Settings, jobs: int) -> list[FileResult]:
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, len(units) // (jobs * 4))
    batches = [units[i : i + chunk] for i in range(0, len(units), chunk)]
    out: list[FileResult] = []
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_pool_context()[0]) as pool:
            for part in pool.map(_pool_worker, [(b, settings) for b in batches]):
                out.extend(part)
    except (OSError, RuntimeError):  # no fork/spawn available: fall back to serial
        out = _pool_worker((units, settings))
    return out


def scan_source(
    source: str,
    path: str = "<cell>",
    *,
    notebook: bool = True,
    module: str = "__main__",
    settings: Settings | None = None,
    seed: dict | None = None,
) -> ScanReport:
    """Scan one piece of source text (a notebook cell by default: top-level
    ``await`` is allowed and top-level ``asyncio.run`` is a finding).

    ``seed`` may give ``{"aliases": {name: qualname}, "types": {name: type}}`` for
    names defined outside the text (the notebook's namespace).
    """
    settings = settings or Settings()
    unit = SourceUnit(path=path, module=module, text=source, notebook=notebook)
    started = time.perf_counter()
    rules = enabled_rules(settings)
    result = analyse_unit(unit, rules, settings, seed=seed)
    return _finish(_link([result], settings), [path], list(result.errors), started, path, {path: source}, settings)


def next_cell_seed(seed: dict | None, result: FileResult) -> dict:
    """The seed for the cell after one whose walk gave ``result``: ``seed`` plus the
    names that cell imported, aliased or typed at top level, and its top-level
    functions and classes (callable by name in later cells)."""
    seed = seed or {}
    defined = {q.partition(".")[2]: q for q in result.funcs if q.startswith("__main__.") and q.count(".") == 1}
    return {
        "aliases": {**seed.get("aliases", {}), **defined, **{k.partition(".")[2]: v for k, v in result.aliases.items()}},
        "types": {**seed.get("types", {}), **getattr(result, "module_types", {})},
    }


def scan_cells(
    cells: Sequence[tuple[str, str]],
    settings: Settings | None = None,
    *,
    target: str = "session",
    seed: dict | None = None,
) -> ScanReport:
    """Scan notebook cells (``(label, source)``, e.g. ``("In[5]", "...")``) as one
    program: names imported or defined in one cell are known in later ones.

    ``seed`` (as for :func:`scan_source`) gives names known before the first cell,
    e.g. those of the kernel's namespace."""
    settings = settings or Settings()
    started = time.perf_counter()
    rules = enabled_rules(settings)
    results: list[FileResult] = []
    sources: dict[str, str] = {}
    seed = {"aliases": dict((seed or {}).get("aliases", {})), "types": dict((seed or {}).get("types", {}))}
    for label, text in cells:
        unit = SourceUnit(path=label, module="__main__", text=text, notebook=True)
        r = analyse_unit(unit, rules, settings, seed=seed)
        results.append(r)
        sources[label] = text
        seed = next_cell_seed(seed, r)
    errors = [e for r in results for e in r.errors]
    return _finish(_link(results, settings), [label for label, _ in cells], errors, started, target, sources, settings)


def scan_paths(
    paths: Sequence[str],
    settings: Settings | None = None,
    *,
    jobs: int | None = None,
    progress: object = None,
) -> ScanReport:
    """Scan files, folders and notebooks as one program.

    Raises:
        TargetNotFound: when a path does not exist.
    """
    settings = settings or Settings()
    started = time.perf_counter()
    plan = plan_paths(paths, settings.exclude)
    target = " ".join(paths)
    index = _stat_index(plan, settings) if settings.cache else None
    if index is not None:
        hit = _cache_load(index[0])
        if isinstance(hit, dict) and hit.get("stats") == index[1]:
            if progress is not None:
                progress(len(plan), len(plan))  # type: ignore[operator]
            scanned = set(hit["files"])  # binary, huge or unreadable files were skipped
            sources = LazySources({p.label: p.path for p in plan if p.label in scanned})
            return _finish(list(hit["findings"]), list(hit["files"]), list(hit["errors"]), started, target, sources, settings)  # type: ignore[arg-type]
    report = scan_units(list(read_plan(plan)), settings, target=target, jobs=jobs, progress=progress)
    if index is not None:
        _cache_store(index[0], {"stats": index[1], "findings": report.findings, "files": report.files_scanned, "errors": report.errors})
    return report


def _stat_index(plan: Sequence[Planned], settings: Settings) -> tuple[str, str] | None:
    """The stat index of a scan of plain ``.py`` files: ``(cache file, stats)``.

    A warm re-scan of an unchanged tree then reads one small file instead of every
    source (git's index works the same way): the stats are each file's size and
    ``st_mtime_ns``, checked together with the content-keyed caches' rules signature.
    Any change of a file's size or modification time falls back to the content-keyed
    path. None for notebooks (their cells are read to be labelled) or when a stat fails.
    """
    if not plan or any(p.notebook for p in plan):
        return None
    # the findings stored are the filtered ones: the filters are part of the key
    filters = f"{sorted(settings.select)}|{sorted(settings.ignore)}|{Severity.parse(settings.min_severity).value}"
    parts = [_rules_signature(enabled_rules(settings), settings), filters]
    try:
        for p in plan:
            st = os.stat(p.path)
            parts.append(f"{p.label}|{p.module}|{p.package}|{st.st_size}|{st.st_mtime_ns}")
    except OSError:
        return None
    ident = hashlib.sha1("\x00".join(p.label for p in plan).encode("utf-8", "surrogatepass")).hexdigest()
    stats = hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return os.path.join(cache_dir(), "stat-index", ident + ".pickle"), stats


class LazySources(Mapping[str, str]):
    """``ScanReport.sources`` of a scan answered from the stat index: each file's
    text is read (PEP 263) the first time a renderer asks for it."""

    def __init__(self, files: dict[str, str]) -> None:
        self._files = files
        self._texts: dict[str, str] = {}

    def __getitem__(self, label: str) -> str:
        if label not in self._texts:
            path = self._files[label]
            unit = read_unit(path, label, "", "")
            self._texts[label] = unit.text or ""
        return self._texts[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, label: object) -> bool:
        return label in self._files


def scan_module(name: str, settings: Settings | None = None, *, jobs: int | None = None, progress: object = None) -> ScanReport:
    """Scan an importable module or package by dotted name, without importing it.

    Raises:
        TargetNotFound: when no such module exists or it has no Python source.
    """
    path = find_module_path(name)
    report = scan_paths([path], settings, jobs=jobs, progress=progress)
    report.target = name
    return report

