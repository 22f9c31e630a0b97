"""Load a script of the repository (experiments/, bench/) as a module, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[2]


def load(path: str, name: str) -> ModuleType:
    """The script at ``path`` (relative to the repository) as module ``name``.

    Registered in ``sys.modules`` first, as an import would, so that dataclasses
    and pickling inside the script find their module.
    """
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
