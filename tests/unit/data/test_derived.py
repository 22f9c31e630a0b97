"""Derived Fashion-MNIST tasks: mosaics (multi-label) and segmentation masks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fedmuscle_flwr.config.profile import DataSpec, PartitionSpec
from fedmuscle_flwr.data import derived, registry
from fedmuscle_flwr.data.cache import npz_path
from fedmuscle_flwr.data.images import load_fashion_mnist
from fedmuscle_flwr.data.partitioning import partition_table, primary_labels


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Build the derived sets from scratch in an empty cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDMUSCLE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    fashion = load_fashion_mnist()
    return (
        np.asarray(fashion.train.x),
        fashion.train.y,
        np.asarray(fashion.test.x),
        fashion.test.y,
    )


def test_mosaic_shapes_and_cache_file() -> None:
    data = registry.load_private(DataSpec(dataset="fashion-mnist-mosaic"))
    assert isinstance(data.train.x, np.ndarray)
    assert data.train.x.shape == (12_000, 56, 56) and data.train.x.dtype == np.uint8
    assert data.test.x.shape == (2_000, 56, 56)
    assert data.train.y.shape == (12_000, 10) and data.train.y.dtype == np.float32
    assert set(np.unique(data.train.y)) == {0.0, 1.0}
    assert data.train.y.sum(axis=1).min() >= 1 and data.train.y.sum(axis=1).max() <= 4
    assert npz_path("fashion-mnist-mosaic", derived.DERIVED_VERSION).is_file()


def test_mosaic_targets_and_tiles_match_their_items(
    source: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    train_x, train_y, test_x, test_y = source
    bundle = derived.mosaic_bundle()
    for split, images, labels in (
        ("train", train_x, train_y),
        ("test", test_x, test_y),
    ):
        items, x, y = (bundle[f"{split}_{k}"] for k in ("items", "x", "y"))
        assert items.max() < len(images)  # never the public hold-out
        expected = np.zeros_like(y)
        expected[np.arange(len(y))[:, None], labels[items]] = 1
        assert np.array_equal(y, expected)
        for i in range(0, len(x), 97):
            assert np.array_equal(x[i, :28, :28], images[items[i, 0]])
            assert np.array_equal(x[i, :28, 28:], images[items[i, 1]])
            assert np.array_equal(x[i, 28:, :28], images[items[i, 2]])
            assert np.array_equal(x[i, 28:, 28:], images[items[i, 3]])


def test_segmentation_shapes_and_classes() -> None:
    data = registry.load_private(DataSpec(dataset="fashion-mnist-seg"))
    assert isinstance(data.train.x, np.ndarray)
    assert data.train.x.shape == (8_000, 48, 48) and data.train.x.dtype == np.uint8
    assert data.test.x.shape == (1_500, 48, 48)
    assert data.train.y.shape == (8_000, 48, 48) and data.train.y.dtype == np.int64
    assert data.train.y.min() == 0 and data.train.y.max() == 10
    assert set(np.unique(data.train.y)) == set(range(11))
    assert np.array_equal(data.train.x > 0, data.train.y > 0)  # mask = pasted pixels


def test_segmentation_masks_match_the_pasted_items(
    source: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    images, labels = source[0], source[1]
    bundle = derived.segmentation_bundle()
    x, y, items = bundle["train_x"], bundle["train_y"], bundle["train_items"]
    for i in range(0, len(x), 53):
        canvas = np.zeros_like(x[i])
        mask = np.zeros_like(y[i])
        pasted = [tuple(row) for row in items[i] if row[0] >= 0]
        assert 1 <= len(pasted) <= derived.SEG_MAX_ITEMS
        for src, top, left in pasted:
            fg = images[src] > derived.FOREGROUND_THRESHOLD
            canvas[top : top + 28, left : left + 28][fg] = images[src][fg]
            mask[top : top + 28, left : left + 28][fg] = labels[src] + 1
        assert np.array_equal(canvas, x[i]) and np.array_equal(mask, y[i])
        present = set(np.unique(y[i])) - {0}
        assert present <= {int(labels[src]) + 1 for src, _, _ in pasted}


def test_mask_primary_label_is_the_largest_item() -> None:
    masks = np.zeros((2, 4, 4), dtype=np.uint8)
    masks[0, :3] = 4
    masks[0, 3, :2] = 7
    masks[1, 0, 0] = 2
    assert primary_labels(masks, "mask").tolist() == [4, 2]
    assert primary_labels(np.zeros((1, 2, 2), np.uint8), "mask").tolist() == [0]


def test_multilabel_primary_label_is_a_present_class() -> None:
    y = derived.mosaic_bundle()["train_y"]
    primary = primary_labels(y, "multilabel")
    assert np.all(y[np.arange(len(y)), primary] == 1)
    assert np.array_equal(primary, primary_labels(y, "multilabel"))


def test_derived_sets_partition_by_primary_label() -> None:
    y = derived.segmentation_bundle()["train_y"]
    parts = partition_table(primary_labels(y, "mask"), "dirichlet", 4, alpha=0.5)
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == len(y)
    data = registry.load_private(
        DataSpec(
            dataset="fashion-mnist-mosaic",
            partition=PartitionSpec(scheme="classes", classes=(0, 1), num_partitions=2),
        )
    )
    assert 0 < len(data.test) < 2_000
    for split in (data.train, data.test):  # the primary label is 0 or 1: present
        assert np.all(split.y[:, [0, 1]].sum(axis=1) >= 1)
