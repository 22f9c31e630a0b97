r"""Phase-2 losses of the baselines (plain PyTorch, no Flower).

Representation space (anchor (B, d) unit rows, partners (M, B, d) unit rows):

* :func:`cka_distance` — FedHeNN's proximal term: 1 − linear CKA between the
  anchor's representations and the partners' mean representation matrix.
* :func:`gramian_loss` — the Gramian-volume contrastive loss (GRAM): the
  volume of the parallelotope spanned by z_i^n and the partners' rows j, as a
  distance in a symmetric InfoNCE.

Logit space (anchor (B, C) logits, partners (M, B, C) logits of clients that share
the anchor's label space; ``probs`` maps logits to class probabilities, softmax or
sigmoid, the task's choice):

* :func:`consensus_l1` — FedMD's digest: mean absolute error to the consensus
  (mean of the partners' class scores).
* :func:`ensemble_kd` — FedDF's ensemble distillation: cross-entropy to the
  partners' averaged logits at temperature T, times T².
* :func:`pseudo_label_loss` — CoFED: the task loss on the partners' vote
  (hard pseudo-labels of the averaged probabilities).

Brute-force references: tests/unit/test_baseline_losses.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: logits -> probabilities (softmax over classes, or sigmoid per label)
Probs = Callable[[Tensor], Tensor]
#: (student logits (B, C), teacher probabilities (B, C)) -> scalar
SoftLoss = Callable[[Tensor, Tensor], Tensor]
#: probabilities (B, C) -> the task loss's targets
HardTargets = Callable[[Tensor], Tensor]


def _check(anchor: Tensor, partners: Tensor) -> None:
    if anchor.dim() != 2 or partners.dim() != 3 or partners.shape[1:] != anchor.shape:
        raise ValueError(
            f"anchor (B, D) and partners (M, B, D) expected, got "
            f"{tuple(anchor.shape)} and {tuple(partners.shape)}"
        )
    if partners.shape[0] < 1:
        raise ValueError("at least one partner is needed")


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
    """FedHeNN's proximal distance: 1 − CKA(Z^n, mean_m Z^m)."""
    _check(anchor, partners)
    return 1.0 - linear_cka(anchor, partners.detach().mean(0))


def gram_volumes(anchor: Tensor, partners: Tensor) -> Tensor:
    """Volumes V[i, j] of {z_i^n, z_j^{m_1}, ..., z_j^{m_M}} (B, B).

    V = sqrt(det G), G the (M+1)×(M+1) Gram matrix of the M+1 vectors.
    """
    _check(anchor, partners)
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
    """GRAM (Cicchetti et al., ICLR 2025): InfoNCE with −volume/τ as the logit.

    Mean of the anchor→tuples (rows of −V/τ) and tuples→anchor (columns)
    cross-entropies with the matching index as the positive.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = -gram_volumes(anchor, partners.detach()) / tau  # (B, B)
    target = torch.arange(anchor.shape[0], device=anchor.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def consensus_l1(anchor: Tensor, partners: Tensor) -> Tensor:
    """FedMD (Li & Wang 2019) digest: mean |s_i^n − mean_m s_i^m| over (B, C)."""
    _check(anchor, partners)
    return (anchor - partners.detach().mean(0)).abs().mean()


def ensemble_kd(
    anchor: Tensor, partners: Tensor, temperature: float, probs: Probs, soft: SoftLoss
) -> Tensor:
    """FedDF (Lin et al. 2020) distillation: T² · soft-CE(s^n/T, p(mean_m s^m / T))."""
    _check(anchor, partners)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    teacher = probs(partners.detach().mean(0) / temperature)
    return temperature**2 * soft(anchor / temperature, teacher)


def pseudo_label_loss(
    anchor: Tensor,
    partners: Tensor,
    probs: Probs,
    hard: HardTargets,
    task_loss: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """CoFED (Cao et al. 2023): the task loss on the partners' vote.

    The vote is :data:`hard` of the partners' mean probabilities (argmax for one
    label, > 0.5 per label for several).
    """
    _check(anchor, partners)
    with torch.no_grad():
        targets = hard(probs(partners).mean(0))
    return task_loss(anchor, targets)
