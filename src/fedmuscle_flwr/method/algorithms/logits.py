"""What the logit-space baselines share (FedMD, FedDF, CoFED): no Flower.

They upload the task head's class scores (B, C) of the public batches instead of
representations, train the task parameters in phase 2, and pair only clients of
one label space (task kind, dataset, class count) whose task has a per-sample
label distribution: a task kind names its :class:`SoftLabels` in
``Task.soft_labels`` (``None``, e.g. per-pixel segmentation: no logit partners).
A client alone in its label space gets no phase 2, as in FedMD's setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.method.algorithms.base import (
    LOGITS,
    PARTNERS,
    Algorithm,
    Layout,
    Payloads,
    Uploads,
)
from fedmuscle_flwr.models.base import ModelInput
from fedmuscle_flwr.models.client_model import ClientModel
from fedmuscle_flwr.tasks.base import Task

#: logits -> probabilities (softmax over classes, or sigmoid per label)
Probs = Callable[[Tensor], Tensor]
#: (student logits (B, C), teacher probabilities (B, C)) -> scalar
SoftLoss = Callable[[Tensor, Tensor], Tensor]
#: probabilities (B, C) -> the task loss's targets
HardTargets = Callable[[Tensor], Tensor]


def _soft_ce(logits: Tensor, probs: Tensor) -> Tensor:
    return -(probs * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def _soft_bce(logits: Tensor, probs: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, probs)


def _argmax(probs: Tensor) -> Tensor:
    return probs.argmax(-1)


def _over_half(probs: Tensor) -> Tensor:
    return (probs > 0.5).to(probs.dtype)


@dataclass(frozen=True)
class SoftLabels:
    """Logits -> probabilities, the soft cross-entropy, and the hard vote."""

    probs: Probs
    soft_loss: SoftLoss
    hard_targets: HardTargets


SOFT_LABELS: dict[str, SoftLabels] = {
    # one label per sample: softmax over classes, vote = argmax (int64 class ids)
    "softmax": SoftLabels(lambda x: torch.softmax(x, -1), _soft_ce, _argmax),
    # independent labels: sigmoid per label, vote = p > 0.5 (float multi-hot)
    "sigmoid": SoftLabels(torch.sigmoid, _soft_bce, _over_half),
}


def soft_labels(task: Task) -> SoftLabels:
    """The task's soft labels; ``ValueError`` for tasks without (B, C) labels."""
    if task.soft_labels is None:
        raise ValueError(
            f"task {task.kind!r} has no per-sample label distribution: "
            "it cannot take part in logit distillation"
        )
    return SOFT_LABELS[task.soft_labels]


class LogitAlgorithm(Algorithm):
    """Upload class scores, train the task parameters, pair within label spaces."""

    space = "logits"

    def payloads(self, muscle: MuscleConfig) -> Payloads:
        """Class scores up; M partners' class scores (S, M, B, C) down."""
        return Payloads(upload=LOGITS, relay={PARTNERS: Layout(("S", "M", "B", "C"))})

    def readout(self, model: ClientModel, inputs: ModelInput) -> Tensor:
        """The task head's class scores (B, C); per-pixel maps are averaged."""
        logits = model(inputs).logits
        assert logits is not None
        # per-pixel (B, K, h, w) -> image-level (B, K); such tasks never get partners
        return logits.flatten(2).mean(-1) if logits.dim() > 2 else logits

    def align_parameters(self, model: ClientModel) -> Iterable[torch.nn.Parameter]:
        """The whole task model θ^n (distillation moves the head too)."""
        return model.task_parameters()

    def groups(self, up: Uploads) -> list[list[int]]:
        """Clients of one label space with a per-sample label distribution."""
        groups: dict[str, list[int]] = {}
        for node in up.pool:
            if up.soft_labels.get(node, ""):
                groups.setdefault(up.label_spaces.get(node, ""), []).append(node)
        return list(groups.values())
