"""Algorithms are registry entries: what phase 2 does, in which space, with whom.

Every algorithm reuses the same clients, data, models, trainer and round
(phase 1: E task epochs; upload; phase 2: T steps of its loss against partners'
uploads of the same public batches; evaluation). An entry says

* ``align_loss``: the phase-2 loss (``training.ALIGN_LOSSES``); ``None`` = no
  phase 2 and no communication beyond evaluation;
* ``space``: what is uploaded for phase 2 (``training.READOUTS``):
  ``representation`` = Z^n (B, d) unit rows (phase 2 trains w^n only, the head is
  frozen), ``logits`` = the task head's class scores (B, C) (phase 2 trains the
  task parameters), ``weights`` = the whole model's state after phase 1 (phase 2
  loads the group's weighted mean instead of taking steps);
* ``partners``: ``all`` = M partners among all clients; ``label-space`` = M
  partners among the clients of the same task kind, dataset and class count (a
  client alone in its label space gets no phase 2, as in FedMD's setting);
  ``server`` = the server's own representation model is every client's single
  partner (``server_model.py``); ``identical`` = clients of the same label space
  whose models have identical parameter names and shapes;
* ``aggregated_downlink``: whether the paper's S^n/log α downlink applies (only
  the Muscle loss can use it; the others always get the partners' matrices).

Adding a baseline = a loss in ``training.ALIGN_LOSSES`` + an entry here, never an
``elif name ==`` branch or a copied client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fedmuscle_flwr.config import ConfigError, MuscleConfig

Space = Literal["representation", "logits", "weights"]
Grouping = Literal["all", "label-space", "server", "identical"]


@dataclass(frozen=True)
class Algorithm:
    """One federated algorithm (see the module docstring for the fields)."""

    name: str
    align_loss: str | None
    description: str
    wire: str
    space: Space = "representation"
    partners: Grouping = "all"
    aggregated_downlink: bool = False

    def downlink(self, muscle: MuscleConfig) -> str:
        """The downlink actually used: the configured one, or ``compact``."""
        return muscle.downlink if self.aggregated_downlink else "compact"


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "fedmuscle",
            "muscle",
            "FedMuscle: Muscle loss over M partners (Setayesh et al., ICLR 2026)",
            "up: Z^n (B, d) per batch; down: M partner matrices or S^n, log α",
            aggregated_downlink=True,
        ),
        Algorithm(
            "pairwise",
            "pairwise",
            "Sum of pairwise InfoNCE over the same M partners (the paper's ablation)",
            "same as fedmuscle (compact downlink only)",
        ),
        Algorithm(
            "fedhenn",
            "cka",
            "FedHeNN (Makhija et al., ICML 2022): CKA proximal term to the partners' "
            "mean public representation matrix; reduced: the term is minimised in "
            "phase 2 instead of added to the task loss",
            "up: Z^n (B, d) per batch; down: M partner matrices",
        ),
        Algorithm(
            "gramian",
            "gramian",
            "GRAM (Cicchetti et al., ICLR 2025): contrastive loss with the volume of "
            "the Gramian of (z^n_i, partners' z_j) as distance; a loss ablation",
            "same as pairwise",
        ),
        Algorithm(
            "fedmd",
            "consensus-l1",
            "FedMD (Li & Wang, 2019): digest the consensus (mean class scores of the "
            "same-label-space partners on public data) with an L1 loss",
            "up: logits (B, C) per batch; down: M partners' logits (same label space)",
            space="logits",
            partners="label-space",
        ),
        Algorithm(
            "feddf",
            "ensemble-kd",
            "FedDF (Lin et al., NeurIPS 2020): ensemble distillation (KL at "
            "temperature T to the partners' averaged logits); reduced: distilled on "
            "each client, no server model",
            "same as fedmd",
            space="logits",
            partners="label-space",
        ),
        Algorithm(
            "cofed",
            "pseudo-label",
            "CoFED (Cao et al., IEEE TNNLS 2023): train on public data pseudo-labelled "
            "by the vote of same-label-space partners (argmax / p > 0.5)",
            "same as fedmd",
            space="logits",
            partners="label-space",
        ),
        Algorithm(
            "creamfl",
            "pairwise",
            "CreamFL (Yu et al., ICLR 2023), reduced: a global model on the server "
            "learns the public data by InfoNCE to the clients' mean representations; "
            "clients align to its representations (one modality, one contrastive "
            "term, no agreement weighting: server_model.py)",
            "up: Z^n (B, d) per batch; down: the global model's (B, d) per batch",
            partners="server",
        ),
        Algorithm(
            "fedavg",
            None,
            "FedAvg (McMahan et al., AISTATS 2017) within each group of clients with "
            "the same label space and an identical architecture (a reference point; "
            "a client without a twin trains locally)",
            "up: the model's state (all parameters and buffers) after phase 1; "
            "down: its group's mean, weighted by training examples",
            space="weights",
            partners="identical",
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
