"""Soft labels of a task's (B, C) logits, for the logit-distillation baselines.

A task kind names its :class:`SoftLabels` in ``Task.soft_labels`` (``None``: its
logits are not a per-sample label distribution, e.g. per-pixel segmentation, and
the task takes no part in logit distillation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.baseline_losses import HardTargets, Probs, SoftLoss


def _soft_ce(logits: Tensor, probs: Tensor) -> Tensor:
    return -(probs * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def _soft_bce(logits: Tensor, probs: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, probs)


def _argmax(probs: Tensor) -> Tensor:
    return probs.argmax(-1)


def _over_half(probs: Tensor) -> Tensor:
    return (probs > 0.5).to(probs.dtype)


@dataclass(frozen=True)
class SoftLabels:
    """Logits -> probabilities, the soft cross-entropy, and the hard vote."""

    probs: Probs
    soft_loss: SoftLoss
    hard_targets: HardTargets


SOFT_LABELS: dict[str, SoftLabels] = {
    # one label per sample: softmax over classes, vote = argmax (int64 class ids)
    "softmax": SoftLabels(lambda x: torch.softmax(x, -1), _soft_ce, _argmax),
    # independent labels: sigmoid per label, vote = p > 0.5 (float multi-hot)
    "sigmoid": SoftLabels(torch.sigmoid, _soft_bce, _over_half),
}
