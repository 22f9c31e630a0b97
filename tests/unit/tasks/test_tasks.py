"""Tests for fedmuscle_flwr.tasks: heads, losses, meters, data checks, registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from fedmuscle_flwr.data.base import DatasetInfo
from fedmuscle_flwr.tasks import TASKS, get_task, list_tasks

K = 5


def _features(kind: str, gen: torch.Generator, batch: int = 8) -> torch.Tensor:
    if get_task(kind).needs_spatial:
        return torch.randn(batch, 6, 4, 4, generator=gen)  # (B, C, h, w)
    return torch.randn(batch, 6, generator=gen)  # (B, F)


def _raw_targets(kind: str, rng: np.random.Generator, n: int = 8) -> np.ndarray:
    target_kind = get_task(kind).target_kind
    if target_kind == "class":
        return rng.integers(0, K, n)
    if target_kind == "multilabel":
        return (rng.random((n, K)) < 0.4).astype(np.float32)
    return rng.integers(0, K, (n, 8, 8))  # masks at 2x the feature resolution


# ---------------------------------------------------------------- heads & losses


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("classification", {}),
        ("classification", {"dropout": 0.3}),
        ("text-classification", {}),
        ("multilabel", {}),
        ("segmentation", {"width": 16}),
    ],
)
def test_head_output_shape(kind: str, options: dict[str, float]) -> None:
    # Prepare
    task = get_task(kind, options)
    x = _features(kind, torch.Generator().manual_seed(0))
    head = task.build_head(x.shape[1], K)
    # Execute
    out = head(x)
    # Assert
    expected = (8, K, 4, 4) if task.needs_spatial else (8, K)
    assert tuple(out.shape) == expected


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_loss_decreases_with_sgd_on_head(kind: str) -> None:
    # Prepare
    torch.manual_seed(0)
    task = get_task(kind)
    x = _features(kind, torch.Generator().manual_seed(1))
    y = task.targets(_raw_targets(kind, np.random.default_rng(2)))
    head = task.build_head(x.shape[1], K)
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    # Execute
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = task.loss(head(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Assert
    assert loss.ndim == 0
    assert losses[-1] < 0.8 * losses[0]


def test_targets_dtypes_and_shape_errors() -> None:
    rng = np.random.default_rng(0)
    for kind in sorted(TASKS):
        task = get_task(kind)
        y = task.targets(_raw_targets(kind, rng))
        want = torch.float32 if task.target_kind == "multilabel" else torch.int64
        assert y.dtype == want
    with pytest.raises(ValueError, match="classification"):
        get_task("classification").targets(np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="segmentation"):
        get_task("segmentation").targets(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="multilabel"):
        get_task("multilabel").targets(np.zeros(4, dtype=np.float32))


def test_label_smoothing_and_pos_weight_change_the_loss() -> None:
    logits = torch.randn(6, K, generator=torch.Generator().manual_seed(0))
    cls_y = torch.arange(6) % K
    smooth = get_task("classification", {"label_smoothing": 0.2}).loss(logits, cls_y)
    ref = F.cross_entropy(logits, cls_y, label_smoothing=0.2)
    assert torch.allclose(smooth, ref)
    ml_y = (logits > 0).float()
    plain = get_task("multilabel").loss(logits, ml_y)
    weighted = get_task("multilabel", {"pos_weight": [2.0] * K}).loss(logits, ml_y)
    scalar = get_task("multilabel", {"pos_weight": 2}).loss(logits, ml_y)
    assert float(weighted) > float(plain)
    assert torch.allclose(weighted, scalar)
    with pytest.raises(ValueError, match="pos_weight"):
        get_task("multilabel", {"pos_weight": [1.0, 2.0]}).loss(logits, ml_y)


def test_segmentation_loss_ignores_unlabelled_pixels() -> None:
    task = get_task("segmentation")
    logits = torch.randn(2, K, 4, 4, generator=torch.Generator().manual_seed(0))
    masks = torch.randint(0, K, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    masks[:, :2] = 255
    other = logits.clone()
    other[:, :, :2] += 10.0 * torch.randn(2, K, 2, 4)  # only ignored pixels change
    assert torch.allclose(task.loss(logits, masks), task.loss(other, masks))
    all_ignored = task.loss(logits, torch.full((2, 4, 4), 255))
    assert float(all_ignored) == 0.0


# ---------------------------------------------------------------- meters


def test_classification_meter_matches_sklearn_and_accumulates() -> None:
    # Prepare: class 4 never occurs, class 3 only in predictions
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, K, generator=gen)
    logits[:, 4] = -10.0
    targets = torch.randint(0, 3, (50,), generator=gen)
    preds = logits.argmax(1).numpy()
    task = get_task("classification")
    # Execute
    one, many = task.meter(K), task.meter(K)
    one.update(logits, targets)
    for lg, tg in zip(logits.split(13), targets.split(13), strict=True):
        many.update(lg, tg)
    got = one.compute()
    # Assert
    assert 3 in preds
    assert got["accuracy"] == pytest.approx(accuracy_score(targets.numpy(), preds))
    ref_f1 = f1_score(targets.numpy(), preds, average="macro")
    assert got["f1-macro"] == pytest.approx(ref_f1)
    assert many.compute() == pytest.approx(got)
    assert set(got) >= {task.primary_metric}


def test_multilabel_meter_matches_sklearn_and_accumulates() -> None:
    # Prepare: label 4 has no positives and is never predicted
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.integers(-3, 4, (60, K)).astype(np.float32) / 2)
    logits[:, 4] = -5.0
    targets = torch.from_numpy((rng.random((60, K)) < 0.4).astype(np.float32))
    targets[:, 4] = 0.0
    y, s = targets.numpy(), logits.numpy()
    pred = (s >= 0).astype(int)
    task = get_task("multilabel")
    # Execute
    one, many = task.meter(K), task.meter(K)
    one.update(logits, targets)
    for lg, tg in zip(logits.split(20), targets.split(20), strict=True):
        many.update(lg, tg)
    got = one.compute()
    # Assert
    assert got["mAP"] == pytest.approx(
        average_precision_score(y[:, :4], s[:, :4], average="macro")
    )
    assert got["f1-micro"] == pytest.approx(f1_score(y, pred, average="micro"))
    ref_macro = f1_score(y, pred, average="macro", zero_division=np.nan)
    assert got["f1-macro"] == pytest.approx(ref_macro)
    assert many.compute() == pytest.approx(got)


def test_segmentation_meter_hand_computed_miou() -> None:
    # Prepare: 3 classes; class 2 absent from targets and predictions
    #   target [[0, 0], [1, 255]]  pred [[0, 1], [1, 1]]
    #   class 0: TP 1, FP 0, FN 1 -> IoU 1/2;  class 1: TP 1, FP 1, FN 0 -> 1/2
    #   labelled pixels 3, correct 2
    targets = torch.tensor([[[0, 0], [1, 255]]])
    pred = torch.tensor([[[0, 1], [1, 1]]])
    logits = (
        F.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    )  # (1, 2, 2, 3) -> (1, 3, 2, 2)
    task = get_task("segmentation")
    # Execute
    one, many = task.meter(3), task.meter(3)
    one.update(torch.cat([logits, logits]), torch.cat([targets, targets]))
    many.update(logits, targets)
    many.update(logits, targets)
    got = one.compute()
    # Assert
    assert got == pytest.approx({"mIoU": 0.5, "pixel-accuracy": 2 / 3})
    assert many.compute() == pytest.approx(got)


def test_segmentation_meter_upsamples_small_logits() -> None:
    meter = get_task("segmentation").meter(2)
    logits = torch.zeros(1, 2, 1, 1)
    logits[0, 1] = 1.0  # every pixel predicts class 1
    meter.update(logits, torch.tensor([[[1, 1], [0, 1]]]))
    assert meter.compute() == pytest.approx(
        {"mIoU": (0 + 3 / 4) / 2, "pixel-accuracy": 0.75}
    )


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_meter_errors_and_finite_metrics(kind: str) -> None:
    task = get_task(kind)
    meter = task.meter(K)
    with pytest.raises(ValueError, match="no"):
        meter.compute()
    y = task.targets(_raw_targets(kind, np.random.default_rng(0)))
    spatial = (8, 8) if task.needs_spatial else ()
    with pytest.raises(ValueError, match="classes"):
        meter.update(torch.randn(8, K + 1, *spatial), y)
    if task.target_kind != "multilabel":
        with pytest.raises(ValueError, match="must lie in"):
            meter.update(torch.randn(8, K, *spatial), y + K)
    meter.update(torch.randn(8, K, *spatial), y)  # valid, after the rejects
    assert not any(math.isnan(v) for v in meter.compute().values())


# ---------------------------------------------------------------- check_data

IMAGES_CLASS = DatasetInfo("cifar-tiny", "image", "class", 10)
IMAGES_MULTI = DatasetInfo("coco-tags", "image", "multilabel", 80)
IMAGES_MASK = DatasetInfo("ade-tiny", "image", "mask", 150)
TEXT_CLASS = DatasetInfo("agnews", "text", "class", 4)


def test_check_data_accepts_fitting_data() -> None:
    get_task("classification").check_data(IMAGES_CLASS)
    get_task("multilabel").check_data(IMAGES_MULTI)
    get_task("segmentation").check_data(IMAGES_MASK)
    get_task("text-classification").check_data(TEXT_CLASS)


@pytest.mark.parametrize(
    ("kind", "info", "reason"),
    [
        ("multilabel", IMAGES_CLASS, "multi-hot"),
        ("segmentation", IMAGES_CLASS, "masks"),
        ("text-classification", IMAGES_CLASS, "'text' inputs"),
        ("classification", TEXT_CLASS, "'image' inputs"),
        ("classification", IMAGES_MULTI, "single-label"),
    ],
)
def test_check_data_rejects_mismatch(kind: str, info: DatasetInfo, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as err:
        get_task(kind).check_data(info)
    assert repr(kind) in str(err.value) and repr(info.name) in str(err.value)


# ---------------------------------------------------------------- registry


def test_registry_names_and_descriptions() -> None:
    names = {"classification", "multilabel", "segmentation", "text-classification"}
    assert set(TASKS) >= names  # a new task-kind file adds to these
    assert set(list_tasks()) == set(TASKS)
    assert all(d and "\n" not in d for d in list_tasks().values())
    assert all(get_task(name).kind == name for name in names)


def test_registry_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(ValueError, match="unknown task kind 'detection'") as err:
        get_task("detection")
    assert "classification" in str(err.value) and "segmentation" in str(err.value)


def test_registry_unknown_option_names_option_and_kind() -> None:
    with pytest.raises(ValueError, match=r"'ignore_index'.*'classification'"):
        get_task("classification", {"ignore_index": 0})
    seg = get_task("segmentation", {"ignore_index": 0})
    assert getattr(seg, "ignore_index", None) == 0


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("classification", {"label_smoothing": 1.5}),
        ("classification", {"dropout": "high"}),
        ("multilabel", {"pos_weight": -1.0}),
        ("multilabel", {"threshold": 0.0}),
        ("segmentation", {"width": 0}),
    ],
)
def test_registry_rejects_invalid_option_values(
    kind: str, options: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=repr(kind)):
        get_task(kind, options)
