"""Algorithms are registry entries: what phase 2 does, if anything.

Baselines that reuse the same clients, data, models and trainer are added here
(and, where they need one, with a loss in ``training.ALIGN_LOSSES``), never as an
``elif name ==`` branch or a copied client.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmuscle_flwr.config import ConfigError


@dataclass(frozen=True)
class Algorithm:
    """One federated algorithm.

    ``align_loss`` names the phase-2 loss (``training.ALIGN_LOSSES``); ``None``
    means no phase 2 and no communication beyond evaluation.
    """

    name: str
    align_loss: str | None
    description: str
    wire: str


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "fedmuscle",
            "muscle",
            "FedMuscle: Muscle loss over M partners (Setayesh et al., ICLR 2026)",
            "up: Z^n (B, d) per batch; down: M partner matrices or S^n, log α",
        ),
        Algorithm(
            "pairwise",
            "pairwise",
            "Sum of pairwise InfoNCE over the same M partners (the paper's ablation)",
            "same as fedmuscle (compact downlink only)",
        ),
        Algorithm(
            "local",
            None,
            "Local training only: same models, same epochs, no communication",
            "nothing but evaluation metrics (and probe representations)",
        ),
    )
}


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name``; :class:`ConfigError` names the known ones."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(
            f"algorithm={name!r} is not registered; known: {sorted(ALGORITHMS)}"
        ) from None
