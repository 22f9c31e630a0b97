"""Which kernel computes the Muscle log-partition (``method`` of ``muscle_loss``).

Thresholds come from the measurements in docs/performance.md (H100 and CPU).
Shape letters: B batch, M partners, D feature dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.method.kernels import muscle_triton
from fedmuscle_flwr.method.kernels.muscle_grid import grid_log_partition
from fedmuscle_flwr.method.kernels.muscle_torch import (
    factorised_log_partition,
    headroom,
    safe_headroom,
    upper_bound,
)

METHODS = ("auto", "factorised", "grid", "online", "triton")
ONLINE_MAX_CELLS = 2**25  # "auto" on CUDA: the online kernel up to B^(M+1) cells
SMALL_GRID = 2**16  # "auto" otherwise: the plain grid up to B^(M+1) cells (no sync)
FUSED_MIN_CELLS = ONLINE_MAX_CELLS  # "auto" on CUDA fp32: the fused kernel above this


def single_partner_loss(z: Tensor, zp: Tensor, tau: float) -> Tensor:
    """Mean Muscle loss at M = 1, which is InfoNCE: one GEMM and a cross-entropy.

    Shape: z (B, D), zp (1, B, D) -> (). With one partner there are no partner
    pairs, so gamma drops out and log Z_i is the log-sum-exp of row i of A.
    """
    logits = (z @ zp[0].T).div_(tau)  # (B, B)
    return F.cross_entropy(logits, torch.arange(z.shape[0], device=z.device))


def use_online(z: Tensor, zp: Tensor, method: str) -> bool:
    """Whether the two-launch online kernel computes the loss (see ``method``)."""
    if method != "auto":
        return method == "online"
    num_m, b = zp.shape[0], zp.shape[1]
    return (
        z.is_cuda
        and z.dtype == torch.float32
        and num_m >= 2
        and b ** (num_m + 1) <= ONLINE_MAX_CELLS
        and muscle_triton.available()
    )


def use_fused(z: Tensor, zp: Tensor, method: str) -> bool:
    """Whether the fused tensor-core kernel computes the loss (see ``method``)."""
    if method == "triton" and not (
        muscle_triton.available() or muscle_triton.interpreted()
    ):
        raise RuntimeError("method='triton' needs the triton package and a CUDA GPU")
    num_m, b = zp.shape[0], zp.shape[1]
    if method not in ("auto", "triton") or num_m < 2 or z.dtype != torch.float32:
        return False
    # Measured on an H100 and an H200 (docs/performance.md §3c): the tensor-core
    # kernel beats the torch GEMMs above the online kernel's range.
    big = b ** (num_m + 1) > FUSED_MIN_CELLS and muscle_triton.available()
    return (z.is_cuda or muscle_triton.interpreted()) and (method == "triton" or big)


def log_partition(
    a: Tensor, g: Tensor, gamma: float, max_tuples: int, method: str
) -> Tensor:
    """Log sum_j exp(logit(i; j)) per row, shape (B,), by the kernel ``method`` picks.

    The factorised kernels run in the input dtype when :func:`headroom` allows,
    else in float64, else the grid (exact at any dynamic range) takes over.
    ``"triton"`` reaches here only where the fused loss does not apply (not CUDA
    float32, or float32 underflowed): it is the factorised kernel then.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "triton" and not muscle_triton.available():
        raise RuntimeError("method='triton' needs the triton package and a CUDA GPU")
    (num_m, b), small = a.shape[:2], a.shape[1] ** (a.shape[0] + 1) <= SMALL_GRID
    if method == "grid" or (method == "auto" and small):
        return grid_log_partition(a, g, gamma, max_tuples)
    if num_m == 1:  # M = 1: InfoNCE, no tuples to factorise
        return torch.logsumexp(a[0], dim=1)  # (B, B) -> (B,)
    gs = -gamma * g  # (M, M, B, B)
    u = upper_bound(gs)  # () >= max_j c[j]
    room = float(headroom(a.detach(), gs, u).max())  # the one host sync of the loss
    for dtype in (a.dtype, torch.float64):
        if room <= safe_headroom(dtype, b, num_m):
            lse = factorised_log_partition(
                a.to(dtype), gs.to(dtype), u.to(dtype), max_tuples
            )
            return lse.to(a.dtype)
    return grid_log_partition(a, g, gamma, max_tuples)
