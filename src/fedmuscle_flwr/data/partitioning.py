"""Cutting a train split into client partitions with flwr-datasets partitioners.

Schemes (``PartitionSpec.scheme``):

* ``iid``: a seeded shuffle, then ``IidPartitioner`` (equal contiguous shards);
* ``dirichlet``: ``DirichletPartitioner`` over the labels with concentration
  ``alpha`` (small alpha = strong label skew);
* ``classes``: keep only the rows whose label is in ``classes``, then ``iid``
  across ``num_partitions``;
* ``whole``: every partition is the whole split (shared, not disjoint).

Partitions of ``iid``/``dirichlet``/``classes`` are disjoint, cover the (kept)
rows and depend only on the labels and the spec (seeded). Multi-label and mask
targets are partitioned by a derived *primary label* (:func:`primary_labels`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fedmuscle_flwr.data.base import TargetKind

logger = logging.getLogger(__name__)

#: seed of the tie-breaking draw of multi-label primary labels
PRIMARY_SEED = 0
#: the partitioner's wish for the smallest Dirichlet partition
DIRICHLET_MIN_SIZE = 10


def primary_labels(y: np.ndarray, kind: TargetKind) -> np.ndarray:
    """One int64 label per row, used for partitioning and class filters.

    Parameters
    ----------
    y : np.ndarray
        Class ids (N,), multi-hot (N, K) or masks (N, H, W).
    kind : TargetKind
        ``class``: ``y`` itself; ``multilabel``: one of the present classes,
        drawn with a fixed seed; ``mask``: the most frequent non-background
        class id (0 only for an empty mask).

    Returns
    -------
    np.ndarray
        int64 (N,).
    """
    if kind == "class":
        return np.asarray(y, dtype=np.int64)
    if kind == "multilabel":
        scores = np.random.default_rng(PRIMARY_SEED).random(y.shape)
        return np.argmax(np.where(y > 0, scores, -1.0), axis=1).astype(np.int64)
    flat = np.asarray(y, dtype=np.int64).reshape(len(y), -1)
    k = int(flat.max()) + 1 if flat.size else 1
    rows = np.repeat(np.arange(len(y)) * k, flat.shape[1])
    counts = np.bincount(rows + flat.ravel(), minlength=len(y) * k).reshape(-1, k)
    counts[:, 0] = 0
    return np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), 0).astype(np.int64)


def _dataset(labels: np.ndarray, rows: np.ndarray) -> Any:
    """Build a ``datasets.Dataset`` of (label, idx), arrow-formatted (fast)."""
    from datasets import Dataset

    table = Dataset.from_dict({"label": labels[rows], "idx": rows})
    return table.with_format("arrow")


def _rows(partitioner: Any, n: int) -> list[np.ndarray]:
    return [np.asarray(partitioner.load_partition(i)["idx"]) for i in range(n)]


def _iid(labels: np.ndarray, rows: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """Contiguous shards of a seeded permutation.

    The same rows as flwr-datasets' ``IidPartitioner`` on the permuted rows (it calls
    ``Dataset.shard(n, i, contiguous=True)``: the first ``len % n`` shards get one
    more row); ``tests/unit/data/test_registry.py`` checks the equality. Plain numpy, so
    IID federations need neither ``datasets`` nor pyarrow (the GPU bundle has none).
    """
    shuffled = np.random.default_rng(seed).permutation(rows)
    return list(np.array_split(shuffled, n))


def _dirichlet_once(
    labels: np.ndarray, rows: np.ndarray, n: int, alpha: float, seed: int, min_size: int
) -> list[np.ndarray]:
    from flwr_datasets.partitioner import DirichletPartitioner

    partitioner = DirichletPartitioner(
        num_partitions=n,
        partition_by="label",
        alpha=alpha,
        min_partition_size=min_size,
        seed=seed,
    )
    partitioner.dataset = _dataset(labels, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one warning per re-draw
        return _rows(partitioner, n)


def _dirichlet(
    labels: np.ndarray, rows: np.ndarray, n: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Dirichlet partitions of at least 10 rows if possible, else at least 1."""
    wish = min(DIRICHLET_MIN_SIZE, len(rows) // (2 * n))
    attempts = (wish, 1) if wish > 1 else (wish,)
    for min_size in attempts:
        try:
            return _dirichlet_once(labels, rows, n, alpha, seed, min_size)
        except ValueError:
            msg = "Dirichlet(alpha=%s), %d partitions: one got < %d rows in 10 draws"
            logger.warning(msg, alpha, n, min_size)
    raise ValueError(
        f"Dirichlet(alpha={alpha}) cannot give each of {n} partitions a row of "
        f"{len(rows)}: raise alpha or lower num_partitions"
    )


Scheme = Callable[[np.ndarray, np.ndarray, int, float, int], list[np.ndarray]]
_SCHEMES: dict[str, Scheme] = {
    "iid": lambda labels, rows, n, alpha, seed: _iid(labels, rows, n, seed),
    "classes": lambda labels, rows, n, alpha, seed: _iid(labels, rows, n, seed),
    "dirichlet": _dirichlet,
    "whole": lambda labels, rows, n, alpha, seed: [rows] * n,
}


def partition_table(
    labels: np.ndarray,
    scheme: str,
    num_partitions: int,
    alpha: float = 0.5,
    classes: Sequence[int] = (),
    seed: int = 0,
) -> list[np.ndarray]:
    """All partitions of a split: sorted int64 row indices, one array each.

    Parameters
    ----------
    labels : np.ndarray
        int64 (N,) (primary) labels of the split's rows.
    scheme : str
        ``iid`` | ``dirichlet`` | ``classes`` | ``whole``.
    num_partitions : int
        How many partitions.
    alpha : float
        Dirichlet concentration.
    classes : Sequence[int]
        Labels kept by ``classes``.
    seed : int
        Seed of the shuffle / Dirichlet draws.

    Returns
    -------
    list[np.ndarray]
        ``num_partitions`` arrays of row indices into ``labels``.
    """
    if scheme not in _SCHEMES:
        raise ValueError(
            f"unknown partition scheme {scheme!r}; known: {sorted(_SCHEMES)}"
        )
    rows = np.arange(len(labels), dtype=np.int64)
    if scheme == "classes":
        rows = rows[np.isin(labels, np.asarray(classes, dtype=np.int64))]
    if scheme != "whole" and num_partitions > len(rows):
        raise ValueError(f"{num_partitions} partitions but only {len(rows)} rows")
    parts = _SCHEMES[scheme](labels, rows, num_partitions, alpha, seed)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` of ``rows`` (0 = all), drawn without replacement, sorted."""
    if limit <= 0 or limit >= len(rows):
        return rows
    return np.sort(rng.choice(rows, size=limit, replace=False))
