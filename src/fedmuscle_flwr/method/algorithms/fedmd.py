"""FedMD (Li & Wang, 2019): digest the partners' consensus with an L1 loss.

Brute-force reference: tests/unit/method/algorithms/test_fedmd.py.
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
from fedmuscle_flwr.method.algorithms.logits import LogitAlgorithm


def consensus_l1(anchor: Tensor, partners: Tensor) -> Tensor:
    """FedMD's digest: mean |s_i^n − mean_m s_i^m| over (B, C).

    Shape: anchor (B, C), partners (M, B, C) -> (); partners are constants.
    """
    check_pair_shapes(anchor, partners)
    return (anchor - partners.detach().mean(0)).abs().mean()


@ALGORITHMS.register("fedmd")
class FedMD(LogitAlgorithm):
    """The mean class scores of same-label-space partners, learnt by L1."""

    description = (
        "FedMD (Li & Wang, 2019): digest the consensus (mean class scores of the "
        "same-label-space partners on public data) with an L1 loss"
    )
    wire = "up: logits (B, C) per batch; down: M partners' logits (same label space)"

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """:func:`consensus_l1` of the logits (B, C) to the partners' (M, B, C)."""
        return consensus_l1(anchor, payload[PARTNERS])
