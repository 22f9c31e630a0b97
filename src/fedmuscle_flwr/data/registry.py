"""The two entry points over the dataset registries (:mod:`.catalog`).

* :func:`load_private` gives one client its share of a labelled dataset;
* :func:`load_public` gives everyone the same unlabelled public set.

Raw datasets are cached per process (``functools.cache`` on the raw loaders,
keyed by their source folder), and so are partition tables, so a second
``load_private`` of the same dataset costs only the copy of the client's rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data.base import (
    DatasetInfo,
    Modality,
    PrivateData,
    PublicData,
    Split,
)
from fedmuscle_flwr.data.catalog import PRIVATE, PUBLIC, PrivateEntry
from fedmuscle_flwr.data.partitioning import (
    partition_table,
    primary_labels,
    subsample,
)
from fedmuscle_flwr.data.public_files import PUBLIC_FORMATS
from fedmuscle_flwr.data.sources import DataUnavailableError

__all__ = [
    "PRIVATE",
    "PUBLIC",
    "DataUnavailableError",
    "check_private",
    "check_public",
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
    raise ValueError(
        f"data.dataset: private dataset {name!r} is {kind}; known: {sorted(PRIVATE)}"
    )


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
            f"data.options: dataset {spec.dataset!r} takes no options, "
            f"got {spec.options}"
        )
    data = entry.load()
    p = spec.partition
    table = _table(spec.dataset, p.scheme, p.num_partitions, p.alpha, p.classes, p.seed)
    rows = table[p.index]
    if spec.per_class:
        rows = per_class(rows, _primary(spec.dataset, "train"), spec.per_class, p.seed)
    rows = subsample(rows, spec.max_train, np.random.default_rng([p.seed, 1]))
    if spec.validation:
        train_rows, val_rows = carve_validation(rows, spec.validation, p.seed)
        test_rng = np.random.default_rng([p.seed, 2])
        val_rows = subsample(val_rows, spec.max_test, test_rng)
        return PrivateData(
            entry.info,
            _finish(data.train.take(train_rows), entry.info),
            _finish(data.train.take(val_rows), entry.info),
        )
    test_rows = np.arange(len(data.test))
    if p.scheme == "classes":
        test_rows = test_rows[np.isin(_primary(spec.dataset, "test"), p.classes)]
    test_rows = subsample(test_rows, spec.max_test, np.random.default_rng([p.seed, 2]))
    return PrivateData(
        entry.info,
        _finish(data.train.take(rows), entry.info),
        _finish(data.test.take(test_rows), entry.info),
    )


def per_class(
    rows: np.ndarray, labels: np.ndarray, limit: int, seed: int
) -> np.ndarray:
    """At most ``limit`` of ``rows`` per primary class (``labels`` of all train rows).

    Seeded by ``seed``; sorted. Multi-label rows count under their primary label.
    """
    rng = np.random.default_rng([seed, 3])
    kept = [
        subsample(rows[labels[rows] == c], limit, rng) for c in np.unique(labels[rows])
    ]
    return np.sort(np.concatenate(kept)) if kept else rows


def carve_validation(
    rows: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (train, validation), ``fraction`` of them (>= 1) validation.

    A seeded draw, independent of the run's seed; both parts sorted, disjoint.
    """
    if len(rows) < 2:
        raise ValueError(f"data.validation: {len(rows)} train rows cannot be split")
    n_val = min(len(rows) - 1, max(1, round(fraction * len(rows))))
    val = subsample(rows, n_val, np.random.default_rng([seed, 4]))
    return np.setdiff1d(rows, val), val


@contextmanager
def _explained(name: str) -> Iterator[None]:
    """Re-raise a missing source as missing for ``name`` (its own prepare command).

    A composite set (``emoji-tuxpaint-captions``) is prepared under its own name;
    the loader of a part would name only that part.
    """
    try:
        yield
    except DataUnavailableError as exc:
        entry = PRIVATE.get(name) or PUBLIC.get(name)
        sources = entry.sources if entry is not None else ()
        for source in sources:
            downloadable = source.kind == "torchvision" or source.fallback
            if exc.name != name and not downloadable and not source.available():
                raise DataUnavailableError(name, source.hint(name)) from exc
        raise


def check_private(spec: DataSpec) -> DatasetInfo:
    """Check before training that a client's data exists and can be partitioned.

    Loads (and caches, so that clients do not race to build derived sets) the
    dataset and cuts this client's share, exactly as :func:`load_private` does.

    Raises
    ------
    ValueError
        Unknown dataset, options, or a partition that cannot be cut.
    DataUnavailableError
        A source is missing (the message holds the ``fedmuscle data prepare``
        command).
    """
    with _explained(spec.dataset):
        return load_private(spec).info


def _public_modalities(name: str) -> frozenset[Modality]:
    if name in PUBLIC_FORMATS:
        return PUBLIC_FORMATS[name][0]
    if name in PUBLIC:
        return PUBLIC[name].modalities
    raise ValueError(
        f"public.dataset: unknown public set {name!r}; packaged: {sorted(PUBLIC)}, "
        f"from files: {sorted(PUBLIC_FORMATS)}"
    )


def _public_pool(name: str, options: Mapping[str, Any]) -> PublicData:
    if name in PUBLIC_FORMATS:
        return PUBLIC_FORMATS[name][1](options)
    if options:
        raise ValueError(
            f"public.options: packaged public set {name!r} takes no options, "
            f"got {dict(options)}"
        )
    with _explained(name):
        return PUBLIC[name].load()


def check_public(
    name: str,
    size: int,
    needs: Mapping[str, Modality],
    options: Mapping[str, Any] | None = None,
) -> None:
    """Check before training that public set ``name`` serves every client.

    Parameters
    ----------
    name : str
        The run's ``public.dataset``: a packaged set or a file layout.
    size : int
        The run's ``public.size``.
    needs : Mapping[str, Modality]
        Client name -> the modality its encoder reads.
    options : Mapping[str, Any] | None
        The run's ``public.options`` (where the files are).

    Raises
    ------
    ValueError
        Unknown set, a modality it lacks, or ``size`` beyond its samples.
    DataUnavailableError
        A source is missing (with the ``fedmuscle data prepare`` command).
    """
    modalities = _public_modalities(name)
    lacking = {c: m for c, m in needs.items() if m not in modalities}
    if lacking:
        pairs = sorted(n for n, e in PUBLIC.items() if len(e.modalities) > 1)
        raise ValueError(
            f"public.dataset {name!r} has only {sorted(modalities)} samples "
            f"but clients {lacking} read other modalities; image-caption sets: "
            f"{pairs} or 'image-captions' from files"
        )
    available = len(_public_pool(name, options or {}))
    if size > available:
        raise ValueError(
            f"public.size={size} exceeds the {available} samples of {name!r}"
        )


def load_public(
    name: str, size: int, options: Mapping[str, Any] | None = None
) -> PublicData:
    """Return the first ``size`` samples of a seeded permutation of set ``name``.

    ``name`` is a packaged set (``fedmuscle list datasets``) or a file layout
    (:data:`~fedmuscle_flwr.data.public_files.PUBLIC_FORMATS`) read from
    ``options``. The permutation (seed :data:`PUBLIC_SEED`) is the same for
    every participant, so equal files give an equal public set (and an equal
    :func:`~fedmuscle_flwr.data.fingerprint.public_fingerprint`).

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``size`` is not in ``[1, available]``.
    """
    _public_modalities(name)
    pool = _public_pool(name, options or {})
    if not 1 <= size <= len(pool):
        raise ValueError(f"public set {name!r} has {len(pool)} samples; asked {size}")
    order = np.random.default_rng(PUBLIC_SEED).permutation(len(pool))[:size]
    return pool.subset(order)
