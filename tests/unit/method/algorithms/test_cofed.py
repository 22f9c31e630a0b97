"""CoFED's pseudo-label loss: the partners' vote (slow reference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.method.algorithms.cofed import pseudo_label_loss
from fedmuscle_flwr.method.algorithms.logits import SOFT_LABELS
from tests.unit.method.algorithms._cases import TOL, raw


def test_pseudo_labels_are_the_partners_vote() -> None:
    anchor = raw(4, 3, seed=8).requires_grad_()
    partners = raw(3, 4, 3, seed=9)
    soft = SOFT_LABELS["softmax"]
    loss = pseudo_label_loss(
        anchor, partners, soft.probs, soft.hard_targets, F.cross_entropy
    )
    votes = [int(torch.softmax(partners[:, i], -1).mean(0).argmax()) for i in range(4)]
    want = (
        sum(
            float(-torch.log_softmax(anchor[i].detach(), 0)[votes[i]]) for i in range(4)
        )
        / 4
    )
    assert abs(float(loss.detach()) - want) < TOL
    loss.backward()
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0


def test_multilabel_vote_is_mean_probability_over_half() -> None:
    partners = torch.tensor(
        [[[4.0, -4.0, 0.1]], [[4.0, 4.0, -3.0]], [[-1.0, 4.0, 0.2]]]
    )
    soft = SOFT_LABELS["sigmoid"]
    seen: list[Tensor] = []

    def capture(logits: Tensor, targets: Tensor) -> Tensor:
        seen.append(targets)
        return F.binary_cross_entropy_with_logits(logits, targets)

    pseudo_label_loss(
        torch.zeros(1, 3), partners, soft.probs, soft.hard_targets, capture
    )
    assert seen[0].tolist() == [[1.0, 1.0, 0.0]]
