"""The tensor-core fused kernel (muscle_triton): its algebra, its Triton code, M = 1.

The algebra runs everywhere in torch. The Triton code itself runs in Triton's CPU
interpreter (a subprocess with TRITON_INTERPRET=1) where triton is installed, in
the ``ieee`` and ``tf32x3`` modes (the interpreter computes both in fp32 and has
no bf16 products); on the GPU machine every mode is checked against float64.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fedmuscle_flwr.method.kernels import muscle_triton, muscle_triton_jit
from fedmuscle_flwr.method.kernels.muscle_grid import contract_rows
from fedmuscle_flwr.method.kernels.muscle_torch import chunk_partition
from fedmuscle_flwr.method.losses import muscle_loss, pairwise_infonce
from tests.unit.method.kernels.test_kernels import grams
from tests.unit.method.test_losses import TOL, inputs, unit

SRC = Path(muscle_triton.__file__).resolve().parents[3]
GPU = pytest.mark.skipif(not muscle_triton.available(), reason="needs triton + CUDA")


@pytest.mark.parametrize(("m", "b"), [(2, 5), (3, 4), (4, 3), (5, 3)])
@pytest.mark.parametrize(("tau", "tau_p"), [(0.2, 0.15), (0.05, 0.02)])
def test_scaled_tiles_rebuild_the_partition(m: int, b: int, tau: float, tau_p: float):
    # Prepare
    a, gs = grams(m, b, 6, tau, tau_p, seed=1000 + m)
    e, mx = torch.exp(a - a.amax(2, keepdim=True)), gs.amax((2, 3))
    # Execute: what each program computes for tail t = (t_2, ..., t_{M-1}), float64
    big_q = torch.exp(gs[0, 1] - mx[0, 1])  # (J1, J2)
    tails = list(itertools.product(range(b), repeat=m - 2))
    u1 = torch.stack(
        [
            sum(
                (gs[k, 0, d] - mx[0, k] for k, d in enumerate(t, 2)),
                torch.zeros(b, dtype=gs.dtype),
            )
            for t in tails
        ]
    ).exp()
    u2 = torch.stack(
        [
            sum(
                (gs[k, 1, d] - mx[1, k] for k, d in enumerate(t, 2)),
                torch.zeros(b, dtype=gs.dtype),
            )
            for t in tails
        ]
    ).exp()
    c = torch.stack(
        [
            sum(
                (
                    gs[k, n, t[k - 2], t[n - 2]] - mx[k, n]
                    for k, n in itertools.combinations(range(2, m), 2)
                ),
                torch.zeros((), dtype=gs.dtype),
            )
            for t in tails
        ]
    ).exp()
    x = torch.einsum("ij,tj,jk->tik", e[0], u1, big_q)  # (T, I, J2): (E_1 o U1) @ Q
    y = torch.einsum("tik,ik,tk,t->ti", x, e[1], u2, c)  # (T, I)
    got = contract_rows(y.T, e[2:])
    # Assert: every factor in (0, 1], the shift is the sum of the pair maxima
    for factor in (big_q, u1, u2, c):
        assert factor.max() <= 1.0 and factor.min() > 0
    expected = chunk_partition(e, gs, torch.triu(mx, 1).sum(), ())
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


_INTERPRETED = """
import json, sys, torch
from fedmuscle_flwr.method.kernels import muscle_triton as mt
from fedmuscle_flwr.method.losses import muscle_loss
out = []
for prec, m, b, one_launch in json.loads(sys.argv[1]):
    mt.PRECISION, mt.ONE_LAUNCH = prec, one_launch
    gen = torch.Generator().manual_seed(m * 100 + b)
    z = torch.nn.functional.normalize(torch.randn(m + 1, b, 8, generator=gen), dim=-1)
    a64 = z[0].double().requires_grad_()
    ref = muscle_loss(a64, z[1:].double(), 0.2, 0.15, method="factorised")
    (ref_grad,) = torch.autograd.grad(ref, a64)
    a32 = z[0].clone().requires_grad_()
    got = mt.fused_muscle_loss(a32, z[1:], 0.2, 1 / 0.15 - 1 / 0.2)
    (grad,) = torch.autograd.grad(got, a32)
    out.append([abs(got.item() - ref.item()) / max(1.0, abs(ref.item())),
                ((grad.double() - ref_grad).abs().max() / ref_grad.abs().max()).item()])
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="no triton")
def test_triton_code_in_the_interpreter_matches_float64() -> None:
    # Prepare: sizes with padding (B not a power of two), several I blocks, M = 2..5,
    # the one-launch kernel (loss and gradient sums in one pass) and the two-launch one
    cases = [["ieee", 2, 5], ["tf32x3", 3, 20], ["ieee", 4, 6], ["ieee", 2, 70]]
    cases = [[*c, one] for c in cases + [["ieee", 5, 4]] for one in (True, False)]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(SRC)}
    # Execute
    run = subprocess.run(
        [sys.executable, "-c", _INTERPRETED, json.dumps(cases)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert: fp32 arithmetic throughout, so errors at fp32 rounding
    assert run.returncode == 0, run.stderr[-2000:]
    for value_err, grad_err in json.loads(run.stdout.strip().splitlines()[-1]):
        assert value_err < 2e-6 and grad_err < 2e-6


def test_the_programs_live_in_their_own_module_and_exist_with_triton() -> None:
    assert muscle_triton.triton is muscle_triton_jit.triton
    programs = ("_tiles", "_tail_weights")
    if muscle_triton_jit.triton is None:
        assert not any(hasattr(muscle_triton_jit, p) for p in programs)
    else:
        assert all(hasattr(muscle_triton_jit, p) for p in programs)


def test_unknown_precision_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(muscle_triton, "PRECISION", "tf32")
    e = torch.ones(2, 3, 3)
    with pytest.raises(ValueError, match="precision"):
        muscle_triton.fused_muscle_loss(e[0], e, 0.2, 1.0)


# ---- M = 1: "auto" computes InfoNCE directly, with the same value and gradient


@pytest.mark.parametrize(("b", "tau_p"), [(1, 0.1), (7, 0.15), (16, 0.05)])
def test_single_partner_fast_path_equals_grid(b: int, tau_p: float) -> None:
    # Prepare
    anchor, partners = inputs(1, b, 5, seed=40 + b)
    grid = muscle_loss(anchor, partners, 0.2, tau_p, method="grid")
    (grid_grad,) = torch.autograd.grad(grid, anchor)
    # Execute
    got = muscle_loss(anchor, partners, 0.2, tau_p)
    (grad,) = torch.autograd.grad(got, anchor)
    # Assert
    assert abs(got.item() - grid.item()) < TOL
    torch.testing.assert_close(grad, grid_grad, rtol=0, atol=TOL)
    assert abs(got.item() - pairwise_infonce(anchor, partners, 0.2).item()) < TOL


# ---- on the GPU machine: every precision against the float64 kernel


@GPU
@pytest.mark.gpu
@pytest.mark.parametrize("one_launch", [False, True])
@pytest.mark.parametrize("precision", muscle_triton.PRECISIONS)
@pytest.mark.parametrize(("m", "b"), [(2, 32), (3, 48), (4, 16), (5, 8), (3, 128)])
def test_every_precision_matches_float64(
    precision: str, m: int, b: int, one_launch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.setattr(muscle_triton, "PRECISION", precision)
    monkeypatch.setattr(muscle_triton, "ONE_LAUNCH", one_launch)
    anchor = unit(b, 64, seed=1100 + m, dtype=torch.float32).cuda().requires_grad_()
    partners = unit(m, b, 64, seed=1101 + m, dtype=torch.float32).cuda()
    ref_anchor = anchor.detach().double().requires_grad_()
    expected = muscle_loss(
        ref_anchor, partners.double(), 0.2, 0.15, method="factorised"
    )
    (expected_grad,) = torch.autograd.grad(expected, ref_anchor)
    # Execute
    got = muscle_loss(anchor, partners, 0.2, 0.15, method="triton")
    (grad,) = torch.autograd.grad(got, anchor)
    # Assert
    assert abs(got.item() - expected.item()) < 1e-5 * max(1.0, expected.item())
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-4, atol=1e-6)
