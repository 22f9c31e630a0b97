"""The algorithms, one file each, found by name in one registry.

Every module of this folder may register an :class:`~.base.Algorithm` subclass
with ``@ALGORITHMS.register("name")``: adding a baseline is one file (and its
test). The registry style (the same for backbones and task kinds) is described
in :mod:`fedmuscle_flwr.config.registry`.
"""

from __future__ import annotations

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.method.algorithms.base import ALGORITHMS, Algorithm


def get_algorithm(name: str) -> Algorithm:
    """A new instance of algorithm ``name``; :class:`ConfigError` names the known.

    Build it once per run (the strategy) or per message (the instruction's
    :attr:`~fedmuscle_flwr.wire.messages.Instruction.algorithm`) and pass it on.
    """
    return ALGORITHMS.entry(name)()


def check_algorithm(run: RunConfig) -> Algorithm:
    """The run's algorithm, checked against the run (before any process starts)."""
    algorithm = get_algorithm(run.algorithm)
    if algorithm.space != "representation" and run.privacy.noise > 0:
        raise ConfigError(
            f"privacy.noise applies to representations; algorithm "
            f"{run.algorithm!r} uploads {algorithm.space}"
        )
    return algorithm


__all__ = ["ALGORITHMS", "Algorithm", "check_algorithm", "get_algorithm"]
