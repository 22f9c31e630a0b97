"""GRAM (Cicchetti et al., ICLR 2025): InfoNCE with the Gramian volume as distance.

A loss ablation: the volume of the parallelotope spanned by z_i^n and the
partners' rows j replaces the sum of dot products.
Brute-force reference: tests/unit/method/algorithms/test_gramian.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    PARTNERS,
    Algorithm,
    AlignContext,
    StepPayload,
    check_pair_shapes,
)


def gram_volumes(anchor: Tensor, partners: Tensor) -> Tensor:
    """Volumes V[i, j] of {z_i^n, z_j^{m_1}, ..., z_j^{m_M}} (B, B).

    V = sqrt(det G), G the (M+1)×(M+1) Gram matrix of the M+1 vectors.
    """
    check_pair_shapes(anchor, partners)
    b, m = anchor.shape[0], partners.shape[0]
    cross = torch.einsum("id,mjd->ijm", anchor, partners)  # (B, B, M): a_i . p^m_j
    inner = torch.einsum("mjd,njd->jmn", partners, partners)  # (B, M, M)
    g = anchor.new_empty(b, b, m + 1, m + 1)
    g[..., 0, 0] = (anchor * anchor).sum(-1)[:, None]
    g[..., 0, 1:] = cross
    g[..., 1:, 0] = cross
    g[..., 1:, 1:] = inner[None]
    det = torch.linalg.det(g.double()).to(anchor.dtype)
    return det.clamp_min(1e-12).sqrt()


def gramian_loss(anchor: Tensor, partners: Tensor, tau: float) -> Tensor:
    """GRAM: InfoNCE with −volume/τ as the logit.

    Mean of the anchor→tuples (rows of −V/τ) and tuples→anchor (columns)
    cross-entropies with the matching index as the positive.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = -gram_volumes(anchor, partners.detach()) / tau  # (B, B)
    target = torch.arange(anchor.shape[0], device=anchor.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@ALGORITHMS.register("gramian")
class Gramian(Algorithm):
    """The Gramian-volume contrastive loss against the same M partners."""

    description = (
        "GRAM (Cicchetti et al., ICLR 2025): contrastive loss with the volume of "
        "the Gramian of (z^n_i, partners' z_j) as distance; a loss ablation"
    )
    wire = "same as pairwise"

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """:func:`gramian_loss` of the anchor (B, d) and the partners (M, B, d)."""
        return gramian_loss(anchor, payload[PARTNERS], ctx.cfg.tau)
