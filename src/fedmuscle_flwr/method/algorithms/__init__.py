"""The algorithms, one file each, found by name in one registry.

Every module of this folder that defines an :class:`~.base.Algorithm` subclass
with a ``name`` is registered: adding a baseline is one file (and its test).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.method.algorithms.base import Algorithm

#: name -> class, in name order
ALGORITHMS: dict[str, type[Algorithm]] = {}


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Algorithm)
                and cls.name
                and cls.__module__ == module.__name__
            ):
                if cls.name in ALGORITHMS and ALGORITHMS[cls.name] is not cls:
                    raise RuntimeError(f"algorithm name {cls.name!r} registered twice")
                ALGORITHMS[cls.name] = cls


def get_algorithm(name: str) -> Algorithm:
    """A new instance of algorithm ``name``; :class:`ConfigError` names the known."""
    try:
        return ALGORITHMS[name]()
    except KeyError:
        raise ConfigError(
            f"algorithm={name!r} is not registered; known: {sorted(ALGORITHMS)}"
        ) from None


def check_algorithm(run: RunConfig) -> Algorithm:
    """The run's algorithm, checked against the run (before any process starts)."""
    algorithm = get_algorithm(run.algorithm)
    if algorithm.space != "representation" and run.privacy.noise > 0:
        raise ConfigError(
            f"privacy.noise applies to representations; algorithm "
            f"{run.algorithm!r} uploads {algorithm.space}"
        )
    return algorithm


_discover()

__all__ = ["ALGORITHMS", "Algorithm", "check_algorithm", "get_algorithm"]
