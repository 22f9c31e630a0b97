"""User code named in config: ``"package.module:callable"`` import paths.

Model backbones (``model.backbone``) and datasets (``data.dataset``) may name a
callable of the user's own package; :func:`load_callable` imports it and says
in one line what is wrong with the path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load_callable(path: str, field: str) -> Callable[..., Any]:
    """Import ``"package.module:callable"`` (``mod:Cls.make`` paths work too).

    Parameters
    ----------
    path : str
        The import path.
    field : str
        The config field naming it (``model.backbone``), for messages.

    Raises
    ------
    ValueError
        A malformed path, a module that does not import, a missing or
        non-callable attribute.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{field} {path!r}: expected 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{field} {path!r}: cannot import module: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{field} {path!r}: module has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{field} {path!r} is not callable")
    return obj
