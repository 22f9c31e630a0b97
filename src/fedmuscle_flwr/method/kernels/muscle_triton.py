# mypy: disable-error-code="no-untyped-def,misc,untyped-decorator,unused-ignore"
r"""Fused Triton kernel of the factorised Muscle partition on the tensor cores.

With ``E[m, i, k]`` and ``c[j]`` as in :mod:`muscle_torch`, split each tuple
j = (j_1, j_2, t) into its first two indices and a tail t in [B]^(M-2), and

    c[j] - u = q[j_1, j_2] + u1[t, j_1] + u2[t, j_2] + ct[t]

(:func:`tile_terms`). Shifting each pair block gs[m, n] by its maximum mx[m, n]
(the shifts sum to u), the tile of tail t is a constant matrix scaled on both
sides, every factor in (0, 1] (the kernel reads the terms off the Gram blocks):

    W_t = C_t diag(U1[t]) Q diag(U2[t]),  Q = exp(gs[0, 1] - mx[0, 1]).

So ``Y[t, i] = C_t sum_{j_2} ((E_1 o U1[t]) @ Q)[i, j_2] E_2[i, j_2] U2[t, j_2]``: per
tail one (B, B) @ (B, B) product whose right operand Q is the same for every tail
and sits in shared memory, and no exponential per cell (B^M exps become 2 B^(M-1)).
The gradient's weight of Y[t, i] is dZ_i/dY[t, i] = prod_{m >= 2} E[m, i, t_m], which
does not depend on Z; so the same pass also forms ``(w C E_2 o U2[t]) @ Q^T`` and
accumulates the unnormalised dZ/dE_1 and dZ/dE_2 per program (partials summed in
torch, no atomics), divided by Z_i once Z is known: 2 products per tail, one launch
(``ONE_LAUNCH``, off: on an H100 it is exact but 12-17 % slower at the large sizes it
was meant for, docs/performance.md §3d). The default two-launch
form forms Y, then recomputes it in the gradient launch beside
``(gY C E_2 o U2[t]) @ Q^T``: 3 products per tail.
The products run in split precision (``PRECISIONS``): ``bf16x3`` (the default)
splits each fp32 operand into bf16 hi + lo and sums hi*hi + hi*lo + lo*hi (about
16 mantissa bits; the lo*lo term and the rounding of lo dropped, at most ~3 2^-16
of one product, random in sign, over sums of positive terms); ``tf32x3`` does the
same with TF32 halves; ``ieee`` is plain fp32 FMA. Measured against float64 on an
H200 (docs/performance.md §3c) every mode gave value errors <= 1.2e-7 and gradient
errors <= 6e-7; bf16x3 is the fastest, and tf32x3 needs more shared memory than a
Hopper SM has at B > 64. Plain TF32 (10 bits) is not offered: not exact to 1e-5.
The loss and the anchor gradient come from :class:`_FusedMuscle`.
Shape letters: B batch (i, j), M partners, T = B^(M-2) tails, I/J tile rows/cols.
Import is optional: :func:`available` says whether triton and a GPU are there.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import torch
from torch import Tensor

from fedmuscle_flwr.method.kernels import muscle_triton_jit as jit
from fedmuscle_flwr.method.kernels.muscle_grid import axes, contract_rows, log_weights
from fedmuscle_flwr.method.kernels.muscle_torch import safe_headroom

triton = jit.triton  # None without the optional triton package

PRECISIONS = ("bf16x3", "tf32x3", "ieee")
PRECISION = "bf16x3"  # the split of the tensor-core products (fastest, exact)
BLOCK_I = 64  # anchor rows per program (the tile's M dimension)
WARPS: int | None = None  # warps per program; None: 8 for (64, 128) tiles, else 4
#: loss and gradient sums in one launch (2 products per tail) instead of two (Y, then
#: Y again and the gradient: 3 products). Off: exact on an H100 but slower at
#: M = 5, B = 64 and M = 4, B = 128 (bench/gpu_one_launch.py, docs/performance.md §3d).
ONE_LAUNCH = False


def interpreted() -> bool:
    """Whether Triton runs in its CPU interpreter (TRITON_INTERPRET=1, tests only)."""
    return triton is not None and os.environ.get("TRITON_INTERPRET") == "1"


def available() -> bool:
    """Whether the fused kernel can run here (triton importable, CUDA present)."""
    return triton is not None and torch.cuda.is_available()


@functools.lru_cache(maxsize=8)
def _sms(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (2 for the CPU interpreter)."""
    if device.type != "cuda":
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


def launch(num_t: int, b: int, device: torch.device) -> dict[str, int]:
    """Grid and tile sizes for T tails and batch B: about 4 programs per SM."""
    bj = max(16, 1 << (b - 1).bit_length())  # Triton's dot needs >= 16
    bi = min(bj, BLOCK_I)
    blocks_i = -(-b // bi)
    progs = max(1, min(num_t, 4 * _sms(device) // blocks_i))
    tails = -(-num_t // progs)
    warps = WARPS or (8 if bi * bj >= 64 * 128 else 4)
    return {"tails": tails, "progs": -(-num_t // tails), "blocks_i": blocks_i,
            "BI": bi, "BJ": bj, "warps": warps}  # fmt: skip


def _launch(
    e: Tensor, gs: Tensor, mx: Tensor, gy: Tensor | None, mode: str
) -> tuple[Tensor, Tensor]:
    """One launch of the tile program in ``mode``: Y (T, B), sums (2, B, B)."""
    num_m, b = gs.shape[0], gs.shape[2]
    num_t = b ** (num_m - 2)
    cfg = launch(num_t, b, e.device)
    grid = (cfg["progs"], cfg["blocks_i"])
    y = e.new_empty(num_t if mode != "grad" else 1, b)  # (T, I)
    progs = cfg["progs"] if mode != "y" else 1
    part = e.new_empty(2, progs, b, b)  # (2, programs, I, J) partial sums
    jit._tiles[grid](e, gs, mx, y if gy is None else gy, y, part[0], part[1], b,
                     num_t, cfg["tails"], NUM_M=num_m, BI=cfg["BI"], BJ=cfg["BJ"],
                     PREC=PRECISION, MODE=mode, num_warps=cfg["warps"])  # fmt: skip
    return y, (part.sum(1) if mode != "y" else part[:, 0])


@functools.lru_cache(maxsize=16)
def _pair_mask(num_m: int, device: torch.device) -> Tensor:
    """(M, M) with ones above the diagonal: the partner pairs m < n."""
    return torch.ones(num_m, num_m, device=device).triu_(1)


class _FusedMuscle(torch.autograd.Function):
    """Mean Muscle loss and min_i of the shifted Z_i (not differentiable).

    The anchor gradient is formed in forward (partners are constants), so
    backward is one multiply.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, zp: Tensor, tau: float, gamma: float) -> Any:
        (num_m, b, d), mask = zp.shape, _pair_mask(zp.shape[0], z.device)
        flat = zp.reshape(num_m * b, d)  # (M*B, D)
        a = torch.matmul(z, zp.transpose(1, 2)).mul_(1.0 / tau)  # (M, B, B)
        gs = (flat @ flat.T).mul_(-gamma).view(num_m, b, num_m, b)
        gs = gs.permute(0, 2, 1, 3).contiguous()  # (M, M, B, B): c = sum_{m<n} gs
        a_max = a.amax(2, keepdim=True)  # (M, B, 1)
        e = torch.exp(a - a_max)  # (M, B, B) in (0, 1]
        mx = gs.amax((2, 3))  # (M, M) block maxima: the shifts of the tile factors
        grad_wanted = ctx.needs_input_grad[0]
        if grad_wanted and ONE_LAUNCH:
            y, marg12 = _launch(e, gs, mx, None, "both")  # dZ/dE_1, 2, not yet / Z
        else:
            y, marg12 = _launch(e, gs, mx, None, "y")[0].requires_grad_(), None
        with torch.enable_grad():
            tail = e[2:].detach().requires_grad_()  # (M-2, B, B)
            zz = contract_rows(y.T, tail)  # (B,) shifted Z_i
        pos = torch.diagonal(a, dim1=1, dim2=2).sum(0)  # (B,) sum_m a[m, i, i]
        pos += (torch.diagonal(gs, dim1=2, dim2=3) * mask[..., None]).sum((0, 1))
        shift = a_max.sum(0).squeeze(1) + (mx * mask).sum()  # (B,)
        loss = (zz.detach().log() + shift - pos).mean()
        if grad_wanted:  # p_m(i, k) = E dlogZ/dE: the softmax marginals
            inv = zz.detach().reciprocal()  # (B,)
            marg = torch.empty_like(e)  # (M, B, B)
            if marg12 is None:
                gy, *g_tail = torch.autograd.grad(
                    zz, (y, tail), inv, allow_unused=True
                )  # g_tail [None] at M = 2
                marg[:2] = _launch(e, gs, mx, gy.contiguous(), "grad")[1]
            else:
                marg[:2] = marg12 * inv[None, :, None]
                g_tail = (
                    list(torch.autograd.grad(zz, (tail,), inv)) if num_m > 2 else []
                )
            if g_tail and g_tail[0] is not None:
                marg[2:] = g_tail[0]
            marg.mul_(e)
            torch.diagonal(marg, dim1=1, dim2=2).sub_(1.0)  # p - onehot(positive)
            grad = marg.transpose(0, 1).reshape(b, -1) @ flat  # (B, D)
            ctx.save_for_backward(grad.mul_(1.0 / (tau * b)))
        zmin = zz.detach().min()
        ctx.mark_non_differentiable(zmin)
        return loss, zmin

    @staticmethod
    def backward(
        ctx: Any, grad_out: Tensor, _: Tensor
    ) -> tuple[Tensor, None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None


def tile_terms(
    gs: Tensor, u: Tensor | None = None, with_tail_pairs: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Tile terms q (B, B), u1 (T, B), u2 (T, B), ct (T,) of the module docstring.

    Shape: gs (M, M, B, B) scaled by -gamma, u () or None (no shift) -> T = B^(M-2).
    ``ct`` is None when not ``with_tail_pairs`` (callers that know it is zero).
    """
    num_m, b = gs.shape[0], gs.shape[2]
    tail = [b] * (num_m - 2)  # (B,) * (M-2)
    sides = []
    for first in (0, 1):  # u_first[t, j] = sum_{m >= 2} gs[first, m, j, t_m]
        acc = gs.new_zeros(b) if num_m == 2 else None  # (B,): no tail, no terms
        for m in range(2, num_m):  # gs[first, m].T: (t_m, j)
            term = gs[first, m].T.reshape(*axes(num_m, b, 2, m), b)  # (.., B_m, .., B)
            acc = term if acc is None else acc + term
        assert acc is not None
        sides.append(acc.expand(*tail, b).reshape(-1, b).contiguous())  # (T, B)
    q = gs[0, 1].contiguous()
    if not with_tail_pairs:
        return q, sides[0], sides[1], None
    ct = log_weights(gs[2:, 2:]).reshape(-1)  # (T,)
    return q, sides[0], sides[1], (ct if u is None else ct - u).contiguous()


def fused_muscle_loss(z: Tensor, zp: Tensor, tau: float, gamma: float) -> Tensor | None:
    """Mean Muscle loss by the fused kernel, or None where float32 is not exact.

    Shape: z (B, D), zp (M, B, D), CUDA float32, M >= 2 -> (). Every factor is
    <= 1, so the shifted Z_i <= B^M never overflows; terms that underflow are each
    < tiny, so Z_i is exact to B^M tiny / Z_i relative, checked against
    :func:`muscle_torch.safe_headroom` after the fact (the one host sync). None:
    the caller computes the loss in float64 instead.
    """
    if PRECISION not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {PRECISION!r}")
    if not (available() or interpreted()):
        raise RuntimeError("method='triton' needs the triton package and a CUDA GPU")
    if not ((z.is_cuda or interpreted()) and z.dtype == torch.float32):
        raise ValueError("the Triton kernel takes CUDA float32 inputs")
    if zp.shape[0] < 2:
        raise ValueError(f"the Triton kernel needs M >= 2 partners, got {zp.shape[0]}")
    loss, zmin = _FusedMuscle.apply(z, zp.contiguous(), tau, gamma)
    sunk = -math.log(max(float(zmin), torch.finfo(torch.float64).tiny))
    return (
        loss if sunk <= safe_headroom(torch.float32, zp.shape[1], zp.shape[0]) else None
    )
