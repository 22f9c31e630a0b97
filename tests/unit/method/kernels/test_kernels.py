"""Tests of fedmuscle_flwr.method.kernels: every kernel path against brute force and each other."""

from __future__ import annotations

import math

import pytest
import torch

from fedmuscle_flwr.method.kernels import muscle_triton
from fedmuscle_flwr.method.kernels.muscle_grid import (
    cell_logits,
    contract_rows,
    log_alpha_grid,
    log_weights,
)
from fedmuscle_flwr.method.kernels.muscle_online import row_terms
from fedmuscle_flwr.method.kernels.muscle_torch import (
    chunk_partition,
    headroom,
    safe_headroom,
    upper_bound,
)
from fedmuscle_flwr.method.kernels.muscle_triton import tile_terms
from fedmuscle_flwr.method.losses import MuscleLoss, muscle_loss
from tests.unit.method.test_losses import TOL, inputs, reference_muscle, unit

METHODS = ["factorised", "grid"]
GPU = pytest.mark.skipif(not muscle_triton.available(), reason="needs triton + CUDA")


def grams(m: int, b: int, d: int, tau: float, tau_p: float, seed: int = 0):
    """(a, gs) of the kernels for random unit inputs, float64."""
    anchor, partners = unit(b, d, seed=seed), unit(m, b, d, seed=seed + 1)
    a = torch.einsum("id,mkd->mik", anchor, partners) / tau  # (M, B, B)
    g = torch.einsum("mjd,nkd->mnjk", partners, partners)  # (M, M, B, B)
    return a, -(1 / tau_p - 1 / tau) * g


# ---- every method == brute force (values and gradients, float64)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("m", "b", "d"), [(1, 5, 4), (2, 4, 6), (3, 4, 5), (4, 3, 4)])
def test_method_matches_bruteforce(method: str, m: int, b: int, d: int) -> None:
    # Prepare
    anchor, partners = inputs(m, b, d, seed=200 + m)
    expected = reference_muscle(anchor, partners, 0.3, 0.2)
    (expected_grad,) = torch.autograd.grad(expected, anchor)
    # Execute
    got = muscle_loss(anchor, partners, 0.3, 0.2, method=method)
    (grad,) = torch.autograd.grad(got, anchor)
    # Assert
    assert abs(got.item() - expected.item()) < TOL
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=TOL)


@pytest.mark.parametrize(("m", "b"), [(2, 16), (3, 12), (4, 6), (5, 4)])
def test_factorised_equals_grid_at_larger_sizes(m: int, b: int) -> None:
    # Prepare
    anchor, partners = inputs(m, b, 16, seed=300 + m)
    grid = muscle_loss(anchor, partners, 0.1, 0.08, method="grid")
    (grid_grad,) = torch.autograd.grad(grid, anchor)
    # Execute
    fact = muscle_loss(anchor, partners, 0.1, 0.08, method="factorised")
    (fact_grad,) = torch.autograd.grad(fact, anchor)
    # Assert
    assert abs(fact.item() - grid.item()) < TOL
    torch.testing.assert_close(fact_grad, grid_grad, rtol=0, atol=TOL)


# ---- numerical safety: bounds, float32 at small tau, fallbacks, autocast


@pytest.mark.parametrize(
    ("m", "tau", "tau_p"), [(2, 0.2, 0.15), (3, 0.05, 0.04), (4, 0.1, 0.02)]
)
def test_shift_and_headroom_are_valid_bounds(m: int, tau: float, tau_p: float) -> None:
    # Prepare
    a, gs = grams(m, 5, 6, tau, tau_p, seed=400 + m)
    c = log_weights(gs)  # (B,) * M
    logits = cell_logits(c, a, slice(None), ()).reshape(5, -1)  # (B, B^M)
    # Execute
    u = upper_bound(gs)
    room = headroom(a, gs, u)
    # Assert: u >= max c; every row's largest term sits within `room` of the shift
    assert u.item() >= c.max().item() - TOL
    scale = a.amax(2).sum(0) + u  # (B,) the shift of each row
    sink = scale - logits.max(1).values  # how far the largest term is below it
    assert (sink >= -TOL).all() and (sink <= room + TOL).all()


def test_log_weights_match_the_grid_alpha_with_prefixes() -> None:
    # Prepare
    _, gs = grams(4, 3, 5, 0.2, 0.1, seed=5)
    for prefix in [(), (1,), (2, 0), (0, 1, 2)]:
        # Execute
        got = log_weights(gs, prefix)
        # Assert: log_alpha_grid takes g and gamma; gs = -gamma g, so gamma = 1 here
        expected = log_alpha_grid(-gs, 1.0, prefix).expand(got.shape)
        torch.testing.assert_close(got, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("method", ["auto", "factorised"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_small_tau_is_finite_and_exact_in_float32(
    dtype: torch.dtype, method: str
) -> None:
    # Prepare: tau = 0.05 gives logits up to +-20 per partner, gamma = 5
    anchor = unit(16, 32, seed=501, dtype=dtype).requires_grad_()
    partners = unit(3, 16, 32, seed=502, dtype=dtype)
    exact = muscle_loss(
        anchor.detach().double(), partners.double(), 0.05, 0.04, method="grid"
    )
    # Execute
    got = muscle_loss(anchor, partners, 0.05, 0.04, method=method)
    (grad,) = torch.autograd.grad(got, anchor)
    # Assert
    assert torch.isfinite(got) and torch.isfinite(grad).all()
    assert abs(got.item() - exact.item()) < (1e-4 if dtype == torch.float32 else TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_dynamic_range_falls_back_exactly(dtype: torch.dtype) -> None:
    # Prepare: aligned partners and tiny temperatures give a huge headroom
    anchor = unit(6, 8, seed=511, dtype=dtype)
    partners = (anchor + 0.3 * unit(3, 6, 8, seed=512, dtype=dtype)).div(1.2)
    tau, tau_p = 0.002, 0.0005
    a = torch.einsum("id,mkd->mik", anchor, partners) / tau
    g = torch.einsum("mjd,nkd->mnjk", partners, partners)
    gs = -(1 / tau_p - 1 / tau) * g
    room = headroom(a, gs, upper_bound(gs)).max().item()
    assert room > safe_headroom(torch.float32, 6, 3)  # the float32 form would sink
    anchor.requires_grad_()
    expected = muscle_loss(
        anchor.double(), partners.double(), tau, tau_p, method="grid"
    )
    # Execute
    got = muscle_loss(anchor, partners, tau, tau_p, method="factorised")
    (grad,) = torch.autograd.grad(got, anchor)
    # Assert
    assert torch.isfinite(got) and torch.isfinite(grad).all()
    assert abs(got.item() - expected.item()) <= 1e-6 * max(1.0, abs(expected.item()))


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_autocast_half_is_computed_in_float32(half: torch.dtype) -> None:
    # Prepare: tau = 0.05, the sharpest setting the configs use
    anchor = unit(16, 32, seed=521, dtype=torch.float32).requires_grad_()
    partners = unit(4, 16, 32, seed=522, dtype=torch.float32)
    exact = muscle_loss(anchor.detach().double(), partners.double(), 0.05, 0.04)
    # Execute
    with torch.autocast(device_type="cpu", dtype=half):
        got = muscle_loss(anchor, partners, 0.05, 0.04)
        halfin = muscle_loss(anchor.to(half), partners.to(half), 0.05, 0.04)
    (grad,) = torch.autograd.grad(got, anchor)
    # Assert
    assert got.dtype == halfin.dtype == torch.float32
    assert torch.isfinite(grad).all() and torch.isfinite(halfin)
    assert abs(got.item() - exact.item()) < 1e-4


# ---- the fused kernel's algebra, emulated in torch (runs everywhere)


@pytest.mark.parametrize(("m", "b"), [(2, 5), (3, 4), (4, 3), (5, 3)])
def test_tile_terms_rebuild_the_log_weights(m: int, b: int) -> None:
    # Prepare
    _, gs = grams(m, b, 6, 0.2, 0.1, seed=600 + m)
    u = upper_bound(gs)
    # Execute
    q, u1, u2, ct = tile_terms(gs, u)
    assert ct is not None
    tiles = q[None] + u1[:, :, None] + u2[:, None, :] + ct[:, None, None]  # (T, B, B)
    # Assert: tiles[t, j1, j2] == c[j1, j2, t] - u
    expected = (log_weights(gs) - u).reshape(b, b, -1).permute(2, 0, 1)
    torch.testing.assert_close(tiles, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize(("m", "b"), [(2, 5), (3, 4), (5, 3)])
def test_fused_contraction_emulated_equals_factorised(m: int, b: int) -> None:
    # Prepare
    a, gs = grams(m, b, 6, 0.2, 0.1, seed=700 + m)
    e, u = torch.exp(a - a.amax(2, keepdim=True)), upper_bound(gs)
    q, u1, u2, ct = tile_terms(gs, u)
    assert ct is not None
    # Execute: what each program of the kernel does for its tails t
    w = torch.exp(q[None] + u1[:, :, None] + u2[:, None, :] + ct[:, None, None])
    y = torch.einsum("ij,tjk,ik->ti", e[0], w, e[1])  # (T, I)
    got = contract_rows(y.T, e[2:])
    # Assert
    torch.testing.assert_close(got, chunk_partition(e, gs, u, ()), rtol=1e-12, atol=0)


@pytest.mark.parametrize(("m", "b"), [(2, 4), (3, 4), (4, 3), (5, 2)])
def test_online_tiles_rebuild_every_logit(m: int, b: int) -> None:
    # Prepare
    a, gs = grams(m, b, 6, 0.2, 0.1, seed=750 + m)
    q, u1, u2, ct = tile_terms(gs, with_tail_pairs=m > 3)
    # Execute: the tile of row i and tail t, as the online kernel forms it
    rt = row_terms(a, ct)  # (B, T)
    assert (ct is None) == (m <= 3)
    tiles = (
        q[None, None]
        + (a[0][:, None, :] + u1[None])[..., None]  # (I, T, J1, 1)
        + (a[1][:, None, :] + u2[None])[:, :, None, :]  # (I, T, 1, J2)
        + rt[:, :, None, None]
    )  # (I, T, J1, J2)
    # Assert
    grid = cell_logits(log_weights(gs), a, slice(None), ())  # (I, J1, J2, t...)
    expected = grid.reshape(b, b, b, -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(tiles, expected, rtol=0, atol=TOL)


# ---- the Triton kernels themselves (GPU machine only; bench/gpu_bench.py runs these too)


@GPU
@pytest.mark.parametrize("method", ["triton", "online"])
@pytest.mark.parametrize(("m", "b"), [(2, 32), (3, 32), (4, 16), (5, 8), (3, 48)])
def test_triton_matches_factorised_float64(method: str, m: int, b: int) -> None:
    # Prepare
    anchor = unit(b, 64, seed=800 + m, dtype=torch.float32).cuda().requires_grad_()
    partners = unit(m, b, 64, seed=801 + m, dtype=torch.float32).cuda()
    ref_anchor = anchor.detach().double().requires_grad_()
    expected = muscle_loss(
        ref_anchor, partners.double(), 0.1, 0.08, method="factorised"
    )
    (expected_grad,) = torch.autograd.grad(expected, ref_anchor)
    # Execute
    got = muscle_loss(anchor, partners, 0.1, 0.08, method=method)
    (grad,) = torch.autograd.grad(got, anchor)
    # Assert
    assert abs(got.item() - expected.item()) < 1e-5 * max(1.0, expected.item())
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-4, atol=1e-6)


# ---- selection and validation


def test_unknown_method_is_rejected() -> None:
    anchor, partners = inputs(2, 3, 4)
    with pytest.raises(ValueError, match="method"):
        muscle_loss(anchor, partners, method="magic")
    with pytest.raises(ValueError, match="method"):
        MuscleLoss(method="magic")


@pytest.mark.skipif(muscle_triton.available(), reason="triton and CUDA are here")
@pytest.mark.parametrize("method", ["triton", "online"])
def test_triton_without_gpu_says_so(method: str) -> None:
    anchor, partners = inputs(2, 3, 4)
    with pytest.raises(RuntimeError, match="triton"):
        muscle_loss(anchor, partners, method=method)


@GPU
def test_online_is_exact_at_extreme_range_and_fast_paths_agree() -> None:
    # Prepare: a dynamic range that sends the float32 factorised kernel to float64
    anchor = unit(16, 32, seed=901, dtype=torch.float32).cuda()
    partners = (anchor + 0.3 * unit(3, 16, 32, seed=902).float().cuda()).div(1.2)
    ref = muscle_loss(anchor.double(), partners.double(), 0.01, 0.004, method="grid")
    # Execute
    got = [
        muscle_loss(anchor, partners, 0.01, 0.004, method=k)
        for k in ("online", "auto", "triton")
    ]
    # Assert
    for v in got:
        assert abs(v.item() - ref.item()) <= 1e-5 * max(1.0, abs(ref.item()))


def test_module_passes_the_method_through() -> None:
    anchor, partners = inputs(3, 4, 5, seed=9)
    losses = [MuscleLoss(0.2, 0.1, method=k)(anchor, partners) for k in METHODS]
    assert abs(losses[0].item() - losses[1].item()) < TOL
    assert math.isfinite(losses[0].item())
