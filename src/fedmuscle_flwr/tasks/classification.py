"""Single-label image classification: linear head, cross-entropy, accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedmuscle_flwr.data.base import Modality
from fedmuscle_flwr.tasks.adapters import (
    check_batch,
    check_class_ids,
    check_fraction,
    long_targets,
)
from fedmuscle_flwr.tasks.base import TASKS, Meter, Task
from fedmuscle_flwr.tasks.metrics import macro_f1


class ClassificationMeter(Meter):
    """Accuracy and macro-F1 (scikit-learn) of the predicted class ids.

    Parameters
    ----------
    num_classes : int
        K.
    kind : str
        The task kind, for error messages.
    """

    def __init__(self, num_classes: int, kind: str = "classification") -> None:
        if num_classes < 1:
            raise ValueError(f"task {kind!r}: num_classes must be >= 1")
        self.num_classes = num_classes
        self.kind = kind
        self.preds: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add one batch.

        Parameters
        ----------
        logits : Tensor
            Shape: (B, K).
        targets : Tensor
            Class ids. Shape: (B,), integer.
        """
        check_batch(logits, targets, self.num_classes, self.kind)
        preds = logits.detach().argmax(dim=1).cpu()  # (B,)
        targets = targets.detach().cpu().long()
        check_class_ids(targets, self.num_classes, self.kind)
        self.preds.append(preds)
        self.targets.append(targets)

    def compute(self) -> dict[str, float]:
        """``accuracy`` and ``f1-macro`` (over classes seen in targets or preds)."""
        if not self.preds or not sum(len(p) for p in self.preds):
            raise ValueError(f"task {self.kind!r}: no samples were added to the meter")
        preds, targets = torch.cat(self.preds).numpy(), torch.cat(self.targets).numpy()
        return {
            "accuracy": float(np.mean(preds == targets)),
            "f1-macro": macro_f1(targets, preds),
        }


@TASKS.register("classification")
@dataclass(frozen=True)
class ClassificationTask(Task):
    """Image classification: (dropout +) linear head on pooled features.

    Parameters
    ----------
    label_smoothing : float
        Cross-entropy label smoothing, in ``[0, 1)``.
    dropout : float
        Dropout before the linear head, in ``[0, 1)``; 0 = plain linear head.
    """

    label_smoothing: float = 0.0
    dropout: float = 0.0

    description = "single-label image classification (cross-entropy; accuracy)"
    primary_metric = "accuracy"
    target_kind = "class"
    soft_labels = "softmax"
    modality: ClassVar[Modality | None] = "image"  # text.py overrides it

    def __post_init__(self) -> None:
        for name in ("label_smoothing", "dropout"):
            value = check_fraction(self.kind, name, getattr(self, name))
            object.__setattr__(self, name, value)

    def build_head(self, in_dim: int, num_outputs: int) -> nn.Module:
        """Linear map (B, F) -> (B, K) logits, with dropout before it if set."""
        linear = nn.Linear(in_dim, num_outputs)
        if self.dropout == 0.0:
            return linear
        return nn.Sequential(nn.Dropout(self.dropout), linear)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy.

        Parameters
        ----------
        logits : Tensor
            Shape: (B, K).
        targets : Tensor
            Class ids. Shape: (B,), int64.

        Returns
        -------
        Tensor
            Shape: (), differentiable w.r.t. ``logits``.
        """
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def targets(self, y: np.ndarray) -> Tensor:
        """(N,) integer class ids -> (N,) int64 tensor."""
        return long_targets(y, 1, self.kind)

    def meter(self, num_outputs: int) -> Meter:
        """Return a fresh accuracy / macro-F1 meter over ``num_outputs`` classes."""
        return ClassificationMeter(num_outputs, self.kind)
