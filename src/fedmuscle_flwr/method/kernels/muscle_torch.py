r"""Muscle log-partition in factorised form: GEMMs instead of B^(M+1) exponentials.

The logit of anchor row i and tuple j splits as ``sum_m a[m, i, j_m] + c[j]`` with
``c[j] = -gamma sum_{m<n} g[m, n, j_m, j_n]`` independent of i, so

    Z_i = sum_j exp(logit(i; j)) = sum_j W[j] prod_m E[m, i, j_m],
    W = exp(c - u),  E[m, i, k] = exp(a[m, i, k] - max_k a[m, i, k]).

W (B^M entries) is built once per batch (B^M exponentials, not B^(M+1)); Z is one
GEMM ``E_1 (B, B) @ W (B, B^(M-1))`` (B^(M+1) multiply-adds) followed by batched
contractions with E_2..E_M (B^M each). Autograd of that chain gives the exact
softmax marginals. Every factor is <= 1 (u bounds c from above), so nothing
overflows; the positive tuple bounds how far Z_i can underflow (:func:`headroom`),
and the caller promotes to float64 or falls back to the grid when that is unsafe.

Index letters: B batch (anchor rows i; tuple indices j, k), M partners (m, n),
L fixed leading tuple indices of a streamed chunk, T = B^(M-2) tail tuples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from fedmuscle_flwr.method.kernels.muscle_grid import contract_rows, log_weights


def contract(w: Tensor, e: Tensor) -> Tensor:
    """z_i = sum_j w[j] prod_m e[m, i, j_m]; w does not depend on i.

    Shape: w (B,) * K, e (K, I, B) -> (I,). The first axis is one GEMM of
    I * B^K multiply-adds; the others are contracted per row (B^K each).
    """
    if e.shape[0] == 0:
        return w.reshape(1).expand(e.shape[1])  # (I,): no free axis left
    b = e.shape[-1]
    return contract_rows(e[0] @ w.reshape(b, -1), e[1:])  # (I, B^(K-1)) -> (I,)


def pair_blocks(gs: Tensor) -> Tensor:
    """The blocks gs[m, n], m < n, gathered without a host sync. Shape: (P, B, B)."""
    pm, pn = torch.triu_indices(gs.shape[0], gs.shape[0], 1, device=gs.device)
    return gs[pm, pn]


def upper_bound(gs: Tensor) -> Tensor:
    """U >= max_j c[j]: the sum over pairs of each block's maximum. Shape: ()."""
    blocks = pair_blocks(gs)  # (P, B, B)
    return blocks.flatten(1).amax(1).sum() if len(blocks) else gs.new_zeros(())


def headroom(a: Tensor, gs: Tensor, u: Tensor) -> Tensor:
    """Bound on log(max-term scale / Z_i) per row: how far the shifted Z_i can sink.

    Shape: a (M, B, B), gs (M, M, B, B), u () -> (B,). Z_i holds the positive
    tuple (i, ..., i) and the row-wise argmax tuple, so it is at least the larger
    of their shifted terms; the bound is 0 when one of them attains every maximum.
    """
    num_m = a.shape[0]
    a_max, best = a.max(2)  # (M, B): max_k a[m, i, k] and its k
    pos = (torch.diagonal(a, dim1=1, dim2=2) - a_max).sum(0)  # (B,) <= 0
    if num_m < 2:
        return u - pos
    pm, pn = torch.triu_indices(num_m, num_m, 1, device=a.device)  # (P,) each
    blocks = gs[pm, pn]  # (P, B, B)
    pos = pos + torch.diagonal(blocks, dim1=1, dim2=2).sum(0)  # c at (i, ..., i)
    rows = torch.arange(len(blocks), device=a.device)[:, None]  # (P, 1)
    top = blocks[rows, best[pm], best[pn]].sum(0)  # (B,) c at the argmax tuple
    return u - torch.maximum(pos, top)  # (B,) >= 0


def safe_headroom(dtype: torch.dtype, b: int, num_m: int) -> float:
    """Largest headroom for which underflowed terms cost < ~1e-9 of Z in ``dtype``."""
    return -math.log(torch.finfo(dtype).tiny) - num_m * math.log(b) - 20.0


def prefixes(b: int, num_m: int, cap: int) -> Iterator[tuple[int, ...]]:
    """Leading tuple indices to fix so that each chunk of W holds <= cap entries."""
    fixed = next(n for n in range(num_m + 1) if b ** (num_m - n) <= cap)
    yield from itertools.product(range(b), repeat=fixed)


def chunk_partition(
    e: Tensor, gs: Tensor, u: Tensor, prefix: tuple[int, ...]
) -> Tensor:
    """Shifted partition sum over the tuples starting with ``prefix``.

    Shape: e (M, B, B), gs (M, M, B, B), u () -> (B,).
    """
    w = (log_weights(gs, prefix) - u).exp_()  # (B,) * (M - L), entries in (0, 1]
    z = contract(w, e[len(prefix) :])  # (B,)
    for m, j in enumerate(prefix):  # the fixed axes contribute E[m, i, j_m]
        z = z * e[m, :, j]
    return z


class _StreamedPartition(torch.autograd.Function):
    """Shifted Z_i summed chunk by chunk; backward recomputes each chunk."""

    @staticmethod
    def forward(ctx: Any, e: Tensor, gs: Tensor, u: Tensor, cap: int) -> Tensor:
        z = e.new_zeros(e.shape[1])  # (B,)
        for prefix in prefixes(e.shape[1], e.shape[0], cap):
            z += chunk_partition(e, gs, u, prefix)
        ctx.save_for_backward(e, gs, u)
        ctx.cap = cap
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor, None, None, None]:
        e, gs, u = ctx.saved_tensors
        grad_e = torch.zeros_like(e)  # (M, B, B)
        for prefix in prefixes(e.shape[1], e.shape[0], ctx.cap):
            with torch.enable_grad():
                leaf = e.detach().requires_grad_()
                part = chunk_partition(leaf, gs, u, prefix)
                (g_chunk,) = torch.autograd.grad(part, leaf, grad_z)
            grad_e += g_chunk
        return grad_e, None, None, None


def factorised_log_partition(
    a: Tensor, gs: Tensor, u: Tensor, max_tuples: int
) -> Tensor:
    """Log Z_i exactly, via W and GEMMs; streamed when B^M > ``max_tuples``.

    Shape: a (M, B, B) with gradients, gs (M, M, B, B) = -gamma g, u () -> (B,).
    """
    a_max = a.detach().amax(2, keepdim=True)  # (M, B, 1): exact shift, no gradient
    e = torch.exp(a - a_max)  # (M, B, B) in (0, 1]
    num_m, b = a.shape[0], a.shape[1]
    if b**num_m <= max_tuples:
        z = chunk_partition(e, gs, u, ())
    else:
        z = _StreamedPartition.apply(e, gs, u, max_tuples)
    return z.log() + a_max.sum(0).squeeze(1) + u  # (B,)
