"""Metric functions shared by the task meters (CPU, no state).

Average precision and F1 are scikit-learn's; the confusion matrix and mean IoU stay
here because segmentation meters stream millions of pixels through them.

Index letters: N samples (or pixels), K classes.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score
from torch import Tensor


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Count (true class, predicted class) pairs.

    Parameters
    ----------
    preds : Tensor
        Predicted class ids in ``[0, K)``. Shape: (N,), integer.
    targets : Tensor
        True class ids in ``[0, K)``. Shape: (N,), integer.
    num_classes : int
        K.

    Returns
    -------
    Tensor
        Rows are true classes, columns predicted ones. Shape: (K, K), int64.
    """
    flat = targets.long() * num_classes + preds.long()  # (N,) index into K*K
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)  # (K*K,) -> (K, K)


def mean_iou(conf: Tensor) -> float:
    """Mean IoU = TP / (TP + FP + FN) over classes present in targets or preds.

    Parameters
    ----------
    conf : Tensor
        Confusion matrix, rows true. Shape: (K, K).
    """
    tp = conf.diag().double()
    union = conf.sum(0).double() + conf.sum(1).double() - tp  # (K,)
    present = union > 0
    if not bool(present.any()):
        return 0.0
    return float((tp[present] / union[present]).mean())


def macro_f1(targets: np.ndarray, preds: np.ndarray) -> float:
    """Macro-F1 over the classes present in targets or predictions (scikit-learn).

    Works for class ids (N,) and for multi-hot rows (N, K); classes without a
    positive sample or prediction are left out of the mean (0.0 when none is left).
    """
    value = f1_score(targets, preds, average="macro", zero_division=np.nan)
    return float(value) if np.isfinite(value) else 0.0


def micro_f1(targets: np.ndarray, preds: np.ndarray) -> float:
    """Micro-F1 of multi-hot rows (N, K) (scikit-learn; 0.0 when undefined)."""
    return float(f1_score(targets, preds, average="micro", zero_division=0.0))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean AP over classes with at least one positive sample (scikit-learn).

    ``sklearn.metrics.average_precision_score(average="macro")`` restricted to
    those classes (it is undefined for the others).

    Parameters
    ----------
    scores : np.ndarray
        Per-class scores (logits or probabilities). Shape: (N, K).
    targets : np.ndarray
        Multi-hot truth; entries > 0.5 are positive. Shape: (N, K).

    Returns
    -------
    float
        The mean AP, or 0.0 when no class has a positive sample.
    """
    positive = targets > 0.5  # (N, K)
    present = positive.any(axis=0)  # (K,)
    if not present.any():
        return 0.0
    return float(
        average_precision_score(
            positive[:, present], scores[:, present], average="macro"
        )
    )
