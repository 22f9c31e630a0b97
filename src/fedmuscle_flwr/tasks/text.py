"""Text classification: the classification task on pooled text features."""

from __future__ import annotations

from dataclasses import dataclass

from fedmuscle_flwr.tasks.base import TASKS
from fedmuscle_flwr.tasks.classification import ClassificationTask


@TASKS.register("text-classification")
@dataclass(frozen=True)
class TextClassificationTask(ClassificationTask):
    """Text classification: (dropout +) linear head on pooled text features.

    Same head, loss and meter (``accuracy``, ``f1-macro``) as
    :class:`ClassificationTask`; only the required modality differs.

    Parameters
    ----------
    label_smoothing : float
        Cross-entropy label smoothing, in ``[0, 1)``.
    dropout : float
        Dropout before the linear head, in ``[0, 1)``; 0 = plain linear head.
    """

    description = "single-label text classification (cross-entropy; accuracy)"
    modality = "text"
