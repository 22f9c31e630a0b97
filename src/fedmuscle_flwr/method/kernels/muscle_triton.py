# mypy: disable-error-code="no-untyped-def,misc,untyped-decorator,unused-ignore"
r"""Fused Triton kernel of the factorised Muscle partition on the tensor cores.

With ``E[m, i, k]`` and ``c[j]`` as in :mod:`muscle_torch`, split each tuple
j = (j_1, j_2, t) into its first two indices and a tail t in [B]^(M-2), and

    c[j] - u = q[j_1, j_2] + u1[t, j_1] + u2[t, j_2] + ct[t]

(:func:`tile_terms`). Each term is shifted by its own maximum, so the tile of
tail t is a constant matrix scaled on both sides, every factor in (0, 1]:

    W_t = C_t diag(U1[t]) Q diag(U2[t]),  Q = exp(q - max q),  U = exp(u - max u).

So ``Y[t, i] = C_t sum_{j_2} ((E_1 o U1[t]) @ Q)[i, j_2] E_2[i, j_2] U2[t, j_2]``: per
tail one (B, B) @ (B, B) product whose right operand Q is the same for every tail
and sits in shared memory, and no exponential per cell (B^M exps become 2 B^(M-1)).
Backward recomputes it and forms ``(gY C E_2 o U2[t]) @ Q^T``, accumulating the
gradients of E_1 and E_2 per program (partials summed in torch: no atomics).
The products run in split precision (``PRECISIONS``): ``bf16x3`` splits each fp32
operand into bf16 hi + lo and sums hi*hi + hi*lo + lo*hi (about 16 mantissa bits,
the lo*lo term and the rounding of lo dropped); ``tf32x3`` does the same with
TF32 halves (about 21 bits); ``ieee`` is plain fp32 FMA. Plain TF32 (10 bits) is
not offered: it is not exact to 1e-5. Only Y (B^(M-1)) reaches memory.
Shape letters: B batch (i, j), M partners, T = B^(M-2) tails, I/J tile rows/cols.
Import is optional: :func:`available` says whether triton and a GPU are there.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch import Tensor

from fedmuscle_flwr.method.kernels.muscle_grid import axes, contract_rows, log_weights

try:  # optional dependency: CPU installs and CI have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

PRECISIONS = ("bf16x3", "tf32x3", "ieee")
PRECISION = "tf32x3"  # the default split of the tensor-core products
BLOCK_I = 64  # anchor rows per program (the tile's M dimension)
WARPS: int | None = None  # warps per program; None: 8 for (64, 128) tiles, else 4


def interpreted() -> bool:
    """Whether Triton runs in its CPU interpreter (TRITON_INTERPRET=1, tests only)."""
    return triton is not None and os.environ.get("TRITON_INTERPRET") == "1"


def available() -> bool:
    """Whether the fused kernel can run here (triton importable, CUDA present)."""
    return triton is not None and torch.cuda.is_available()


if triton is not None:  # pragma: no cover - compiled and tested on the GPU machine

    @triton.jit
    def _split(y, PREC: tl.constexpr):
        """Operand y (fp32) as the (hi, lo) pair the products of ``PREC`` take."""
        if PREC == "bf16x3":
            hi = y.to(tl.bfloat16)
            lo = (y - hi.to(tl.float32)).to(tl.bfloat16)
        else:  # tf32x3 / ieee: the dot splits (or not) by itself
            hi = y
            lo = y
        return hi, lo

    @triton.jit
    def _dot(x, yh, yl, BI: tl.constexpr, BJ: tl.constexpr, PREC: tl.constexpr):
        """The fp32 product x (I, K) @ y (K, J), y given as ``_split(y)``: (I, J)."""
        acc = tl.zeros((BI, BJ), dtype=tl.float32)
        if PREC == "bf16x3":  # smallest terms first
            xh = x.to(tl.bfloat16)
            xl = (x - xh.to(tl.float32)).to(tl.bfloat16)
            acc = tl.dot(xl, yh, acc)
            acc = tl.dot(xh, yl, acc)
            acc = tl.dot(xh, yh, acc)
        else:
            acc = tl.dot(x, yh, acc, input_precision=PREC)
        return acc

    @triton.jit
    def _scales(u1_ptr, u2_ptr, ct_ptr, sh_ptr, t, rj, n, num_t):
        """U1[t], U2[t] (J,) and C_t: the tile's scales, 0 outside the valid cells."""
        valid = t < num_t
        mj = (rj < n) & valid
        u1 = tl.load(u1_ptr + t * n + rj, mask=mj, other=float("-inf"))
        u2 = tl.load(u2_ptr + t * n + rj, mask=mj, other=float("-inf"))
        ct = tl.load(ct_ptr + t, mask=valid, other=float("-inf"))
        return (
            tl.exp(u1 - tl.load(sh_ptr)),
            tl.exp(u2 - tl.load(sh_ptr + 1)),
            tl.exp(ct),
        )

    @triton.jit
    def _setup(e1_ptr, e2_ptr, q_ptr, n, BI: tl.constexpr, BJ: tl.constexpr):
        """Rows, columns, E_1 and E_2 rows of this program (I, J), Q (J, J)."""
        ri = tl.program_id(1) * BI + tl.arange(0, BI)
        rj = tl.arange(0, BJ)
        m2 = (ri < n)[:, None] & (rj < n)[None, :]
        off = ri[:, None] * n + rj[None, :]
        e1 = tl.load(e1_ptr + off, mask=m2, other=0.0)
        e2 = tl.load(e2_ptr + off, mask=m2, other=0.0)
        mq = (rj < n)[:, None] & (rj < n)[None, :]
        q = tl.load(q_ptr + rj[:, None] * n + rj[None, :], mask=mq, other=0.0)
        return ri, rj, m2, off, e1, e2, q

    @triton.jit
    def _fwd(e1_ptr, e2_ptr, q_ptr, u1_ptr, u2_ptr, ct_ptr, sh_ptr, y_ptr, n,
             num_t, tails, BI: tl.constexpr, BJ: tl.constexpr,
             PREC: tl.constexpr):  # fmt: skip
        ri, rj, _, _, e1, e2, q = _setup(e1_ptr, e2_ptr, q_ptr, n, BI, BJ)
        qh, ql = _split(q, PREC)  # (J1, J2), loop-invariant
        for k in range(tails):
            t = tl.program_id(0) * tails + k
            u1, u2, c = _scales(u1_ptr, u2_ptr, ct_ptr, sh_ptr, t, rj, n, num_t)
            x = _dot(e1 * u1[None, :], qh, ql, BI, BJ, PREC)  # (I, J2)
            y = tl.sum(x * (e2 * u2[None, :]), axis=1) * c  # (I,)
            tl.store(y_ptr + t * n + ri, y, mask=(ri < n) & (t < num_t))

    @triton.jit
    def _bwd(e1_ptr, e2_ptr, q_ptr, u1_ptr, u2_ptr, ct_ptr, sh_ptr, gy_ptr, g1_ptr,
             g2_ptr, n, num_t, tails, BI: tl.constexpr, BJ: tl.constexpr,
             PREC: tl.constexpr):  # fmt: skip
        ri, rj, m2, off, e1, e2, q = _setup(e1_ptr, e2_ptr, q_ptr, n, BI, BJ)
        qh, ql = _split(q, PREC)  # Q (J1, J2)
        th, tl_ = _split(tl.trans(q), PREC)  # Q^T (J2, J1)
        acc1 = tl.zeros((BI, BJ), dtype=tl.float32)  # dY/dE_1 (I, J1)
        acc2 = tl.zeros((BI, BJ), dtype=tl.float32)  # dY/dE_2 (I, J2)
        for k in range(tails):
            t = tl.program_id(0) * tails + k
            u1, u2, c = _scales(u1_ptr, u2_ptr, ct_ptr, sh_ptr, t, rj, n, num_t)
            gy = tl.load(gy_ptr + t * n + ri, mask=(ri < n) & (t < num_t), other=0.0)
            v2 = (gy * c)[:, None] * u2[None, :]  # (I, J2)
            x = _dot(e1 * u1[None, :], qh, ql, BI, BJ, PREC)  # (I, J2)
            acc2 += x * v2
            h = _dot(e2 * v2, th, tl_, BI, BJ, PREC)  # (I, J1)
            acc1 += h * u1[None, :]
        out = tl.program_id(0) * n * n + off
        tl.store(g1_ptr + out, acc1, mask=m2)
        tl.store(g2_ptr + out, acc2, mask=m2)


@functools.lru_cache(maxsize=8)
def _sms(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (2 for the CPU interpreter)."""
    if device.type != "cuda":
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


def launch(num_t: int, b: int, device: torch.device) -> dict[str, int]:
    """Grid and tile sizes for T tails and batch B: about 4 programs per SM."""
    bj = max(16, 1 << (b - 1).bit_length())  # tl.dot needs >= 16
    bi = min(bj, BLOCK_I)
    blocks_i = -(-b // bi)
    progs = max(1, min(num_t, 4 * _sms(device) // blocks_i))
    tails = -(-num_t // progs)
    warps = WARPS or (8 if bi * bj >= 64 * 128 else 4)
    return {"tails": tails, "progs": -(-num_t // tails), "blocks_i": blocks_i,
            "BI": bi, "BJ": bj, "warps": warps}  # fmt: skip


class _FusedPairContract(torch.autograd.Function):
    """Y (T, B) from E_1, E_2 (B, B) and the tile scales; gradients into E_1, E_2."""

    @staticmethod
    def forward(ctx: Any, e1: Tensor, e2: Tensor, *terms: Tensor) -> Tensor:
        q, u1, u2, ct, sh = terms  # (B, B), (T, B), (T, B), (T,), (2,)
        (num_t, b), prec = u1.shape, PRECISION
        cfg = launch(num_t, b, e1.device)
        y = e1.new_empty(num_t, b)  # (T, I)
        _fwd[(cfg["progs"], cfg["blocks_i"])](
            e1, e2, q, u1, u2, ct, sh, y, b, num_t, cfg["tails"],
            BI=cfg["BI"], BJ=cfg["BJ"], PREC=prec, num_warps=cfg["warps"],
        )  # fmt: skip
        ctx.save_for_backward(e1, e2, *terms)
        ctx.prec = prec
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        e1, e2, q, u1, u2, ct, sh = ctx.saved_tensors
        num_t, b = u1.shape
        cfg = launch(num_t, b, e1.device)
        g1 = e1.new_empty(cfg["progs"], b, b)  # (programs, I, J1) partial sums
        g2 = e1.new_empty(cfg["progs"], b, b)  # (programs, I, J2)
        _bwd[(cfg["progs"], cfg["blocks_i"])](
            e1, e2, q, u1, u2, ct, sh, grad_y.contiguous(), g1, g2, b, num_t,
            cfg["tails"], BI=cfg["BI"], BJ=cfg["BJ"], PREC=ctx.prec,
            num_warps=cfg["warps"],
        )  # fmt: skip
        return g1.sum(0), g2.sum(0), None, None, None, None, None


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


def scaled_terms(
    gs: Tensor, u: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Q = exp(q - max q), u1, u2, ct + max q + max u1 + max u2 and (max u1, max u2).

    Every factor of W_t is then in (0, 1] (u bounds each term's maximum), no sync.
    """
    q, u1, u2, ct = tile_terms(gs, u)
    assert ct is not None
    qmax, sh = q.amax(), torch.stack([u1.amax(), u2.amax()])  # (), (2,)
    return torch.exp(q - qmax), u1, u2, ct + (qmax + sh.sum()), sh


def triton_partition(e: Tensor, gs: Tensor, u: Tensor) -> Tensor:
    """Shifted Z_i by the fused kernel. Shape: e (M, B, B), gs (M, M, B, B) -> (B,)."""
    if PRECISION not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {PRECISION!r}")
    if not (available() or interpreted()):
        raise RuntimeError("the Triton kernel needs triton and a CUDA device")
    if not ((e.is_cuda or interpreted()) and e.dtype == torch.float32):
        raise ValueError("the Triton kernel takes CUDA float32 inputs")
    if e.shape[0] < 2:
        raise ValueError(f"the Triton kernel needs M >= 2 partners, got {e.shape[0]}")
    e1, e2 = e[0].contiguous(), e[1].contiguous()  # (I, B) each
    y = _FusedPairContract.apply(e1, e2, *scaled_terms(gs, u))  # (T, I)
    return contract_rows(y.T, e[2:])  # (I, B^(M-2)) -> (I,)
