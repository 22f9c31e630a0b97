"""FedHeNN (Makhija et al., ICML 2022): a CKA proximal term to the partners.

Reduced: the term is minimised in phase 2 instead of added to the task loss.
Brute-force reference: tests/unit/method/algorithms/test_fedhenn.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    PARTNERS,
    Algorithm,
    AlignContext,
    StepPayload,
    check_pair_shapes,
)


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear CKA of two representation matrices (B, D1), (B, D2) (Kornblith 2019).

    CKA = ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F) with column-centred Xᶜ, Yᶜ; in
    [0, 1], invariant to rotations and isotropic scaling.
    """
    xc = x - x.mean(0, keepdim=True)
    yc = y - y.mean(0, keepdim=True)
    cross = (yc.T @ xc).pow(2).sum()
    norm = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    return cross / norm.clamp_min(1e-12)


def cka_distance(anchor: Tensor, partners: Tensor) -> Tensor:
    """FedHeNN's proximal distance: 1 − CKA(Z^n, mean_m Z^m).

    Shape: anchor (B, D), partners (M, B, D) -> (); gradients reach the anchor.
    """
    check_pair_shapes(anchor, partners)
    return 1.0 - linear_cka(anchor, partners.detach().mean(0))


@ALGORITHMS.register("fedhenn")
class FedHeNN(Algorithm):
    """1 − CKA to the partners' mean public representation matrix."""

    description = (
        "FedHeNN (Makhija et al., ICML 2022): CKA proximal term to the partners' "
        "mean public representation matrix; reduced: the term is minimised in "
        "phase 2 instead of added to the task loss"
    )
    wire = "up: Z^n (B, d) per batch; down: M partner matrices"

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """:func:`cka_distance` of the anchor (B, d) to the partners (M, B, d)."""
        return cka_distance(anchor, payload[PARTNERS])
