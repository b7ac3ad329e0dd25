"""Import a program file as a module (named after the file, never ``__main__``).

Shared by ``async-expert profile FILE.py`` (which awaits its ``main()``) and
``async-expert load FILE.py:app`` (which drives its ASGI app): the file's
``if __name__ == "__main__":`` block does not run, its folder goes on ``sys.path``
so that its sibling modules import, and it is registered in ``sys.modules`` so that
pickling, dataclasses and ``inspect`` find it.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from types import ModuleType

from .errors import TargetNotFound, UsageError

__all__ = ["import_file"]


def import_file(path: str) -> ModuleType:
    """Run ``path`` as a module named after the file (``02_app.py`` -> ``_02_app``).

    Raises:
        TargetNotFound: when the file does not exist.
        UsageError: when it cannot be imported as Python source.
        Exception: whatever the module's top-level code raises.
    """
    if not os.path.isfile(path):
        raise TargetNotFound(f"no such file: {path}")
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
