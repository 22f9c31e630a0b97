"""The two entry points over the dataset registries (:mod:`.catalog`).

* :func:`load_private` gives one client its share of a labelled dataset;
* :func:`load_public` gives everyone the same unlabelled public set.

Raw datasets are cached per process (``functools.cache`` on the raw loaders,
keyed by their source folder), and so are partition tables, so a second
``load_private`` of the same dataset costs only the copy of the client's rows.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from fedmuscle_flwr.data.base import DatasetInfo, PrivateData, Split
from fedmuscle_flwr.data.catalog import PRIVATE, PUBLIC, PrivateEntry
from fedmuscle_flwr.data.partitioning import (
    partition_table,
    primary_labels,
    subsample,
)
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.sources import DataUnavailableError
from fedmuscle_flwr.profiles import DataSpec

__all__ = [
    "PRIVATE",
    "PUBLIC",
    "DataUnavailableError",
    "dataset_info",
    "list_datasets",
    "load_private",
    "load_public",
]

#: seed of the permutation whose first ``size`` rows form a public set
PUBLIC_SEED = 0
_TARGET_DTYPES = {"class": np.int64, "multilabel": np.float32, "mask": np.int64}


def _private_entry(name: str) -> PrivateEntry:
    if name in PRIVATE:
        return PRIVATE[name]
    kind = "a public (unlabelled) set" if name in PUBLIC else "unknown"
    raise ValueError(f"private dataset {name!r} is {kind}; known: {sorted(PRIVATE)}")


def dataset_info(name: str) -> DatasetInfo:
    """Metadata of labelled dataset ``name`` (no loading)."""
    return _private_entry(name).info


def list_datasets() -> dict[str, str]:
    """Every registered dataset, private then public: name -> one-line summary."""
    out = {
        name: f"private {e.info.modality}/{e.info.target_kind}, "
        f"{e.info.num_classes} classes: {e.description}"
        for name, e in PRIVATE.items()
    }
    for name, p in PUBLIC.items():
        out[name] = f"public {'+'.join(sorted(p.modalities))}: {p.description}"
    return out


@cache
def _primary(name: str, split: str) -> np.ndarray:
    entry = PRIVATE[name]
    data = entry.load()
    chosen = data.train if split == "train" else data.test
    return primary_labels(chosen.y, entry.info.target_kind)


@cache
def _table(
    name: str, scheme: str, n: int, alpha: float, classes: tuple[int, ...], seed: int
) -> tuple[np.ndarray, ...]:
    labels = _primary(name, "train")
    return tuple(partition_table(labels, scheme, n, alpha, classes, seed))


def _finish(split: Split, info: DatasetInfo) -> Split:
    return Split(split.x, split.y.astype(_TARGET_DTYPES[info.target_kind]))


def load_private(spec: DataSpec) -> PrivateData:
    """One client's share of labelled dataset ``spec.dataset``.

    The train split is partitioned with ``spec.partition`` (see
    :mod:`~fedmuscle_flwr.data.partitioning`), partition ``index`` is kept and
    subsampled to ``max_train`` rows; the test split (restricted to ``classes``
    for the ``classes`` scheme) is subsampled to ``max_test``. Draws are seeded
    by ``partition.seed``. Class ids are never remapped. Multi-label and mask
    targets are partitioned and filtered by their primary label (see
    :func:`~fedmuscle_flwr.data.partitioning.primary_labels`); for masks the
    ``classes`` are mask ids (1..10 for Fashion items; 0 is the background).

    Returns
    -------
    PrivateData
        Raw uint8 images or strings; int64 class ids / float32 multi-hot /
        int64 masks.
    """
    entry = _private_entry(spec.dataset)
    if spec.options:
        raise ValueError(
            f"dataset {spec.dataset!r} takes no options, got {spec.options}"
        )
    data = entry.load()
    p = spec.partition
    table = _table(spec.dataset, p.scheme, p.num_partitions, p.alpha, p.classes, p.seed)
    rows = subsample(table[p.index], spec.max_train, np.random.default_rng([p.seed, 1]))
    test_rows = np.arange(len(data.test))
    if p.scheme == "classes":
        test_rows = test_rows[np.isin(_primary(spec.dataset, "test"), p.classes)]
    test_rows = subsample(test_rows, spec.max_test, np.random.default_rng([p.seed, 2]))
    return PrivateData(
        entry.info,
        _finish(data.train.take(rows), entry.info),
        _finish(data.test.take(test_rows), entry.info),
    )


def load_public(name: str, size: int) -> InMemoryPublicData:
    """Return the first ``size`` samples of a seeded permutation of set ``name``.

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``size`` is not in ``[1, available]``.
    """
    if name not in PUBLIC:
        raise ValueError(f"unknown public set {name!r}; known: {sorted(PUBLIC)}")
    pool = PUBLIC[name].load()
    if not 1 <= size <= len(pool):
        raise ValueError(f"public set {name!r} has {len(pool)} samples; asked {size}")
    order = np.random.default_rng(PUBLIC_SEED).permutation(len(pool))[:size]
    return pool.subset(order)
