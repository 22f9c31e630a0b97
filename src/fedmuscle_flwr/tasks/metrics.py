"""Pure metric functions shared by the task meters (CPU, no state).

Index letters: N samples (or pixels), K classes.
"""

from __future__ import annotations

import numpy as np
import torch
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


def f1_per_class(tp: Tensor, fp: Tensor, fn: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class F1 = 2TP / (2TP + FP + FN) and which classes are defined.

    Parameters
    ----------
    tp, fp, fn : Tensor
        True positives, false positives, false negatives. Shape: (K,).

    Returns
    -------
    tuple[Tensor, Tensor]
        F1 per class, 0 where undefined, shape (K,) float64; and the mask of
        classes with 2TP + FP + FN > 0 (present in targets or predictions).
    """
    denom = (2 * tp + fp + fn).double()
    defined = denom > 0
    f1 = torch.where(defined, 2 * tp.double() / denom.clamp(min=1), 0.0)
    return f1, defined


def macro_f1(conf: Tensor) -> float:
    """Macro-F1 over classes present in targets or predictions.

    Matches ``sklearn.metrics.f1_score(average="macro")`` for single-label data.

    Parameters
    ----------
    conf : Tensor
        Confusion matrix, rows true. Shape: (K, K).
    """
    tp = conf.diag()
    f1, defined = f1_per_class(tp, conf.sum(0) - tp, conf.sum(1) - tp)
    return float(f1[defined].mean()) if bool(defined.any()) else 0.0


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


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Non-interpolated average precision of one class (sklearn's definition).

    AP = Σ_n (R_n − R_{n−1}) P_n over the distinct score thresholds, in
    decreasing order; tied scores form one threshold.

    Parameters
    ----------
    scores : np.ndarray
        Scores, higher = more likely positive. Shape: (N,).
    positive : np.ndarray
        Whether each sample is positive; at least one must be. Shape: (N,), bool.
    """
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order]
    tp = np.cumsum(pos, dtype=np.float64)  # (N,) positives ranked at or above n
    # last index of each run of tied scores = one threshold
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = tp[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean AP over classes with at least one positive sample.

    Equals ``sklearn.metrics.average_precision_score(targets, scores,
    average="macro")`` restricted to those classes.

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
    aps = [
        average_precision(scores[:, k], positive[:, k])
        for k in range(scores.shape[1])
        if positive[:, k].any()
    ]
    return float(np.mean(aps)) if aps else 0.0
