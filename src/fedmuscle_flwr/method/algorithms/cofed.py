"""CoFED (Cao et al., IEEE TNNLS 2023): train on the partners' pseudo-labels.

Brute-force reference: tests/unit/method/algorithms/test_cofed.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    PARTNERS,
    AlignContext,
    StepPayload,
    check_pair_shapes,
)
from fedmuscle_flwr.method.algorithms.logits import (
    HardTargets,
    LogitAlgorithm,
    Probs,
    soft_labels,
)


def pseudo_label_loss(
    anchor: Tensor,
    partners: Tensor,
    probs: Probs,
    hard: HardTargets,
    task_loss: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """The task loss on the partners' vote.

    The vote is ``hard`` of the partners' mean probabilities (argmax for one
    label, > 0.5 per label for several).
    Shape: anchor (B, C), partners (M, B, C) -> ().
    """
    check_pair_shapes(anchor, partners)
    with torch.no_grad():
        targets = hard(probs(partners).mean(0))
    return task_loss(anchor, targets)


@ALGORITHMS.register("cofed")
class CoFED(LogitAlgorithm):
    """Public data pseudo-labelled by the vote of same-label-space partners."""

    description = (
        "CoFED (Cao et al., IEEE TNNLS 2023): train on public data pseudo-labelled "
        "by the vote of same-label-space partners (argmax / p > 0.5)"
    )
    wire = "same as fedmd"

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """:func:`pseudo_label_loss` with the task's vote and task loss."""
        soft = soft_labels(ctx.task)
        return pseudo_label_loss(
            anchor, payload[PARTNERS], soft.probs, soft.hard_targets, ctx.task.loss
        )
