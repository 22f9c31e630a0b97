"""Baseline losses (baseline_losses.py, tasks/soft.py) against slow loop references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr import baseline_losses as bl
from fedmuscle_flwr.tasks.soft import SOFT_LABELS

TOL = 1e-10
CASES = [(1, 5, 4), (2, 4, 6), (3, 6, 5), (4, 3, 8)]  # (M, B, D)


def unit(*shape: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=gen, dtype=torch.float64), dim=-1)


def raw(*shape: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(*shape, generator=gen, dtype=torch.float64)


# ------------------------------------------------------------------------ CKA
def cka_reference(x: Tensor, y: Tensor) -> float:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels, H = I − 11ᵀ/n."""
    n = x.shape[0]
    h = torch.eye(n, dtype=x.dtype) - torch.ones(n, n, dtype=x.dtype) / n
    k, ell = x @ x.T, y @ y.T

    def hsic(a: Tensor, b: Tensor) -> float:
        return float(torch.trace(a @ h @ b @ h))

    return hsic(k, ell) / math.sqrt(hsic(k, k) * hsic(ell, ell))


@pytest.mark.parametrize(("m", "b", "d"), CASES)
def test_cka_distance_matches_hsic_formula(m: int, b: int, d: int) -> None:
    anchor, partners = unit(b, d, seed=m), unit(m, b, d, seed=m + 10)
    got = float(bl.cka_distance(anchor, partners))
    assert abs(got - (1 - cka_reference(anchor, partners.mean(0)))) < TOL


def test_cka_is_rotation_invariant_and_zero_for_the_same_matrix() -> None:
    x = unit(8, 5, seed=1)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    assert float(bl.cka_distance(x, (x @ q)[None])) < 1e-12
    assert float(bl.cka_distance(x, unit(1, 8, 5, seed=2))) > 0.05


def test_cka_gradient_reaches_the_anchor_only() -> None:
    anchor = unit(6, 4, seed=3).requires_grad_()
    partners = unit(2, 6, 4, seed=4).requires_grad_()
    bl.cka_distance(anchor, partners).backward()
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0
    assert partners.grad is None


# -------------------------------------------------------------------- Gramian
def volume_reference(vectors: list[Tensor]) -> float:
    g = torch.stack([torch.stack([u @ v for v in vectors]) for u in vectors])
    return math.sqrt(max(float(torch.linalg.det(g)), 1e-12))


@pytest.mark.parametrize(("m", "b", "d"), CASES)
def test_gram_volumes_and_loss_match_loops(m: int, b: int, d: int) -> None:
    anchor, partners = unit(b, d, seed=m), unit(m, b, d, seed=m + 20)
    tau = 0.3
    vol = bl.gram_volumes(anchor, partners)
    ref = torch.tensor(
        [
            [volume_reference([anchor[i], *partners[:, j]]) for j in range(b)]
            for i in range(b)
        ],
        dtype=torch.float64,
    )
    assert torch.allclose(vol, ref, atol=1e-9)
    # loop InfoNCE over −V/τ, both directions
    a2t = sum(-(-ref[i, i] / tau) + torch.logsumexp(-ref[i] / tau, 0) for i in range(b))
    t2a = sum(
        -(-ref[j, j] / tau) + torch.logsumexp(-ref[:, j] / tau, 0) for j in range(b)
    )
    want = float(0.5 * (a2t + t2a) / b)
    assert abs(float(bl.gramian_loss(anchor, partners, tau)) - want) < 1e-9


def test_gramian_volume_is_zero_for_identical_tuple_and_loss_prefers_aligned() -> None:
    z = unit(5, 6, seed=7)
    assert float(bl.gram_volumes(z, z[None]).diagonal().max()) < 1e-5
    near = torch.stack(
        [F.normalize(z + 0.3 * unit(5, 6, seed=s), dim=-1) for s in (8, 9)]
    )
    aligned = float(bl.gramian_loss(z, near, 0.2))
    shuffled = float(bl.gramian_loss(z, near[:, [1, 2, 3, 4, 0]], 0.2))
    assert aligned < math.log(5) < shuffled


def test_gramian_rejects_bad_tau_and_shapes() -> None:
    z = unit(4, 3, seed=0)
    with pytest.raises(ValueError, match="tau"):
        bl.gramian_loss(z, z[None], 0.0)
    with pytest.raises(ValueError, match=r"partners \(M, B, D\)"):
        bl.gramian_loss(z, z, 0.2)


# ----------------------------------------------------------- logit baselines
def test_consensus_l1_is_the_mean_absolute_error_to_the_partners_mean() -> None:
    anchor, partners = raw(4, 3, seed=1), raw(3, 4, 3, seed=2)
    want = sum(
        abs(float(anchor[i, c] - partners[:, i, c].mean()))
        for i in range(4)
        for c in range(3)
    )
    assert abs(float(bl.consensus_l1(anchor, partners)) - want / 12) < TOL


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_ensemble_kd_equals_t2_kl_plus_teacher_entropy(temperature: float) -> None:
    anchor, partners = raw(5, 4, seed=3), raw(2, 5, 4, seed=4)
    soft = SOFT_LABELS["softmax"]
    got = float(
        bl.ensemble_kd(anchor, partners, temperature, soft.probs, soft.soft_loss)
    )
    want = 0.0
    for i in range(5):
        p = torch.softmax(partners[:, i].mean(0) / temperature, 0)
        q = torch.softmax(anchor[i] / temperature, 0)
        kl = float((p * (p.log() - q.log())).sum())
        entropy = float(-(p * p.log()).sum())
        want += temperature**2 * (kl + entropy)
    assert abs(got - want / 5) < 1e-9


def test_ensemble_kd_sigmoid_is_soft_bce() -> None:
    anchor, partners = raw(3, 4, seed=5), raw(2, 3, 4, seed=6)
    soft = SOFT_LABELS["sigmoid"]
    t = 2.0
    got = float(bl.ensemble_kd(anchor, partners, t, soft.probs, soft.soft_loss))
    p = torch.sigmoid(partners.mean(0) / t)
    q = torch.sigmoid(anchor / t)
    want = -(p * q.log() + (1 - p) * (1 - q).log()).mean() * t**2
    assert abs(got - float(want)) < 1e-9


def test_pseudo_labels_are_the_partners_vote() -> None:
    anchor = raw(4, 3, seed=8).requires_grad_()
    partners = raw(3, 4, 3, seed=9)
    soft = SOFT_LABELS["softmax"]
    loss = bl.pseudo_label_loss(
        anchor, partners, soft.probs, soft.hard_targets, F.cross_entropy
    )
    votes = [int(torch.softmax(partners[:, i], -1).mean(0).argmax()) for i in range(4)]
    want = (
        sum(
            float(-torch.log_softmax(anchor[i].detach(), 0)[votes[i]]) for i in range(4)
        )
        / 4
    )
    assert abs(float(loss.detach()) - want) < TOL
    loss.backward()
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0


def test_multilabel_vote_is_mean_probability_over_half() -> None:
    partners = torch.tensor(
        [[[4.0, -4.0, 0.1]], [[4.0, 4.0, -3.0]], [[-1.0, 4.0, 0.2]]]
    )
    soft = SOFT_LABELS["sigmoid"]
    seen: list[Tensor] = []

    def capture(logits: Tensor, targets: Tensor) -> Tensor:
        seen.append(targets)
        return F.binary_cross_entropy_with_logits(logits, targets)

    bl.pseudo_label_loss(
        torch.zeros(1, 3), partners, soft.probs, soft.hard_targets, capture
    )
    assert seen[0].tolist() == [[1.0, 1.0, 0.0]]


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, p: bl.consensus_l1(a, p),
        lambda a, p: bl.cka_distance(a, p),
        lambda a, p: bl.gram_volumes(a, p),
    ],
)
def test_shape_mismatch_and_no_partner_are_refused(fn) -> None:
    with pytest.raises(ValueError, match="expected"):
        fn(raw(4, 3, seed=0), raw(2, 4, 5, seed=1))
    with pytest.raises(ValueError, match="at least one partner"):
        fn(raw(4, 3, seed=0), raw(0, 4, 3, seed=1))
