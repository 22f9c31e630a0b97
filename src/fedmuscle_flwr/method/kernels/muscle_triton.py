# mypy: disable-error-code="no-untyped-def,misc,untyped-decorator,unused-ignore"
r"""Fused Triton kernel of the factorised Muscle partition (CUDA, float32).

With ``E[m, i, k]`` and ``c[j]`` as in :mod:`muscle_torch`, split each tuple
j = (j_1, j_2, t) into its first two indices and a tail t in [B]^(M-2), and

    c[j] - u = q[j_1, j_2] + u1[t, j_1] + u2[t, j_2] + ct[t]

(q = gs[0, 1]; u1, u2 the pair terms of j_1, j_2 with the tail; ct the tail's own
pairs, minus the shift u). One program owns TAILS tails; for each it forms the
(B, B) tile W_t = exp(...) in registers, X_t = E_1 @ W_t and
``Y[t, i] = sum_{j_2} X_t[i, j_2] E_2[i, j_2]``. Neither W (B^M) nor the logits
(B^(M+1)) ever reach memory; Y has B^(M-1) entries and the tail axes are then
contracted in torch. Backward recomputes W_t and accumulates per-program partial
gradients of E_1 and E_2, summed in torch (deterministic, no atomics).
Import is optional: :func:`available` says whether triton and a GPU are there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fedmuscle_flwr.method.kernels.muscle_grid import axes, contract_rows, log_weights

try:  # optional dependency: CPU installs and CI have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None


def available() -> bool:
    """Whether the fused kernel can run here (triton importable, CUDA present)."""
    return triton is not None and torch.cuda.is_available()


if triton is not None:  # pragma: no cover - compiled and tested on the GPU machine

    @triton.jit
    def _tile(q, u1_ptr, u2_ptr, ct_ptr, t, r, n, num_t, tmask, mask2):
        """W_t (BLOCK, BLOCK) = exp(q + u1[t, :, None] + u2[t, None, :] + ct[t])."""
        u1 = tl.load(u1_ptr + t * n + r, mask=tmask, other=0.0)  # (J1,)
        u2 = tl.load(u2_ptr + t * n + r, mask=tmask, other=0.0)  # (J2,)
        ct = tl.load(ct_ptr + t, mask=t < num_t, other=0.0)  # ()
        w = tl.exp(q + u1[:, None] + u2[None, :] + ct)  # (J1, J2)
        return tl.where(mask2 & tmask[:, None], w, 0.0)

    @triton.jit
    def _fwd(
        e1_ptr,
        e2_ptr,
        q_ptr,
        u1_ptr,
        u2_ptr,
        ct_ptr,
        y_ptr,
        n,
        num_t,
        TAILS: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        r = tl.arange(0, BLOCK)  # rows i, or j_1 / j_2
        mask = r < n
        mask2 = mask[:, None] & mask[None, :]
        off = r[:, None] * n + r[None, :]
        e1 = tl.load(e1_ptr + off, mask=mask2, other=0.0)  # (I, J1)
        e2 = tl.load(e2_ptr + off, mask=mask2, other=0.0)  # (I, J2)
        q = tl.load(q_ptr + off, mask=mask2, other=0.0)  # (J1, J2)
        for s in range(TAILS):
            t = tl.program_id(0) * TAILS + s
            tmask = mask & (t < num_t)
            w = _tile(
                q, u1_ptr, u2_ptr, ct_ptr, t, r, n, num_t, tmask, mask2
            )  # (J1, J2)
            x = tl.dot(e1, w, input_precision="ieee")  # (I, J2)
            tl.store(y_ptr + t * n + r, tl.sum(x * e2, axis=1), mask=tmask)

    @triton.jit
    def _bwd(
        e1_ptr,
        e2_ptr,
        q_ptr,
        u1_ptr,
        u2_ptr,
        ct_ptr,
        gy_ptr,
        g1_ptr,
        g2_ptr,
        n,
        num_t,
        TAILS: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        r = tl.arange(0, BLOCK)
        mask = r < n
        mask2 = mask[:, None] & mask[None, :]
        off = r[:, None] * n + r[None, :]
        e1 = tl.load(e1_ptr + off, mask=mask2, other=0.0)  # (I, J1)
        e2 = tl.load(e2_ptr + off, mask=mask2, other=0.0)  # (I, J2)
        q = tl.load(q_ptr + off, mask=mask2, other=0.0)  # (J1, J2)
        acc1 = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)  # dZ/dE_1 (I, J1)
        acc2 = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)  # dZ/dE_2 (I, J2)
        for s in range(TAILS):
            t = tl.program_id(0) * TAILS + s
            tmask = mask & (t < num_t)
            w = _tile(
                q, u1_ptr, u2_ptr, ct_ptr, t, r, n, num_t, tmask, mask2
            )  # (J1, J2)
            gy = tl.load(gy_ptr + t * n + r, mask=tmask, other=0.0)  # (I,)
            x = tl.dot(e1, w, input_precision="ieee")  # (I, J2)
            acc2 += gy[:, None] * x
            h = gy[:, None] * e2  # (I, J2)
            acc1 += tl.dot(h, tl.trans(w), input_precision="ieee")  # (I, J1)
        out = tl.program_id(0) * n * n + off
        tl.store(g1_ptr + out, acc1, mask=mask2)
        tl.store(g2_ptr + out, acc2, mask=mask2)


def _launch(num_t: int, b: int) -> tuple[int, int, int]:
    """(tails per program, programs, block) for T tails and batch B."""
    tails = 1 if num_t <= 1024 else 16 if num_t <= 16384 else 64
    block = max(16, 1 << (b - 1).bit_length())  # tl.dot needs >= 16
    return tails, -(-num_t // tails), block


class _FusedPairContract(torch.autograd.Function):
    """Y (T, B) from E_1, E_2 (B, B) and the tile terms; gradients into E_1, E_2."""

    @staticmethod
    def forward(ctx: Any, e1: Tensor, e2: Tensor, *terms: Tensor) -> Tensor:
        q, u1, u2, ct = terms  # (B, B), (T, B), (T, B), (T,)
        num_t, b = u1.shape
        tails, progs, block = _launch(num_t, b)
        warps = 4 if block <= 32 else 8  # (64, 64) tiles spill with 4 warps
        y = e1.new_empty(num_t, b)  # (T, I)
        _fwd[(progs,)](
            e1,
            e2,
            q,
            u1,
            u2,
            ct,
            y,
            b,
            num_t,
            TAILS=tails,
            BLOCK=block,
            num_warps=warps,
        )
        ctx.save_for_backward(e1, e2, q, u1, u2, ct)
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        e1, e2, q, u1, u2, ct = ctx.saved_tensors
        num_t, b = u1.shape
        tails, progs, block = _launch(num_t, b)
        warps = 4 if block <= 32 else 8  # (64, 64) tiles spill with 4 warps
        g1 = e1.new_empty(progs, b, b)  # (programs, I, J1) partial sums
        g2 = e1.new_empty(progs, b, b)  # (programs, I, J2)
        gy = grad_y.contiguous()
        _bwd[(progs,)](
            e1, e2, q, u1, u2, ct, gy, g1, g2, b, num_t,
            TAILS=tails, BLOCK=block, num_warps=warps,
        )  # fmt: skip
        return g1.sum(0), g2.sum(0), None, None, None, None


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


def triton_partition(e: Tensor, gs: Tensor, u: Tensor) -> Tensor:
    """Shifted Z_i by the fused kernel. Shape: e (M, B, B), gs (M, M, B, B) -> (B,)."""
    if not available():
        raise RuntimeError("the Triton kernel needs triton and a CUDA device")
    if not (e.is_cuda and e.dtype == torch.float32 and e.shape[0] >= 2):
        raise ValueError("the Triton kernel takes CUDA float32 inputs and M >= 2")
    q, u1, u2, ct = tile_terms(gs, u)
    assert ct is not None
    e1, e2 = e[0].contiguous(), e[1].contiguous()  # (I, B) each
    y = _FusedPairContract.apply(e1, e2, q, u1, u2, ct)  # (T, I)
    return contract_rows(y.T, e[2:])  # (I, B^(M-2)) -> (I,)
