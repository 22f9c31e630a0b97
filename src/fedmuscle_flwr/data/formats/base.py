"""A client's own labelled data read from files: the format registry and shared steps.

A *format* reads ``data.options`` (validated by its own ``Options`` schema, so a
misspelt option is refused) into :class:`~fedmuscle_flwr.data.base.LabelledData`.
It registers itself by name in one module of this folder::

    @FORMATS.register("imagefolder")
    class ImageFolder(FileFormat): ...

Shared here: the label space (class names from the data define it; a label
outside it is refused) and the seeded test carve when no test split is given.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from fedmuscle_flwr.config.registry import Registry
from fedmuscle_flwr.config.schema import _Schema, validate
from fedmuscle_flwr.data.base import (
    DatasetInfo,
    LabelledData,
    Modality,
    Split,
    TargetKind,
)
from fedmuscle_flwr.data.decode import DataFileError

#: seed of the carve of a test split out of the given samples
SPLIT_SEED = 0


class SplitOptions(_Schema):
    """Options every format shares: the test carve and an explicit label space."""

    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="carved as the test split when none is given"
    )
    classes: tuple[str, ...] = Field(
        (), description="the label space in order; empty = from the data (sorted)"
    )


class FileFormat(ABC):
    """One way of reading labelled data from files (a registry entry)."""

    #: the registry name (set by the registry)
    name: ClassVar[str]
    #: one line for ``fedmuscle list datasets``
    summary: ClassVar[str]
    #: the options' schema
    Options: ClassVar[type[_Schema]]

    @classmethod
    def read(cls, options: Mapping[str, Any]) -> LabelledData:
        """Validate ``options`` and read the data."""
        opts = validate(cls.Options, options, f"data.options of {cls.name!r}")
        return cls.load(opts)

    @classmethod
    @abstractmethod
    def load(cls, opts: Any) -> LabelledData:
        """Read the data described by validated ``opts``."""


FORMATS: Registry[type[FileFormat]] = Registry(
    "data format", "fedmuscle_flwr.data.formats", name_attr="name"
)


def label_space(
    found: Sequence[str], given: Sequence[str], origin: str
) -> tuple[str, ...]:
    """The class names: ``given`` (checked to cover ``found``), else ``found`` sorted.

    Raises
    ------
    DataFileError
        A label of the data is not in the given label space, or no label at all.
    """
    present = sorted(set(found))
    if not present:
        raise DataFileError(f"{origin}: no labels")
    if not given:
        return tuple(present)
    outside = [c for c in present if c not in set(given)]
    if outside:
        raise DataFileError(
            f"{origin}: label {outside[0]!r} is not in the label space {list(given)}"
        )
    return tuple(given)


def class_ids(labels: Sequence[str], names: Sequence[str], origin: str) -> np.ndarray:
    """int64 ids of ``labels`` in ``names``; a label outside is refused (named)."""
    index = {n: i for i, n in enumerate(names)}
    for row, label in enumerate(labels):
        if label not in index:
            raise DataFileError(
                f"{origin}: label {label!r} of row {row} is not in the label space "
                f"{list(names)}"
            )
    return np.asarray([index[label] for label in labels], dtype=np.int64)


def multi_hot(
    label_lists: Sequence[Sequence[str]], names: Sequence[str], origin: str
) -> np.ndarray:
    """Shape: N label lists -> float32 (N, K) multi-hot over ``names``."""
    out = np.zeros((len(label_lists), len(names)), dtype=np.float32)
    index = {n: i for i, n in enumerate(names)}
    for row, labels in enumerate(label_lists):
        for label in labels:
            if label not in index:
                raise DataFileError(
                    f"{origin}: label {label!r} of row {row} is not in the label "
                    f"space {list(names)}"
                )
            out[row, index[label]] = 1.0
    return out


def carve_test(n: int, fraction: float, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) row indices of ``n`` samples, ``fraction`` of them test.

    Raises
    ------
    DataFileError
        Fewer than 2 samples.
    """
    if n < 2:
        raise DataFileError(f"{origin}: {n} sample(s) cannot be split into train/test")
    n_test = min(n - 1, max(1, round(fraction * n)))
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def assemble(
    info: DatasetInfo,
    train: Split,
    test: Split | None,
    fraction: float,
) -> LabelledData:
    """Train and test splits: ``test`` as given, else carved from ``train``."""
    if test is None:
        train_rows, test_rows = carve_test(len(train), fraction, info.name)
        train, test = train.take(train_rows), train.take(test_rows)
    return LabelledData(info, train, test)


def label_key(names: Sequence[str]) -> str:
    """``classes:<12 hex>``: the identity of an ordered label space."""
    digest = hashlib.blake2b("\0".join(names).encode("utf-8"), digest_size=6)
    return f"classes:{digest.hexdigest()}"


def make_info(
    origin: str, modality: Modality, kind: TargetKind, names: Sequence[str]
) -> DatasetInfo:
    """A :class:`DatasetInfo` named by where the data is, keyed by its classes."""
    return DatasetInfo(
        origin, modality, kind, len(names), tuple(names), label_key(names)
    )
