"""GRAM's Gramian volumes and loss against loops (slow reference)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.method.algorithms.gramian import gram_volumes, gramian_loss
from tests.unit.method.algorithms._cases import CASES, raw, unit


# -------------------------------------------------------------------- Gramian
def volume_reference(vectors: list[Tensor]) -> float:
    g = torch.stack([torch.stack([u @ v for v in vectors]) for u in vectors])
    return math.sqrt(max(float(torch.linalg.det(g)), 1e-12))


@pytest.mark.parametrize(("m", "b", "d"), CASES)
def test_gram_volumes_and_loss_match_loops(m: int, b: int, d: int) -> None:
    anchor, partners = unit(b, d, seed=m), unit(m, b, d, seed=m + 20)
    tau = 0.3
    vol = gram_volumes(anchor, partners)
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
    assert abs(float(gramian_loss(anchor, partners, tau)) - want) < 1e-9


def test_gramian_volume_is_zero_for_identical_tuple_and_loss_prefers_aligned() -> None:
    z = unit(5, 6, seed=7)
    assert float(gram_volumes(z, z[None]).diagonal().max()) < 1e-5
    near = torch.stack(
        [F.normalize(z + 0.3 * unit(5, 6, seed=s), dim=-1) for s in (8, 9)]
    )
    aligned = float(gramian_loss(z, near, 0.2))
    shuffled = float(gramian_loss(z, near[:, [1, 2, 3, 4, 0]], 0.2))
    assert aligned < math.log(5) < shuffled


def test_gramian_rejects_bad_tau_and_shapes() -> None:
    z = unit(4, 3, seed=0)
    with pytest.raises(ValueError, match="tau"):
        gramian_loss(z, z[None], 0.0)
    with pytest.raises(ValueError, match=r"partners \(M, B, D\)"):
        gramian_loss(z, z, 0.2)


def test_gram_volumes_refuse_no_partner() -> None:
    with pytest.raises(ValueError, match="at least one partner"):
        gram_volumes(raw(4, 3, seed=0), raw(0, 4, 3, seed=1))
