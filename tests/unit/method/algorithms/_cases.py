"""Shared inputs of the algorithm loss tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TOL = 1e-10
CASES = [(1, 5, 4), (2, 4, 6), (3, 6, 5), (4, 3, 8)]  # (M, B, D)


def unit(*shape: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=gen, dtype=torch.float64), dim=-1)


def raw(*shape: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(*shape, generator=gen, dtype=torch.float64)
