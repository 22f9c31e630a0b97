"""A client's private data in one pass, the same for every source.

    source -> label space -> partition -> subsample -> validation -> splits

1. :func:`open_source`: the labelled data named by ``data.dataset`` (a packaged
   set, a file format of :mod:`~fedmuscle_flwr.data.formats`, or a
   ``module:callable`` plugin), read once per process;
2. :func:`label_space`: the primary label of every train and test row (what
   partitions and class filters use) and the class names;
3. :func:`partition_rows`: this client's train rows (flwr-datasets
   partitioners, :mod:`~fedmuscle_flwr.data.partitioning`);
4. :func:`subsample_rows`: ``per-class``, then ``max-train``;
5. :func:`evaluation_rows`: the rows evaluated, either a validation carve of
   the train rows or the test split (filtered to ``classes``), ``max-test``;
6. :func:`build_splits`: the rows cut out of the source (lazy sources stay
   undecoded), targets in their final dtype.

Each step is a function of its inputs, testable alone. Draws are seeded by
``partition.seed`` (streams 1: max-train, 2: max-test, 3: per-class, 4:
validation). Class ids are never remapped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from fedmuscle_flwr.config.profile import DataSpec, PartitionSpec
from fedmuscle_flwr.data.base import DatasetInfo, LabelledData, PrivateData, Split
from fedmuscle_flwr.data.catalog import PRIVATE, PUBLIC
from fedmuscle_flwr.data.formats.base import FORMATS
from fedmuscle_flwr.data.formats.plugin import is_plugin, load_plugin
from fedmuscle_flwr.data.partitioning import partition_table, primary_labels, subsample

_TARGET_DTYPES = {"class": np.int64, "multilabel": np.float32, "mask": np.int64}


def source_key(spec: DataSpec) -> str:
    """What identifies a source: its name and its options (JSON, sorted keys)."""
    return json.dumps([spec.dataset, spec.options], sort_keys=True, default=str)


def _reader(name: str, options: dict[str, object]) -> Callable[[], LabelledData]:
    if is_plugin(name):
        return lambda: load_plugin(name, options)
    if name in PRIVATE:
        if options:
            raise ValueError(
                f"data.options: dataset {name!r} takes no options, got {options}"
            )
        return PRIVATE[name].load
    if name in FORMATS:
        return lambda: FORMATS[name].read(options)
    kind = "a public (unlabelled) set" if name in PUBLIC else "unknown"
    raise ValueError(
        f"data.dataset: private dataset {name!r} is {kind}; packaged: "
        f"{sorted(PRIVATE)}; from files: {sorted(FORMATS)}; or 'module:callable'"
    )


@cache
def _read_files(key: str) -> LabelledData:
    name, options = json.loads(key)
    return _reader(name, options)()


def _open(key: str) -> LabelledData:
    name, options = json.loads(key)
    if name in PRIVATE:  # packaged loaders cache by their source folder
        return _reader(name, options)()
    return _read_files(key)


def open_source(spec: DataSpec) -> LabelledData:
    """Step 1: the whole labelled dataset ``spec`` names (read once per process)."""
    return _open(source_key(spec))


@dataclass(frozen=True)
class LabelSpace:
    """Step 2's result: class names and the primary label of every row."""

    info: DatasetInfo
    train: np.ndarray
    test: np.ndarray


@cache
def _label_space(key: str) -> LabelSpace:
    data = _open(key)
    kind = data.info.target_kind
    return LabelSpace(
        data.info, primary_labels(data.train.y, kind), primary_labels(data.test.y, kind)
    )


def label_space(spec: DataSpec) -> LabelSpace:
    """Step 2: class names and primary labels of the source's rows (cached)."""
    open_source(spec)
    return _label_space(source_key(spec))


def partition_seed(spec: DataSpec) -> int:
    """The seed of every draw of the pipeline: ``partition.seed`` (unset: 0).

    A run resolves an unset seed to its own before loading (issue 25); a spec
    loaded directly (tests, ``data check``) draws with 0.
    """
    return int(spec.partition.seed or 0)


@cache
def _table(key: str, p: PartitionSpec, seed: int) -> tuple[np.ndarray, ...]:
    labels = _label_space(key).train
    return tuple(
        partition_table(labels, p.scheme, p.num_partitions, p.alpha, p.classes, seed)
    )


def partition_rows(spec: DataSpec) -> np.ndarray:
    """Step 3: this client's train rows (partition ``index`` of the table).

    The table is cached once for all indices: a process serving many clients
    of one dataset (a simulation's actor) keeps one copy, not one per client.
    """
    label_space(spec)
    whole = spec.partition.model_copy(update={"index": 0})
    table = _table(source_key(spec), whole, partition_seed(spec))
    return table[spec.partition.index]


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


def subsample_rows(rows: np.ndarray, labels: np.ndarray, spec: DataSpec) -> np.ndarray:
    """Step 4: ``per-class`` rows per class, then at most ``max-train`` rows."""
    seed = partition_seed(spec)
    if spec.per_class:
        rows = per_class(rows, labels, spec.per_class, seed)
    return subsample(rows, spec.max_train, np.random.default_rng([seed, 1]))


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


@dataclass(frozen=True)
class EvaluationRows:
    """Step 5's result: the train rows kept and the rows evaluated."""

    train: np.ndarray
    evaluated: np.ndarray
    from_train: bool


def evaluation_rows(
    rows: np.ndarray, test_labels: np.ndarray, spec: DataSpec
) -> EvaluationRows:
    """Step 5: a validation carve of ``rows``, or the test rows (``classes`` kept)."""
    p, seed = spec.partition, partition_seed(spec)
    test_rng = np.random.default_rng([seed, 2])
    if spec.validation:
        train, val = carve_validation(rows, spec.validation, seed)
        return EvaluationRows(train, subsample(val, spec.max_test, test_rng), True)
    test = np.arange(len(test_labels))
    if p.scheme == "classes":
        test = test[np.isin(test_labels, p.classes)]
    return EvaluationRows(rows, subsample(test, spec.max_test, test_rng), False)


def _finish(split: Split, info: DatasetInfo) -> Split:
    y = split.y.astype(_TARGET_DTYPES[info.target_kind], copy=False)
    return Split(split.x, y)


def build_splits(data: LabelledData, rows: EvaluationRows) -> PrivateData:
    """Step 6: cut the rows out of the source; targets in their final dtype."""
    source = data.train if rows.from_train else data.test
    return PrivateData(
        data.info,
        _finish(data.train.take(rows.train), data.info),
        _finish(source.take(rows.evaluated), data.info),
    )


def load_private(spec: DataSpec) -> PrivateData:
    """One client's share of ``spec.dataset``: the six steps, each once."""
    data = open_source(spec)
    labels = label_space(spec)
    rows = subsample_rows(partition_rows(spec), labels.train, spec)
    return build_splits(data, evaluation_rows(rows, labels.test, spec))
