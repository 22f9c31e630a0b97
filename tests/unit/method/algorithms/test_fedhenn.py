"""FedHeNN's CKA distance against the HSIC formula (slow reference)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from fedmuscle_flwr.method.algorithms.fedhenn import cka_distance
from tests.unit.method.algorithms._cases import CASES, TOL, raw, unit


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
    got = float(cka_distance(anchor, partners))
    assert abs(got - (1 - cka_reference(anchor, partners.mean(0)))) < TOL


def test_cka_is_rotation_invariant_and_zero_for_the_same_matrix() -> None:
    x = unit(8, 5, seed=1)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    assert float(cka_distance(x, (x @ q)[None])) < 1e-12
    assert float(cka_distance(x, unit(1, 8, 5, seed=2))) > 0.05


def test_cka_gradient_reaches_the_anchor_only() -> None:
    anchor = unit(6, 4, seed=3).requires_grad_()
    partners = unit(2, 6, 4, seed=4).requires_grad_()
    cka_distance(anchor, partners).backward()
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0
    assert partners.grad is None


def test_cka_refuses_bad_shapes_and_no_partner() -> None:
    with pytest.raises(ValueError, match="expected"):
        cka_distance(raw(4, 3, seed=0), raw(2, 4, 5, seed=1))
    with pytest.raises(ValueError, match="at least one partner"):
        cka_distance(raw(4, 3, seed=0), raw(0, 4, 3, seed=1))
