# mypy: disable-error-code="no-untyped-def,misc,untyped-decorator,unused-ignore"
r"""Muscle loss in two Triton launches: an online log-sum-exp over the logit tiles.

For small and mid sizes on a GPU the loss is bound by launches, not arithmetic,
so this path does the whole loss in few kernels and no host sync. Each program
(anchor row i, split s) walks its share of the tails t in [B]^(M-2); for each it
forms the (B, B) tile of logits over (j_1, j_2) in registers,

    logit = a_1[i, j_1] + a_2[i, j_2] + q[j_1, j_2] + u1[t, j_1] + u2[t, j_2] + r[i, t]

(:func:`muscle_triton.tile_terms` with r[i, t] = ct[t] + sum_{m>=3} a_m[i, t_m]).
Pass 1 keeps a running max/sum per program (exact at any dynamic range: no
headroom check, no float64); pass 2 re-forms the tiles and sums the softmax mass
into the marginals p_m(i, k) of every partner. The B^(M+1) logits never reach
memory. The anchor gradient (p - onehot) @ partners / (tau B) is formed in the
forward (partners are constants), so backward is one multiply.
Shape letters: B batch (i, j, k), M partners, T = B^(M-2) tails, S splits, D dim.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fedmuscle_flwr.method.kernels.muscle_grid import axes
from fedmuscle_flwr.method.kernels.muscle_triton import available, tile_terms

try:  # optional dependency, as in muscle_triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

if triton is not None:  # pragma: no cover - compiled and tested on the GPU machine

    @triton.jit
    def _logits(a1, a2, q, u1_ptr, u2_ptr, rt_ptr, i, t, r, n, num_t, mask2):
        """Logit tile (J1, J2) of row i and tail t; -inf outside the valid cells."""
        valid = t < num_t
        u1 = tl.load(u1_ptr + t * n + r, mask=(r < n) & valid, other=0.0)  # (J1,)
        u2 = tl.load(u2_ptr + t * n + r, mask=(r < n) & valid, other=0.0)  # (J2,)
        rt = tl.load(rt_ptr + i * num_t + t, mask=valid, other=0.0)  # ()
        tile = q + (a1 + u1)[:, None] + (a2 + u2)[None, :] + rt
        return tl.where(mask2 & valid, tile, float("-inf"))

    @triton.jit
    def _row_setup(a_ptr, q_ptr, i, n, sa, BLOCK: tl.constexpr):
        """Lanes, mask and the row's a_1, a_2 (rows of stride sa) and q tile."""
        r = tl.arange(0, BLOCK)
        mask2 = (r < n)[:, None] & (r < n)[None, :]
        a1 = tl.load(a_ptr + i * sa + r, mask=r < n, other=0.0)  # (J1,) a[0, i]
        a2 = tl.load(a_ptr + i * sa + n + r, mask=r < n, other=0.0)  # (J2,) a[1, i]
        q = tl.load(q_ptr + r[:, None] * n + r[None, :], mask=mask2, other=0.0)
        return r, mask2, a1, a2, q

    @triton.jit
    def _lse_pass(a_ptr, q_ptr, u1_ptr, u2_ptr, rt_ptr, mx_ptr, sm_ptr,
                  n, sa, num_t, tails, BLOCK: tl.constexpr):  # fmt: skip
        i, s = tl.program_id(0), tl.program_id(1)
        r, mask2, a1, a2, q = _row_setup(a_ptr, q_ptr, i, n, sa, BLOCK)
        run_max = tl.full((BLOCK,), float("-inf"), tl.float32)  # per j1 lane
        run_sum = tl.zeros((BLOCK,), dtype=tl.float32)
        for k in range(0, tails):
            t = s * tails + k
            tile = _logits(a1, a2, q, u1_ptr, u2_ptr, rt_ptr, i, t, r, n, num_t, mask2)
            new = tl.maximum(run_max, tl.max(tile, axis=1))  # (J1,)
            safe = tl.where(new == float("-inf"), 0.0, new)
            run_sum = run_sum * tl.exp(run_max - safe)
            run_sum += tl.sum(tl.exp(tile - safe[:, None]), axis=1)
            run_max = new
        top = tl.max(run_max, axis=0)
        safe_top = tl.where(top == float("-inf"), 0.0, top)
        total = tl.sum(run_sum * tl.exp(run_max - safe_top), axis=0)
        tl.store(mx_ptr + i * tl.num_programs(1) + s, top)
        tl.store(sm_ptr + i * tl.num_programs(1) + s, total)

    @triton.jit
    def _row_lse(mx_ptr, sm_ptr, i, splits, SPLITS: tl.constexpr):
        """Log Z_i from the (max, scaled sum) pairs of the row's splits."""
        k = tl.arange(0, SPLITS)
        mx = tl.load(mx_ptr + i * splits + k, mask=k < splits, other=float("-inf"))
        sm = tl.load(sm_ptr + i * splits + k, mask=k < splits, other=0.0)
        top = tl.max(mx, axis=0)
        return top + tl.log(tl.sum(sm * tl.exp(mx - top), axis=0))

    @triton.jit
    def _mass_pass(a_ptr, q_ptr, u1_ptr, u2_ptr, rt_ptr, mx_ptr, sm_ptr, out_ptr,
                   g1_ptr, g2_ptr, mt_ptr, n, sa, smt, num_t, tails, step, splits,
                   BLOCK: tl.constexpr, SPLITS: tl.constexpr):  # fmt: skip
        i, s = tl.program_id(0), tl.program_id(1)
        r, mask2, a1, a2, q = _row_setup(a_ptr, q_ptr, i, n, sa, BLOCK)
        lse = _row_lse(mx_ptr, sm_ptr, i, splits, SPLITS)
        acc1 = tl.zeros((BLOCK,), dtype=tl.float32)  # p_1(i, j1) partial
        acc2 = tl.zeros((BLOCK,), dtype=tl.float32)  # p_2(i, j2) partial
        for k in range(0, tails):
            t = s * tails + k
            tile = _logits(a1, a2, q, u1_ptr, u2_ptr, rt_ptr, i, t, r, n, num_t, mask2)
            if t == i * step:  # the tail of the positive tuple (i, ..., i)
                diag = (r[:, None] == i) & (r[None, :] == i)
                pos = tl.sum(tl.sum(tl.where(diag, tile, 0.0), axis=1), axis=0)
                tl.store(out_ptr + i, lse - pos)  # the row's loss
            p = tl.exp(tile - lse)  # softmax mass, 0 outside the valid cells
            acc1 += tl.sum(p, axis=1)
            acc2 += tl.sum(p, axis=0)
            tl.store(mt_ptr + i * smt + t, tl.sum(tl.sum(p, axis=1), axis=0),
                     mask=t < num_t)  # fmt: skip
        out = (i * splits + s) * n + r
        tl.store(g1_ptr + out, acc1, mask=r < n)
        tl.store(g2_ptr + out, acc2, mask=r < n)


def row_terms(a: Tensor, ct: Tensor | None) -> Tensor:
    """r[i, t] = ct[t] + sum_{m >= 3} a[m, i, t_m]. Shape: a (M, B, B) -> (B, T).

    ``ct`` may be None when it is zero (M <= 3: the tail has no pairs).
    """
    num_m, b = a.shape[0], a.shape[1]
    out = None if ct is None else ct.reshape(1, *[b] * (num_m - 2))  # (1, B, .., B)
    for m in range(2, num_m):  # a[m]: (i, t_m) broadcast over the other tail axes
        term = a[m].reshape(b, *axes(num_m, b, 2, m))
        out = term if out is None else out + term
    if out is None:  # M = 2: one empty tail
        return a.new_zeros(b, 1)
    return out.expand(b, *out.shape[1:]).reshape(b, -1).contiguous()  # (B, T)


def online_loss_marginals(a: Tensor, gs: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row loss log Z_i - logit(i; i..i) and the marginals p_m(i, k), exact.

    Shape: a (M, B, B) with unit last stride and a[1] = a[0] + B (rows of a
    (B, M*B) matrix), gs (M, M, B, B) = -gamma g, M >= 2 -> (B,), (B, M, B).
    """
    num_m, b = a.shape[0], a.shape[1]
    q, u1, u2, ct = tile_terms(gs, with_tail_pairs=num_m > 3)  # (B, B), (T, B) x2
    rt = row_terms(a, ct)  # (B, T)
    num_t = u1.shape[0]
    splits = max(1, min(num_t, -(-512 // b)))  # about 512 programs in all
    tails, step = -(-num_t // splits), (num_t - 1) // (b - 1) if b > 1 else 0
    block, grid = max(16, 1 << (b - 1).bit_length()), (b, splits)
    opts = {"BLOCK": block, "num_warps": 4 if block <= 32 else 8}
    mx, sm = a.new_empty(b, splits), a.new_empty(b, splits)  # (B, S) partial max/sum
    sa = a.stride(1)  # row stride of a[m]
    args = (a, q, u1, u2, rt, mx, sm)
    _lse_pass[grid](*args, b, sa, num_t, tails, **opts)
    loss, marg = a.new_empty(b), a.new_empty(b, num_m, b)  # (B,), (B, M, B)
    g1, g2 = a.new_empty(b, splits, b), a.new_empty(b, splits, b)  # (B, S, B)
    mt = marg[:, 2] if num_m == 3 else a.new_empty(b, num_t)  # (B, T) tail masses
    _mass_pass[grid](
        *args, loss, g1, g2, mt, b, sa, mt.stride(0), num_t, tails, step, splits,
        SPLITS=max(2, 1 << (splits - 1).bit_length()), **opts,
    )  # fmt: skip
    torch.sum(g1, 1, out=marg[:, 0])
    torch.sum(g2, 1, out=marg[:, 1])
    if num_m > 3:  # p_m for m >= 3: sum the tail masses over the other tail axes
        tail = mt.reshape(b, *[b] * (num_m - 2))  # (B, B, ..., B): i, t_3, ..., t_M
        for m in range(1, num_m - 1):
            others = [x for x in range(1, num_m - 1) if x != m]
            torch.sum(tail, others, out=marg[:, m + 1])
    return loss, marg


class _OnlineMuscle(torch.autograd.Function):
    """Mean Muscle loss; the anchor gradient is formed in forward."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, zp: Tensor, tau: float, gamma: float) -> Tensor:
        num_m, b, d = zp.shape
        flat = zp.reshape(num_m * b, d)  # (M*B, D)
        at = (z @ flat.T).mul_(1.0 / tau)  # (B, M*B): at[i, m*B + k] = a[m, i, k]
        a = at.view(b, num_m, b).transpose(0, 1)  # (M, B, B) view
        gs = (flat @ flat.T).view(num_m, b, num_m, b).permute(0, 2, 1, 3)
        gs.mul_(-gamma)  # (M, M, B, B) view: c[j] = sum_{m<n} gs[m, n, j_m, j_n]
        loss, marg = online_loss_marginals(a, gs)  # (B,), (B, M, B)
        if ctx.needs_input_grad[0]:
            torch.diagonal(marg, dim1=0, dim2=2).sub_(1.0)  # p - onehot(positive)
            grad = (marg.view(b, -1) @ flat).mul_(1.0 / (tau * b))  # (B, D)
            ctx.save_for_backward(grad)
        return loss.mean()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None


def online_muscle_loss(z: Tensor, zp: Tensor, tau: float, gamma: float) -> Tensor:
    """Mean Muscle loss by the online kernel. Shape: z (B, D), zp (M, B, D) -> ()."""
    if not available():
        raise RuntimeError("method='online' needs the triton package and a CUDA GPU")
    if not (z.is_cuda and z.dtype == torch.float32 and zp.shape[0] >= 2):
        raise ValueError("the online kernel takes CUDA float32 inputs and M >= 2")
    return _OnlineMuscle.apply(z, zp.contiguous(), tau, gamma)
