r"""Muscle log-partition on the explicit logit grid: the exact reference kernel.

Index letters of the shape comments: B batch (anchor rows i; partner rows j, k),
M partners (m, n), R anchor rows of one streamed chunk, L fixed leading tuple
indices. ``a[m, i, k] = z_i . z^m_k / tau`` and ``g[m, n, j, k] = z^m_j . z^n_k``
are broadcast-summed to the (B, B, ..., B) grid of ``logit(i; j)``; past
``max_tuples`` cells the log-sum-exp is streamed in chunks, recomputed in backward.
Cost O(B^(M+1) M) exp/adds: the fallback when the factorised kernel is unsafe.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor


def axes(num_m: int, b: int, fixed: int, *ms: int) -> list[int]:
    """Broadcast shape over the free tuple axes j_{fixed+1..M}: B at each free m."""
    return [b if m in ms else 1 for m in range(fixed, num_m)]  # (1 | B, ...)


def log_weights(gs: Tensor, prefix: tuple[int, ...] = ()) -> Tensor:
    """c[j] = sum_{m<n} gs[m, n, j_m, j_n] over the tuples starting with ``prefix``.

    Shape: gs (M, M, B, B), already scaled by -gamma -> (B,) * (M - L), contiguous.
    Pairs are added level by level (all m < n for one n), so only the last level
    touches full-size tensors.
    """
    num_m, b, fixed = gs.shape[0], gs.shape[2], len(prefix)
    idx: list[Any] = [*prefix] + [slice(None)] * (num_m - fixed)
    out = gs.new_zeros([1] * (num_m - fixed))
    for n in range(1, num_m):
        level = gs.new_zeros(())
        for m in range(n):  # block (), (B,) or (B, B): j_m, j_n fixed or free
            level = level + gs[m, n, idx[m], idx[n]].reshape(
                axes(num_m, b, fixed, m, n)
            )
        out = out + level  # (1 | B, ...) broadcast-grows to B^(n+1 - L) at most
    return out.expand([b] * (num_m - fixed)).contiguous()


def contract_rows(x: Tensor, e: Tensor) -> Tensor:
    """z_i = sum_k x[i, k_1..k_K] prod_m e[m, i, k_m]: batched over rows i.

    Shape: x (I, B^K), e (K, I, B) -> (I,).
    """
    rows, b = x.shape[0], e.shape[-1]
    for m in range(e.shape[0]):  # (I, 1, B) @ (I, B, B^(K-1-m)) -> (I, B^(K-1-m))
        x = torch.bmm(e[m].unsqueeze(1), x.reshape(rows, b, -1)).squeeze(1)
    return x.reshape(rows)


def log_alpha_grid(g: Tensor, gamma: float, prefix: tuple[int, ...]) -> Tensor:
    """Log alpha over the tuples whose leading indices are ``prefix``.

    Shape: g (M, M, B, B) -> broadcastable to (B, ..., B) with M - len(prefix) axes.
    """
    num_m, b, fixed = g.shape[0], g.shape[2], len(prefix)
    idx: list[Any] = [*prefix] + [slice(None)] * (num_m - fixed)
    log_alpha = g.new_zeros([1] * (num_m - fixed))
    for m, n in itertools.combinations(range(num_m), 2):
        block = g[m, n, idx[m], idx[n]]  # (), (B,) or (B, B): j_m, j_n free or fixed
        log_alpha = log_alpha - gamma * block.reshape(axes(num_m, b, fixed, m, n))
    return log_alpha


def cell_logits(
    log_alpha: Tensor, a: Tensor, rows: slice, prefix: tuple[int, ...]
) -> Tensor:
    """Logits (R, B, ..., B) of anchor ``rows`` over tuples starting with ``prefix``."""
    num_m, b, fixed = a.shape[0], a.shape[1], len(prefix)
    out = log_alpha.unsqueeze(0)  # (1, 1 | B, ...)
    for m in range(num_m):
        a_m = a[m, rows, prefix[m]] if m < fixed else a[m, rows]  # (R,) | (R, B)
        out = out + a_m.reshape(-1, *axes(num_m, b, fixed, m))  # (R, 1 | B, ...)
    return out


def plan(
    b: int, num_m: int, max_tuples: int
) -> Iterator[tuple[tuple[int, ...], list[slice]]]:
    """Chunks covering the (B, B^M) logit table once, each of <= max_tuples cells.

    Fixes the fewest leading tuple indices (j_1, ..., j_L) so that B^(M-L) cells
    fit, then groups R anchor rows per chunk so that R * B^(M-L) <= max_tuples.
    """
    fixed = next(n for n in range(num_m + 1) if b ** (num_m - n) <= max_tuples)
    step = max(1, min(b, max_tuples // b ** (num_m - fixed)))
    rows = [slice(s, min(s + step, b)) for s in range(0, b, step)]
    for prefix in itertools.product(range(b), repeat=fixed):
        yield prefix, rows


class _StreamedLogSumExp(torch.autograd.Function):
    """Per-row log-sum-exp of the Muscle logits, chunked; gradient into ``a`` only."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, g: Tensor, gamma: float, cap: int) -> Tensor:
        lse = a.new_full((a.shape[1],), -math.inf)  # (B,) running log-sum-exp
        for prefix, row_chunks in plan(a.shape[1], a.shape[0], cap):
            log_alpha = log_alpha_grid(g, gamma, prefix)
            for rows in row_chunks:
                cells = cell_logits(log_alpha, a, rows, prefix)  # (R, B, ..., B)
                cells = cells.reshape(cells.shape[0], -1)  # (R, B^(M-L))
                lse[rows] = torch.logaddexp(lse[rows], torch.logsumexp(cells, dim=1))
        ctx.save_for_backward(a, g, lse)
        ctx.gamma, ctx.cap = gamma, cap
        return lse

    @staticmethod
    def backward(ctx: Any, grad_lse: Tensor) -> tuple[Tensor, None, None, None]:
        a, g, lse = ctx.saved_tensors
        num_m, grad_a = a.shape[0], torch.zeros_like(a)  # (M, B, B)
        for prefix, row_chunks in plan(a.shape[1], num_m, ctx.cap):
            log_alpha, fixed = log_alpha_grid(g, ctx.gamma, prefix), len(prefix)
            for rows in row_chunks:
                cells = cell_logits(log_alpha, a, rows, prefix)  # (R, B, ..., B)
                lse_r = lse[rows].reshape(-1, *[1] * (num_m - fixed))  # (R, 1, ..., 1)
                mass = torch.exp(cells - lse_r)  # softmax mass of each tuple
                r = mass.shape[0]
                for m in range(num_m):  # p_m(i, k): mass of the tuples with j_m = k
                    if m < fixed:  # j_m = prefix[m] for the whole chunk
                        grad_a[m, rows, prefix[m]] += mass.reshape(r, -1).sum(1)
                    else:  # (R, B, ..., B) -> (R, B): sum the other free axes
                        others = [x for x in range(1, mass.dim()) if x != 1 + m - fixed]
                        grad_a[m, rows] += mass.sum(others) if others else mass
        return grad_a * grad_lse.reshape(1, -1, 1), None, None, None


def grid_log_partition(a: Tensor, g: Tensor, gamma: float, max_tuples: int) -> Tensor:
    """Log sum_j exp(logit(i; j)) per anchor row on the explicit grid.

    Shape: a (M, B, B), g (M, M, B, B) -> (B,). One shot (plain autograd) when
    the B^(M+1) cells fit in ``max_tuples``, else streamed (recomputed backward).
    """
    num_m, b = a.shape[0], a.shape[1]
    if b ** (num_m + 1) > max_tuples:
        return _StreamedLogSumExp.apply(a, g, gamma, max_tuples)
    cells = cell_logits(log_alpha_grid(g, gamma, ()), a, slice(None), ())
    return torch.logsumexp(cells.reshape(b, -1), dim=1)  # (B, B..B) -> (B,)
