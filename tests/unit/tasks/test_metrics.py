"""Tests of fedmuscle_flwr.tasks.metrics against hand-counted values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedmuscle_flwr.tasks import metrics


def test_confusion_matrix_counts_true_by_predicted() -> None:
    preds = torch.tensor([0, 1, 1, 2, 2, 2])
    truth = torch.tensor([0, 1, 2, 2, 2, 0])
    conf = metrics.confusion_matrix(preds, truth, 3)
    expected = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 2]])
    torch.testing.assert_close(conf, expected)


def test_mean_iou_by_hand_and_over_present_classes_only() -> None:
    # class 0: TP 1, FP 0, FN 1 -> 1/2; class 1: TP 1, FP 1, FN 0 -> 1/2;
    # class 2: TP 2, FP 1, FN 1 -> 2/4; class 3 absent everywhere: not averaged
    conf = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]])
    assert metrics.mean_iou(conf) == pytest.approx(0.5)
    assert metrics.mean_iou(torch.zeros(3, 3, dtype=torch.long)) == 0.0


def test_f1_scores_by_hand() -> None:
    # macro over classes {0, 1}: class 0 P=1 R=1/2 -> 2/3; class 1 P=1/2 R=1 -> 2/3
    assert metrics.macro_f1(np.array([0, 0, 1]), np.array([0, 1, 1])) == pytest.approx(
        2 / 3
    )
    truth = np.array([[1, 0], [1, 1]])
    pred = np.array([[1, 1], [0, 1]])
    # micro: TP 2, FP 1, FN 1 -> 2*2 / (2*2 + 1 + 1)
    assert metrics.micro_f1(truth, pred) == pytest.approx(4 / 6)
    assert metrics.micro_f1(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0


def test_mean_average_precision_skips_labels_without_positives() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4], [0.6, 0.3, 0.1]])
    truth = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    # label 0: ranked 0.9 (pos), 0.6, 0.2 -> AP 1; label 1: 0.8 (pos) first -> AP 1
    assert metrics.mean_average_precision(scores, truth) == pytest.approx(1.0)
    truth[2, 0] = 1  # label 0 now: pos at ranks 1 and 2 -> AP 1; still 1
    assert metrics.mean_average_precision(scores, truth) == pytest.approx(1.0)
    truth = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0]])  # pos ranked last of 3 -> 1/3
    assert metrics.mean_average_precision(scores, truth) == pytest.approx(1 / 3)
    assert metrics.mean_average_precision(scores, np.zeros((3, 3))) == 0.0
