"""Task contract: head, loss, metric and target adapter of one task kind.

A task kind is a (frozen) dataclass whose fields are its options, so the
registry can validate option names once (:func:`~.registry.get_task`).
No flwr imports in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from torch import Tensor, nn

from fedmuscle_flwr.config.registry import Registry
from fedmuscle_flwr.data.base import DatasetInfo, Modality, TargetKind

#: what each target kind looks like, for error messages
TARGET_SHAPES: dict[TargetKind, str] = {
    "class": "single-label class ids (N,)",
    "multilabel": "multi-hot labels (N, K)",
    "mask": "per-pixel class masks (N, H, W)",
}


class Meter(ABC):
    """Accumulates predictions over an evaluation pass.

    Implementations keep O(K²) or O(N·K) state on the CPU, whatever the device
    of the batches.
    """

    @abstractmethod
    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add one batch (detached tensors, any device).

        Parameters
        ----------
        logits : Tensor
            The task head's output for the batch. Shape: per task kind.
        targets : Tensor
            The batch's targets as returned by :meth:`Task.targets`.
        """

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """All metrics of the pass; includes the task's ``primary_metric``.

        Raises
        ------
        ValueError
            If no sample was added.
        """


class Task(ABC):
    """One task kind (classification, multi-label, segmentation, text, ...)."""

    # per-kind constants (class variables, so dataclass subclasses keep their
    # fields for options only)
    kind: ClassVar[str]
    description: ClassVar[str] = ""  # one line, shown by ``list_tasks()``
    primary_metric: ClassVar[str]
    target_kind: ClassVar[TargetKind]
    modality: ClassVar[Modality | None] = None  # required modality; None = any
    needs_spatial: ClassVar[bool] = False  # head consumes the spatial map
    #: ``tasks.soft.SOFT_LABELS`` entry for logit distillation; None = no (B, C) labels
    soft_labels: ClassVar[str | None] = None

    def check_data(self, info: DatasetInfo) -> None:
        """Raise ``ValueError`` naming the dataset when it does not fit this task.

        Parameters
        ----------
        info : DatasetInfo
            The labelled dataset this task would train on.

        Raises
        ------
        ValueError
            If the modality, target kind or label space does not fit.
        """
        problems: list[str] = []
        if self.modality is not None and info.modality != self.modality:
            problems.append(
                f"it needs {self.modality!r} inputs but the dataset is "
                f"{info.modality!r}"
            )
        if info.target_kind != self.target_kind:
            problems.append(
                f"it needs {TARGET_SHAPES[self.target_kind]} ({self.target_kind!r}) "
                f"but the dataset has {TARGET_SHAPES[info.target_kind]} "
                f"({info.target_kind!r})"
            )
        if info.num_classes < 1:
            problems.append(f"the dataset has num_classes={info.num_classes}")
        if problems:
            raise ValueError(
                f"task {self.kind!r} does not fit dataset {info.name!r}: "
                + "; ".join(problems)
            )

    @abstractmethod
    def build_head(self, in_dim: int, num_outputs: int) -> nn.Module:
        """Build the task head φ; ``in_dim`` = F (or C of the spatial map, or d)."""

    @abstractmethod
    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Scalar task loss, mean over the batch."""

    @abstractmethod
    def targets(self, y: np.ndarray) -> Tensor:
        """Raw targets -> a tensor the loss and meter accept."""

    @abstractmethod
    def meter(self, num_outputs: int) -> Meter:
        """Return a fresh metric accumulator."""


#: task kind -> task class, filled by ``@TASKS.register("kind")`` in this folder
#: (the decorator sets the class's ``kind``; style: config/registry.py)
TASKS: Registry[type[Task]] = Registry("task kind", "fedmuscle_flwr.tasks", "kind")
