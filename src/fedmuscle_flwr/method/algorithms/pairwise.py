"""Pairwise InfoNCE over the same M partners (the paper's ablation of Muscle)."""

from __future__ import annotations

from torch import Tensor

from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    PARTNERS,
    Algorithm,
    AlignContext,
    StepPayload,
)
from fedmuscle_flwr.method.losses import pairwise_infonce


@ALGORITHMS.register("pairwise")
class Pairwise(Algorithm):
    """L = Σ_m InfoNCE_τ(z^n, z^m): Muscle with γ = 0."""

    description = (
        "Sum of pairwise InfoNCE over the same M partners (the paper's ablation)"
    )
    wire = "same as fedmuscle (compact downlink only)"

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """Σ_m InfoNCE of the anchor (B, d) against each partner (M, B, d)."""
        return pairwise_infonce(anchor, payload[PARTNERS], ctx.cfg.tau)
