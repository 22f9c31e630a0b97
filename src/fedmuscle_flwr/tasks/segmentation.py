"""Semantic segmentation: light conv decoder, per-pixel cross-entropy, mIoU.

Index letters: B batch, C encoder channels, K classes, (h, w) feature-map size,
(H, W) mask size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedmuscle_flwr.tasks.adapters import check_batch, check_class_ids, long_targets
from fedmuscle_flwr.tasks.base import TASKS, Meter, Task
from fedmuscle_flwr.tasks.metrics import confusion_matrix, mean_iou


def resize_logits(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly upsample logits to the mask size when they differ.

    Parameters
    ----------
    logits : Tensor
        Shape: (B, K, h, w).
    size : tuple[int, int]
        (H, W).

    Returns
    -------
    Tensor
        Shape: (B, K, H, W).
    """
    if tuple(logits.shape[-2:]) == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SegmentationMeter(Meter):
    """mIoU and pixel accuracy from a (K, K) confusion matrix over pixels.

    Parameters
    ----------
    num_classes : int
        K.
    ignore_index : int
        Mask value of pixels left out of the metrics.
    kind : str
        The task kind, for error messages.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, kind: str = "segmentation"
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"task {kind!r}: num_classes must be >= 1")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.kind = kind
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add one batch; logits are upsampled to the mask size if smaller.

        Parameters
        ----------
        logits : Tensor
            Shape: (B, K, h, w).
        targets : Tensor
            Class-id masks, ``ignore_index`` = unlabelled. Shape: (B, H, W).
        """
        check_batch(logits, targets, self.num_classes, self.kind)
        if logits.ndim != 4 or targets.ndim != 3:
            raise ValueError(
                f"task {self.kind!r}: needs (B, K, h, w) logits and (B, H, W) masks, "
                f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
            )
        logits = resize_logits(logits.detach(), (targets.shape[1], targets.shape[2]))
        preds = logits.argmax(dim=1).cpu().flatten()  # (B, H, W) -> (B*H*W,)
        truth = targets.detach().cpu().long().flatten()  # (B*H*W,)
        keep = truth != self.ignore_index
        preds, truth = preds[keep], truth[keep]
        check_class_ids(truth, self.num_classes, self.kind)
        self.conf += confusion_matrix(preds, truth, self.num_classes)

    def compute(self) -> dict[str, float]:
        """``mIoU`` (over classes in targets or predictions), ``pixel-accuracy``."""
        total = int(self.conf.sum())
        if total == 0:
            raise ValueError(
                f"task {self.kind!r}: no labelled pixels were added to the meter"
            )
        return {
            "mIoU": mean_iou(self.conf),
            "pixel-accuracy": float(self.conf.diag().sum()) / total,
        }


@TASKS.register("segmentation")
@dataclass(frozen=True)
class SegmentationTask(Task):
    """Semantic segmentation head on the encoder's spatial map.

    Head: 3×3 conv (no bias) → BatchNorm → ReLU → 1×1 conv to K classes, at
    feature resolution; the client model upsamples logits to the input size.

    Parameters
    ----------
    ignore_index : int
        Mask value of unlabelled pixels (no loss, no metric).
    width : int
        Channels of the hidden 3×3 conv layer.
    """

    ignore_index: int = 255
    width: int = 64

    description = "semantic segmentation (per-pixel cross-entropy; mIoU)"
    primary_metric = "mIoU"
    target_kind = "mask"
    modality = "image"
    needs_spatial = True

    def __post_init__(self) -> None:
        for name, low in (("ignore_index", None), ("width", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"task {self.kind!r}: option {name!r} must be an int")
            if low is not None and value < low:
                raise ValueError(
                    f"task {self.kind!r}: option {name!r} must be >= {low}"
                )

    def build_head(self, in_dim: int, num_outputs: int) -> nn.Module:
        """Build the decoder (B, C, h, w) -> (B, K, h, w) logits; ``in_dim`` = C."""
        return nn.Sequential(
            nn.Conv2d(in_dim, self.width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(self.width),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.width, num_outputs, kernel_size=1),
        )

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy over labelled pixels (logits upsampled if smaller).

        Parameters
        ----------
        logits : Tensor
            Shape: (B, K, h, w).
        targets : Tensor
            Class-id masks. Shape: (B, H, W), int64.

        Returns
        -------
        Tensor
            Shape: (), differentiable w.r.t. ``logits``; 0 when no pixel is
            labelled.
        """
        logits = resize_logits(logits, (targets.shape[-2], targets.shape[-1]))
        if not bool((targets != self.ignore_index).any()):
            return logits.sum() * 0.0  # keeps the graph; CE would be NaN
        return F.cross_entropy(logits, targets, ignore_index=self.ignore_index)

    def targets(self, y: np.ndarray) -> Tensor:
        """(N, H, W) integer masks -> (N, H, W) int64 tensor."""
        return long_targets(y, 3, self.kind)

    def meter(self, num_outputs: int) -> Meter:
        """Return a fresh mIoU / pixel-accuracy meter over ``num_outputs`` classes."""
        return SegmentationMeter(num_outputs, self.ignore_index, self.kind)
