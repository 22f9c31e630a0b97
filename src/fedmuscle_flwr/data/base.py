"""Data contracts: raw splits, dataset metadata, private data and the public set.

Data stays *raw* here (uint8 images, strings, integer targets); each client's
encoder turns raw batches into tensors with :meth:`Encoder.prepare`, so one public
batch can feed a CNN at 28 px, an EfficientNet at 64 px and a text model alike.
No flwr imports in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Modality = Literal["image", "text"]
TargetKind = Literal["class", "multilabel", "mask"]
#: a raw batch: images uint8 (N, H, W) or (N, H, W, 3); or a list of N strings
RawBatch = np.ndarray | list[str]


@dataclass(frozen=True)
class DatasetInfo:
    """What a labelled dataset is: modality, target kind and label space."""

    name: str
    modality: Modality
    target_kind: TargetKind
    num_classes: int
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Split:
    """One raw split.

    ``x``: images uint8 (N, H, W) / (N, H, W, 3), or a sequence of N strings.
    ``y``: (N,) int64 class ids | (N, K) float32 multi-hot | (N, H, W) int64 masks.
    """

    x: np.ndarray | Sequence[str]
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> Split:
        """Rows ``indices`` of this split (a copy)."""
        if isinstance(self.x, np.ndarray):
            return Split(self.x[indices], self.y[indices])
        return Split([self.x[int(i)] for i in indices], self.y[indices])


@dataclass(frozen=True)
class LabelledData:
    """A whole labelled dataset (before partitioning)."""

    info: DatasetInfo
    train: Split
    test: Split


@dataclass(frozen=True)
class PrivateData:
    """One client's share: its train and test splits."""

    info: DatasetInfo
    train: Split
    test: Split


class PublicData(ABC):
    """The unlabelled public set; every participant indexes the same samples."""

    name: str
    modalities: frozenset[Modality]

    @abstractmethod
    def __len__(self) -> int:
        """Number of public samples."""

    @abstractmethod
    def batch(self, indices: np.ndarray, modality: Modality) -> RawBatch:
        """Raw samples ``indices`` in ``modality`` (image, or the caption of a pair)."""
