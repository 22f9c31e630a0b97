"""FedDF (Lin et al., NeurIPS 2020): ensemble distillation at temperature T.

Reduced: distilled on each client, no server model.
Brute-force reference: tests/unit/method/algorithms/test_feddf.py.
"""

from __future__ import annotations

from torch import Tensor

from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    PARTNERS,
    AlignContext,
    StepPayload,
    check_pair_shapes,
)
from fedmuscle_flwr.method.algorithms.logits import (
    LogitAlgorithm,
    Probs,
    SoftLoss,
    soft_labels,
)


def ensemble_kd(
    anchor: Tensor, partners: Tensor, temperature: float, probs: Probs, soft: SoftLoss
) -> Tensor:
    """FedDF distillation: T² · soft-CE(s^n/T, p(mean_m s^m / T)).

    Shape: anchor (B, C), partners (M, B, C) -> (); partners are constants.
    """
    check_pair_shapes(anchor, partners)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    teacher = probs(partners.detach().mean(0) / temperature)
    return temperature**2 * soft(anchor / temperature, teacher)


@ALGORITHMS.register("feddf")
class FedDF(LogitAlgorithm):
    """KL at temperature T to the same-label-space partners' averaged logits."""

    description = (
        "FedDF (Lin et al., NeurIPS 2020): ensemble distillation (KL at "
        "temperature T to the partners' averaged logits); reduced: distilled on "
        "each client, no server model"
    )
    wire = "same as fedmd"

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """:func:`ensemble_kd` with the task's soft labels and ``kd-temperature``."""
        soft = soft_labels(ctx.task)
        return ensemble_kd(
            anchor,
            payload[PARTNERS],
            ctx.cfg.kd_temperature,
            soft.probs,
            soft.soft_loss,
        )
