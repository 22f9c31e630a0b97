"""The projection head of w^n: encoder features (B, F) -> shared space (B, d).

The paper does not specify it (docs/method.md §4, reviewers); the profile picks
``linear`` or ``mlp`` (ours), and experiments should report the choice.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

#: the MLP's hidden width is F, capped here to keep 1280-d backbones cheap
MAX_HIDDEN = 512


def build_projector(kind: Literal["linear", "mlp"], in_dim: int, dim: int) -> nn.Module:
    """Projection head (B, F) -> (B, d); the caller L2-normalises the output.

    ``linear``: Linear(F, d). ``mlp``: Linear(F, h)-ReLU-Linear(h, d) with
    h = min(F, 512) (SimCLR's head, hidden width capped).
    """
    if kind == "linear":
        return nn.Linear(in_dim, dim)
    if kind == "mlp":
        hidden = min(in_dim, MAX_HIDDEN)
        return nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim)
        )
    raise ValueError(f"model.projector must be 'linear' or 'mlp', got {kind!r}")
