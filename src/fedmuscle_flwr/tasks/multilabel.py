"""Multi-label image classification: linear head, BCE-with-logits, mAP."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedmuscle_flwr.tasks.adapters import check_batch, check_fraction, float_targets
from fedmuscle_flwr.tasks.base import TASKS, Meter, Task
from fedmuscle_flwr.tasks.metrics import macro_f1, mean_average_precision, micro_f1


class MultiLabelMeter(Meter):
    """mAP and thresholded micro/macro F1; keeps all (N, K) scores on the CPU.

    Parameters
    ----------
    num_classes : int
        K.
    threshold : float
        A label is predicted when its sigmoid probability is ``>= threshold``.
    kind : str
        The task kind, for error messages.
    """

    def __init__(
        self, num_classes: int, threshold: float = 0.5, kind: str = "multilabel"
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"task {kind!r}: num_classes must be >= 1")
        self.num_classes = num_classes
        self.logit_threshold = math.log(threshold / (1.0 - threshold))
        self.kind = kind
        self.logits: list[Tensor] = []
        self.truth: list[Tensor] = []

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add one batch.

        Parameters
        ----------
        logits : Tensor
            Shape: (B, K).
        targets : Tensor
            Multi-hot truth, > 0.5 = positive. Shape: (B, K).
        """
        check_batch(logits, targets, self.num_classes, self.kind)
        if targets.shape != logits.shape:
            raise ValueError(
                f"task {self.kind!r}: targets {tuple(targets.shape)} do not match "
                f"logits {tuple(logits.shape)}"
            )
        self.logits.append(logits.detach().to("cpu", torch.float32))
        self.truth.append(targets.detach().cpu() > 0.5)

    def compute(self) -> dict[str, float]:
        """``mAP``, ``f1-micro`` and ``f1-macro``.

        ``mAP`` averages over classes with a positive sample; ``f1-macro`` over
        classes with a positive sample or prediction (sklearn's
        ``zero_division=np.nan``). Degenerate cases give 0.0, never NaN.
        """
        if not self.logits:
            raise ValueError(f"task {self.kind!r}: no samples were added to the meter")
        logits = torch.cat(self.logits)  # (N, K)
        truth = torch.cat(self.truth)  # (N, K) bool
        pred = logits >= self.logit_threshold  # (N, K) bool
        y, p = truth.numpy(), pred.numpy()
        return {
            "mAP": mean_average_precision(logits.numpy(), y),
            "f1-micro": micro_f1(y, p),
            "f1-macro": macro_f1(y, p),
        }


@TASKS.register("multilabel")
@dataclass(frozen=True)
class MultiLabelTask(Task):
    """Multi-label image classification: linear head, one logit per label.

    Parameters
    ----------
    pos_weight : float or sequence of float or None
        BCE weight of positive examples: one for all labels or one per label
        (length K); None = unweighted.
    threshold : float
        Probability threshold for the F1 metrics, in ``(0, 1)``.
    """

    pos_weight: float | Sequence[float] | None = None
    threshold: float = 0.5

    description = "multi-label image classification (BCE-with-logits; mAP)"
    primary_metric = "mAP"
    target_kind = "multilabel"
    soft_labels = "sigmoid"
    modality = "image"

    def __post_init__(self) -> None:
        threshold = check_fraction(self.kind, "threshold", self.threshold)
        if threshold == 0.0:
            raise ValueError(f"task {self.kind!r}: option 'threshold' must be > 0")
        object.__setattr__(self, "threshold", threshold)
        weights = self.pos_weight
        if weights is None:
            return
        values = (weights,) if isinstance(weights, int | float) else tuple(weights)
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            for v in values
        ):
            raise ValueError(
                f"task {self.kind!r}: option 'pos_weight' must be a positive number "
                "or a non-empty list of them"
            )
        pos = float(values[0]) if isinstance(weights, int | float) else values
        object.__setattr__(self, "pos_weight", pos)

    def build_head(self, in_dim: int, num_outputs: int) -> nn.Module:
        """Linear map (B, F) -> (B, K) logits."""
        return nn.Linear(in_dim, num_outputs)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean binary cross-entropy with logits over all (sample, label) pairs.

        Parameters
        ----------
        logits : Tensor
            Shape: (B, K).
        targets : Tensor
            Multi-hot truth. Shape: (B, K), float.

        Returns
        -------
        Tensor
            Shape: (), differentiable w.r.t. ``logits``.
        """
        pos_weight = None
        if self.pos_weight is not None:
            pos_weight = torch.as_tensor(
                self.pos_weight, dtype=logits.dtype, device=logits.device
            )  # () or (K,), broadcast over (B, K)
            if pos_weight.ndim == 1 and pos_weight.shape[0] != logits.shape[-1]:
                raise ValueError(
                    f"task {self.kind!r}: pos_weight has {pos_weight.shape[0]} "
                    f"entries but there are {logits.shape[-1]} labels"
                )
        return F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), pos_weight=pos_weight
        )

    def targets(self, y: np.ndarray) -> Tensor:
        """(N, K) multi-hot -> (N, K) float32 tensor."""
        return float_targets(y, self.kind)

    def meter(self, num_outputs: int) -> Meter:
        """Return a fresh mAP / F1 meter over ``num_outputs`` labels."""
        return MultiLabelMeter(num_outputs, self.threshold, self.kind)
