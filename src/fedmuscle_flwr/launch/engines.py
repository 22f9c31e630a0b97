"""Where ``fedmuscle run`` executes a federation: a registry of engines.

- ``simulation`` (default): Flower's simulation runtime (Ray backend, virtual
  SuperNodes), the embedded run the README starts.
- ``inprocess``: the same ServerApp logic and ClientApp in one process, clients in
  turn; for hosts without Ray (the GPU machine), debugging and quick sweeps.

Deployment across machines is not an engine here: it is ``fedmuscle server`` and
``fedmuscle client`` (:mod:`fedmuscle_flwr.launch.deploy.server`,
:mod:`fedmuscle_flwr.launch.deploy.client`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError


@dataclass(frozen=True)
class Engine:
    """A named way to run one :class:`RunConfig` to completion."""

    name: str
    description: str
    run: Callable[[RunConfig], Path]


def _simulation(run: RunConfig) -> Path:
    from fedmuscle_flwr.launch.simulation import simulate

    return simulate(run)


def _inprocess(run: RunConfig) -> Path:
    from fedmuscle_flwr.launch.inprocess import run_inprocess

    return run_inprocess(run)


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine(
            "simulation", "Flower simulation runtime (Ray), the default", _simulation
        ),
        Engine("inprocess", "one process, clients in turn, no Ray", _inprocess),
    )
}


def get_engine(name: str) -> Engine:
    """The engine called ``name``; :class:`ConfigError` naming the choices if none."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError(
            f"engine: unknown engine {name!r}; choose from {sorted(ENGINES)}"
        ) from None


__all__ = ["ENGINES", "Engine", "get_engine"]
