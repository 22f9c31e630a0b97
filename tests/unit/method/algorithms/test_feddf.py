"""FedDF's ensemble distillation against KL + teacher entropy."""

from __future__ import annotations

import pytest
import torch

from fedmuscle_flwr.method.algorithms.feddf import ensemble_kd
from fedmuscle_flwr.method.algorithms.logits import SOFT_LABELS
from tests.unit.method.algorithms._cases import raw


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_ensemble_kd_equals_t2_kl_plus_teacher_entropy(temperature: float) -> None:
    anchor, partners = raw(5, 4, seed=3), raw(2, 5, 4, seed=4)
    soft = SOFT_LABELS["softmax"]
    got = float(ensemble_kd(anchor, partners, temperature, soft.probs, soft.soft_loss))
    want = 0.0
    for i in range(5):
        p = torch.softmax(partners[:, i].mean(0) / temperature, 0)
        q = torch.softmax(anchor[i] / temperature, 0)
        kl = float((p * (p.log() - q.log())).sum())
        entropy = float(-(p * p.log()).sum())
        want += temperature**2 * (kl + entropy)
    assert abs(got - want / 5) < 1e-9


def test_ensemble_kd_sigmoid_is_soft_bce() -> None:
    anchor, partners = raw(3, 4, seed=5), raw(2, 3, 4, seed=6)
    soft = SOFT_LABELS["sigmoid"]
    t = 2.0
    got = float(ensemble_kd(anchor, partners, t, soft.probs, soft.soft_loss))
    p = torch.sigmoid(partners.mean(0) / t)
    q = torch.sigmoid(anchor / t)
    want = -(p * q.log() + (1 - p) * (1 - q).log()).mean() * t**2
    assert abs(got - float(want)) < 1e-9
