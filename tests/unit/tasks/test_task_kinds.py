"""Each task kind called directly: fedmuscle_flwr.tasks.adapters, .classification,
.multilabel, .segmentation and .text (heads, losses, targets, meters, errors).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedmuscle_flwr.tasks import adapters
from fedmuscle_flwr.tasks.classification import ClassificationTask
from fedmuscle_flwr.tasks.multilabel import MultiLabelTask
from fedmuscle_flwr.tasks.segmentation import SegmentationTask, resize_logits
from fedmuscle_flwr.tasks.text import TextClassificationTask


# ---------------------------------------------------------------- adapters.py
def test_target_adapters_convert_and_refuse_bad_shapes() -> None:
    t = adapters.long_targets(np.array([1, 2], dtype=np.uint8), 1, "k")
    assert t.dtype == torch.int64 and t.tolist() == [1, 2]
    with pytest.raises(ValueError, match="1-d integer targets"):
        adapters.long_targets(np.array([0.5]), 1, "k")
    with pytest.raises(ValueError, match=r"\(N, K\) multi-hot"):
        adapters.float_targets(np.array([1, 0]), "k")
    assert adapters.float_targets(np.eye(2), "k").dtype == torch.float32


def test_batch_and_class_id_checks() -> None:
    adapters.check_batch(torch.zeros(2, 3), torch.zeros(2), 3, "k")
    with pytest.raises(ValueError, match="do not have 4 classes"):
        adapters.check_batch(torch.zeros(2, 3), torch.zeros(2), 4, "k")
    with pytest.raises(ValueError, match="2 logits rows but 3 targets"):
        adapters.check_batch(torch.zeros(2, 3), torch.zeros(3), 3, "k")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        adapters.check_class_ids(torch.tensor([0, 3]), 3, "k")
    with pytest.raises(ValueError, match="label_smoothing"):
        adapters.check_fraction("k", "label_smoothing", 1.5)


# ---------------------------------------------------------------- classification.py / text.py
@pytest.mark.parametrize("cls", [ClassificationTask, TextClassificationTask])
def test_classification_loss_head_and_meter(cls: type[ClassificationTask]) -> None:
    task = cls(label_smoothing=0.1, dropout=0.2)
    head = task.build_head(8, 3)
    assert head(torch.randn(4, 8)).shape == (4, 3)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    targets = task.targets(np.array([0, 1, 1]))
    want = F.cross_entropy(logits, targets, label_smoothing=0.1)
    torch.testing.assert_close(task.loss(logits, targets), want)
    meter = task.meter(3)
    meter.update(logits, targets)
    assert meter.compute()["accuracy"] == pytest.approx(2 / 3)


def test_text_classification_differs_only_in_modality() -> None:
    assert TextClassificationTask.modality == "text"
    assert ClassificationTask.modality == "image"
    assert TextClassificationTask.kind != ClassificationTask.kind
    with pytest.raises(ValueError, match="dropout"):
        TextClassificationTask(dropout=1.0)


# ---------------------------------------------------------------- multilabel.py
def test_multilabel_bce_with_pos_weight_and_meter() -> None:
    task = MultiLabelTask(pos_weight=2.0, threshold=0.5)
    logits = torch.tensor([[3.0, -3.0], [-3.0, 3.0]])
    targets = task.targets(np.array([[1, 0], [1, 1]]))
    want = F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=torch.tensor(2.0)
    )
    torch.testing.assert_close(task.loss(logits, targets), want)
    meter = task.meter(2)
    meter.update(logits, targets)
    out = meter.compute()
    assert out["f1-micro"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    with pytest.raises(ValueError, match="pos_weight"):
        MultiLabelTask(pos_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="threshold"):
        MultiLabelTask(threshold=0.0)


# ---------------------------------------------------------------- segmentation.py
def test_segmentation_upsamples_ignores_and_scores() -> None:
    task = SegmentationTask(ignore_index=255, width=4)
    head = task.build_head(6, 3)
    assert head(torch.randn(2, 6, 4, 4)).shape == (2, 3, 4, 4)
    small = torch.randn(1, 3, 2, 2)
    assert resize_logits(small, (2, 2)) is small
    assert resize_logits(small, (4, 4)).shape == (1, 3, 4, 4)
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = 5.0  # predicts class 1 everywhere
    mask = task.targets(np.array([[[1, 1], [0, 255]]]))
    want = F.cross_entropy(logits, mask, ignore_index=255)
    torch.testing.assert_close(task.loss(logits, mask), want)
    all_ignored = task.targets(np.full((1, 2, 2), 255))
    assert float(task.loss(logits, all_ignored)) == 0.0
    meter = task.meter(3)
    meter.update(logits, mask)
    out = meter.compute()
    # 3 labelled pixels, 2 right; class 1: TP 2, FP 1 -> 2/3; class 0: 0/1
    assert out["pixel-accuracy"] == pytest.approx(2 / 3)
    assert out["mIoU"] == pytest.approx((2 / 3 + 0.0) / 2)
