"""Data contracts: raw splits, dataset metadata, private data and the public set.

Data stays *raw* here (uint8 images, strings, integer targets); each client's
encoder turns raw batches into tensors with :meth:`Encoder.prepare`, so one public
batch can feed a CNN at 28 px, an EfficientNet at 64 px and a text model alike.
A split's inputs are either held in memory (an array, a list of strings) or
:class:`LazySamples` decoded on demand (image files, an on-disk ``datasets``
table, a plugin ``Dataset``): :meth:`Split.take` cuts either without decoding,
:meth:`Split.batch` decodes the rows asked for.
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
    """What a labelled dataset is: modality, target kind and label space.

    ``label_key`` names the label space for pairing clients (logit-space
    baselines share logits only within one label space): a packaged set leaves
    it empty and is identified by its name; data read from files or a plugin
    gets ``classes:<hash of the ordered class names>``, so two clients whose
    folders hold the same classes share a label space.
    """

    name: str
    modality: Modality
    target_kind: TargetKind
    num_classes: int
    class_names: tuple[str, ...] = ()
    label_key: str = ""


class LazySamples(ABC):
    """N samples of one modality, decoded only when a batch is asked for.

    Subsets are views (an index array into the source), so cutting a
    partition of 50,000 image files decodes nothing; :meth:`decode` returns a
    raw batch (uint8 images of one size and mode, or strings).
    """

    modality: Modality
    #: where the samples come from (a folder, a file, a plugin), for messages
    origin: str

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def subset(self, indices: np.ndarray) -> LazySamples:
        """Samples ``indices`` (in that order), still undecoded."""

    @abstractmethod
    def decode(self, indices: np.ndarray) -> RawBatch:
        """Raw samples ``indices``: uint8 (n, H, W[, 3]) or n strings."""


Inputs = np.ndarray | Sequence[str] | LazySamples


@dataclass(frozen=True)
class Split:
    """One raw split.

    ``x``: images uint8 (N, H, W) / (N, H, W, 3), a sequence of N strings, or
    :class:`LazySamples` of either.
    ``y``: (N,) int64 class ids | (N, K) float32 multi-hot | (N, H, W) int64 masks.
    """

    x: Inputs
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> Split:
        """Rows ``indices`` of this split (a copy; lazy inputs stay undecoded)."""
        if isinstance(self.x, np.ndarray):
            return Split(self.x[indices], self.y[indices])
        if isinstance(self.x, LazySamples):
            return Split(self.x.subset(np.asarray(indices)), self.y[indices])
        return Split([self.x[int(i)] for i in indices], self.y[indices])

    def batch(self, indices: np.ndarray) -> RawBatch:
        """The raw inputs of rows ``indices``, decoded (what a model prepares)."""
        if isinstance(self.x, np.ndarray):
            return self.x[indices]
        if isinstance(self.x, LazySamples):
            return self.x.decode(np.asarray(indices))
        return [self.x[int(i)] for i in indices]

    @property
    def lazy(self) -> bool:
        """Whether the inputs are decoded on demand."""
        return isinstance(self.x, LazySamples)


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
    """The unlabelled public set; every participant indexes the same samples.

    ``origin`` says where the samples came from (the packaged set's source, or
    the folder/file of a set read from files): the fingerprint check names it.
    """

    name: str
    modalities: frozenset[Modality]
    origin: str = ""

    @abstractmethod
    def __len__(self) -> int:
        """Number of public samples."""

    @abstractmethod
    def batch(self, indices: np.ndarray, modality: Modality) -> RawBatch:
        """Raw samples ``indices`` in ``modality`` (image, or the caption of a pair)."""

    @abstractmethod
    def subset(self, indices: np.ndarray) -> PublicData:
        """A public set made of rows ``indices`` (in that order)."""
