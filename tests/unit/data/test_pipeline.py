"""The one pass, step by step: source, label space, partition, subsample, evaluation, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data import pipeline
from fedmuscle_flwr.data.loader import iter_batches
from fedmuscle_flwr.data.registry import load_private
from tests import datafiles


def spec(**fields: object) -> DataSpec:
    return DataSpec.model_validate({"dataset": "digits", **fields})


def test_source_is_read_once_and_options_identify_it(tmp_path: Path) -> None:
    # Prepare
    a = datafiles.image_folder(tmp_path / "a", per_class=2, test_per_class=1)
    b = datafiles.image_folder(tmp_path / "b", per_class=3, test_per_class=1)
    # Execute
    first = pipeline.open_source(DataSpec(dataset="imagefolder", options={"root": a}))
    again = pipeline.open_source(DataSpec(dataset="imagefolder", options={"root": a}))
    other = pipeline.open_source(DataSpec(dataset="imagefolder", options={"root": b}))
    # Assert
    assert first is again and len(other.train) == 9


def test_label_space_gives_primary_labels_of_both_splits() -> None:
    space = pipeline.label_space(spec())
    assert space.info.num_classes == 10
    assert space.train.dtype == np.int64 and len(space.train) == 1437
    assert len(space.test) == 360


def test_partition_rows_are_disjoint_and_cover_the_split() -> None:
    parts = [
        pipeline.partition_rows(spec(partition={"num-partitions": 3, "index": i}))
        for i in range(3)
    ]
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == 1437


def test_one_partition_table_serves_every_index() -> None:
    """A simulation actor serves many clients of one dataset: the table of all
    partitions is cut once and kept once, not once per client (issue 26)."""
    pipeline._table.cache_clear()
    parts = [
        pipeline.partition_rows(spec(partition={"num-partitions": 7, "index": i}))
        for i in range(7)
    ]
    info = pipeline._table.cache_info()
    assert (info.misses, info.currsize) == (1, 1)
    assert sum(map(len, parts)) == 1437 and all(len(p) for p in parts)


def test_subsample_rows_applies_per_class_then_max_train() -> None:
    labels = np.repeat(np.arange(3), 10)
    rows = np.arange(30)
    kept = pipeline.subsample_rows(rows, labels, spec(**{"per-class": 4}))
    assert np.bincount(labels[kept]).tolist() == [4, 4, 4]
    capped = pipeline.subsample_rows(
        rows, labels, spec(**{"per-class": 4, "max-train": 5})
    )
    assert len(capped) == 5 and set(capped) <= set(kept)


def test_evaluation_rows_validation_or_filtered_test() -> None:
    rows = np.arange(20)
    test_labels = np.repeat(np.arange(4), 5)
    val = pipeline.evaluation_rows(rows, test_labels, spec(validation=0.25))
    assert val.from_train and len(val.evaluated) == 5
    assert not set(val.train) & set(val.evaluated)
    part = {"scheme": "classes", "classes": [1, 3]}
    test = pipeline.evaluation_rows(rows, test_labels, spec(partition=part))
    assert not test.from_train and set(test_labels[test.evaluated]) == {1, 3}


def test_build_splits_cuts_and_types_targets() -> None:
    data = pipeline.open_source(spec())
    rows = pipeline.EvaluationRows(np.arange(5), np.arange(3), False)
    out = pipeline.build_splits(data, rows)
    assert (len(out.train), len(out.test)) == (5, 3)
    assert np.array_equal(out.train.x, data.train.x[:5])  # type: ignore[index]
    assert out.test.y.dtype == np.int64


def test_load_private_is_the_steps_in_a_row() -> None:
    s = spec(**{"max-train": 50, "max-test": 20, "partition": {"num-partitions": 2}})
    data = load_private(s)
    rows = pipeline.subsample_rows(
        pipeline.partition_rows(s), pipeline.label_space(s).train, s
    )
    assert np.array_equal(data.train.y, pipeline.open_source(s).train.y[rows])


def test_unknown_dataset_and_options_on_a_packaged_set() -> None:
    with pytest.raises(ValueError, match="from files"):
        pipeline.open_source(DataSpec(dataset="nope"))
    with pytest.raises(ValueError, match="takes no options"):
        pipeline.open_source(DataSpec(dataset="digits", options={"root": "x"}))


@pytest.mark.parametrize("workers", [0, 2])
def test_iter_batches_gives_the_asked_rows_in_order(
    tmp_path: Path, workers: int
) -> None:
    # Prepare: a lazy split (files) and the order the trainer drew
    root = datafiles.image_folder(tmp_path / "r", per_class=5, test_per_class=1)
    split = load_private(DataSpec(dataset="imagefolder", options={"root": root})).train
    order = np.array_split(np.random.default_rng(3).permutation(len(split)), 4)
    # Execute
    batches = list(iter_batches(split, order, workers))
    # Assert: same rows, same pixels as decoding in this process
    assert [b.rows.tolist() for b in batches] == [o.tolist() for o in order]
    for batch, rows in zip(batches, order, strict=True):
        assert np.array_equal(batch.x, split.batch(rows))
        assert np.array_equal(batch.y, split.y[rows])


def test_iter_batches_of_memory_splits_slice_the_arrays() -> None:
    split = load_private(spec(**{"max-train": 10})).train
    (batch,) = iter_batches(split, [np.array([3, 1])], workers=2)
    assert np.array_equal(batch.x, split.x[[3, 1]])  # type: ignore[index]
