"""Import a program file as a module (named after the file, never ``__main__``).

Shared by ``async-expert profile FILE.py`` (which awaits its ``main()``) and
``async-expert load FILE.py:app`` (which drives its ASGI app): the file's
``if __name__ == "__main__":`` block does not run, its folder goes on ``sys.path``
so that its sibling modules import, and it is registered in ``sys.modules`` so that
pickling, dataclasses and ``inspect`` find it.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from types import ModuleType

from .errors import TargetNotFound, UsageError

__all__ = ["import_file"]


def import_file(path: str) -> ModuleType:
    """Run ``path`` as a module named after the file (``02_app.py`` -> ``_02_app``);
    a file inside a package (``__init__.py`` files above it) is imported by its dotted
    name with the package's parent folder on ``sys.path``, so that its relative and
    absolute imports of sibling modules work.

    Raises:
        TargetNotFound: when the file does not exist.
        UsageError: when it cannot be imported, or its top-level code raises (one line,
            naming the exception).
    """
    if not os.path.isfile(path):
        raise TargetNotFound(f"no such file: {path}")
    try:
        return _import(path)
    except (TargetNotFound, UsageError):
        raise
    except Exception as exc:  # the program's own import-time error: say it in one line
        raise UsageError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc


def _import(path: str) -> ModuleType:
    from .scan.sources import module_name_for

    dotted, package = module_name_for(path)
    if package:  # inside a package: import it as such
        root = os.path.abspath(path)
        for _ in range(dotted.count(".") + 1):
            root = os.path.dirname(root)
        if root not in sys.path:
            sys.path.insert(0, root)
        return importlib.import_module(dotted)
    folder = os.path.dirname(os.path.abspath(path))
    name = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    if name[:1].isdigit():
        name = "_" + name
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(path))
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
