"""Private datasets through the registry: shapes, classes, partitions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from fedmuscle_flwr.config.profile import DataSpec, PartitionSpec
from fedmuscle_flwr.data import registry
from fedmuscle_flwr.data.images import FASHION_HELDOUT, fashion_full
from fedmuscle_flwr.data.partitioning import partition_table, primary_labels

REQUIRED_PRIVATE = {
    "fashion-mnist",
    "digits",
    "mnist-5k",
    "fashion-mnist-mosaic",
    "fashion-mnist-seg",
    "wordnet-noun",
    "wordnet-verb",
}
REQUIRED_PUBLIC = {
    "fashion-mnist-heldout",
    "mnist-5k-public",
    "digits-public",
    "emoji-captions",
    "tuxpaint-captions",
}


def spec(dataset: str, max_train: int = 0, max_test: int = 0, **part: Any) -> DataSpec:
    return DataSpec(
        dataset=dataset,
        partition=PartitionSpec(**part),
        max_train=max_train,
        max_test=max_test,
    )


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("FEDMUSCLE_ALLOW_DOWNLOAD", raising=False)
    yield


# ----------------------------------------------------------------- catalogue
def test_list_datasets_has_every_required_name() -> None:
    listed = registry.list_datasets()
    assert set(listed) >= REQUIRED_PRIVATE | REQUIRED_PUBLIC
    assert all(text and "\n" not in text for text in listed.values())
    assert listed["fashion-mnist"].startswith("private")
    assert listed["emoji-captions"].startswith("public image+text")


@pytest.mark.parametrize(
    ("name", "kind", "num_classes"),
    [
        ("fashion-mnist", "class", 10),
        ("digits", "class", 10),
        ("mnist-5k", "class", 10),
        ("fashion-mnist-mosaic", "multilabel", 10),
        ("fashion-mnist-seg", "mask", 11),
        ("wordnet-noun", "class", 26),
        ("wordnet-verb", "class", 15),
    ],
)
def test_dataset_info(name: str, kind: str, num_classes: int) -> None:
    info = registry.dataset_info(name)
    assert (info.name, info.target_kind, info.num_classes) == (name, kind, num_classes)
    assert len(info.class_names) == num_classes


def test_dataset_info_rejects_public_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="public"):
        registry.dataset_info("fashion-mnist-heldout")
    with pytest.raises(ValueError, match="unknown"):
        registry.dataset_info("no-such-set")


# -------------------------------------------------------------- image sets
def test_fashion_mnist_shapes_and_balance() -> None:
    data = registry.load_private(spec("fashion-mnist", scheme="whole"))
    assert data.train.x.shape == (55_000, 28, 28)
    assert data.test.x.shape == (10_000, 28, 28)
    assert isinstance(data.train.x, np.ndarray) and data.train.x.dtype == np.uint8
    assert data.train.y.dtype == np.int64 and data.train.x.max() == 255
    assert np.bincount(data.test.y).tolist() == [1000] * 10
    train_counts = np.bincount(data.train.y, minlength=10)
    assert np.all(np.abs(train_counts - 5500) < 100)


def test_private_fashion_never_overlaps_the_heldout_public_set() -> None:
    private = registry.load_private(spec("fashion-mnist", scheme="whole")).train.x
    public = registry.load_public("fashion-mnist-heldout", FASHION_HELDOUT)
    held = public.batch(np.arange(FASHION_HELDOUT), "image")
    assert isinstance(held, np.ndarray) and isinstance(private, np.ndarray)
    private_rows = {row.tobytes() for row in private}
    assert not any(row.tobytes() in private_rows for row in held)
    full_train, _ = fashion_full()
    assert len(private) + len(held) == len(full_train)


@pytest.mark.parametrize(
    ("name", "n_train", "n_test"), [("digits", 1437, 360), ("mnist-5k", 4000, 1000)]
)
def test_small_digit_sets(name: str, n_train: int, n_test: int) -> None:
    data = registry.load_private(spec(name))
    assert isinstance(data.train.x, np.ndarray)
    assert data.train.x.shape == (n_train, 28, 28) and data.train.x.dtype == np.uint8
    assert len(data.test) == n_test
    assert data.train.x.min() == 0 and data.train.x.max() == 255
    assert set(np.unique(data.test.y)) == set(range(10))  # stratified split


# --------------------------------------------------------------- text sets
@pytest.mark.parametrize(
    ("name", "classes", "total"),
    [("wordnet-noun", 26, 82_115), ("wordnet-verb", 15, 13_767)],
)
def test_wordnet_tasks(name: str, classes: int, total: int) -> None:
    data = registry.load_private(spec(name))
    assert len(data.train) + len(data.test) == total
    assert len(data.test) == round(0.15 * total)
    assert len(np.unique(data.train.y)) == classes
    assert data.train.y.min() == 0 and data.train.y.max() == classes - 1
    assert all(isinstance(t, str) and t for t in list(data.train.x)[:500])


def test_wordnet_glosses_have_their_supersense() -> None:
    data = registry.load_private(spec("wordnet-noun"))
    names = registry.dataset_info("wordnet-noun").class_names
    texts = list(data.train.x) + list(data.test.x)
    labels = np.concatenate([data.train.y, data.test.y])
    entity = texts.index(
        "that which is perceived or known or inferred to have its own distinct "
        "existence (living or nonliving)"
    )
    assert names[labels[entity]] == "noun.Tops"


# -------------------------------------------------------------- partitions
@pytest.fixture(scope="module")
def fashion_labels() -> np.ndarray:
    return primary_labels(fashion_full()[0].y[:55_000], "class")


@pytest.mark.parametrize(
    "part",
    [
        {"scheme": "iid"},
        {"scheme": "dirichlet", "alpha": 0.3},
        {"scheme": "classes", "classes": (2, 5, 7)},
    ],
)
def test_partitions_are_disjoint_and_cover(
    fashion_labels: np.ndarray, part: dict[str, Any]
) -> None:
    parts = partition_table(fashion_labels, num_partitions=4, seed=3, **part)
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined)  # disjoint
    wanted = np.arange(len(fashion_labels))
    if part["scheme"] == "classes":
        wanted = wanted[np.isin(fashion_labels, part["classes"])]
    assert np.array_equal(np.sort(joined), wanted)  # covering
    assert all(len(p) > 0 for p in parts)


def test_partitions_are_deterministic_and_seeded(fashion_labels: np.ndarray) -> None:
    first = partition_table(fashion_labels, "dirichlet", 5, alpha=0.5, seed=1)
    again = partition_table(fashion_labels, "dirichlet", 5, alpha=0.5, seed=1)
    other = partition_table(fashion_labels, "dirichlet", 5, alpha=0.5, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(
        len(a) == len(b) and np.array_equal(a, b)
        for a, b in zip(first, other, strict=True)
    )


def _shares(labels: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    counts = np.stack([np.bincount(labels[p], minlength=10) for p in parts])
    return counts / counts.sum(axis=1, keepdims=True)


def test_dirichlet_skew_is_visible(fashion_labels: np.ndarray) -> None:
    skewed = _shares(
        fashion_labels, partition_table(fashion_labels, "dirichlet", 5, alpha=0.1)
    )
    even = _shares(fashion_labels, partition_table(fashion_labels, "iid", 5))
    assert np.abs(even - 0.1).max() < 0.02
    assert skewed.max(axis=1).min() > 0.2  # every partition has a dominant class
    spread = 0.5 * np.abs(skewed[:, None, :] - skewed[None, :, :]).sum(-1)
    assert spread[np.triu_indices(5, 1)].mean() > 0.5  # total variation distance


def test_load_private_partitions_partition_the_train_split() -> None:
    shares = [
        registry.load_private(spec("digits", scheme="iid", num_partitions=3, index=i))
        for i in range(3)
    ]
    assert sum(len(s.train) for s in shares) == 1437
    assert all(len(s.test) == 360 for s in shares)
    again = registry.load_private(
        spec("digits", scheme="iid", num_partitions=3, index=1)
    )
    assert isinstance(again.train.x, np.ndarray)
    assert np.array_equal(again.train.x, shares[1].train.x)
    assert not np.array_equal(shares[0].train.x[:10], shares[1].train.x[:10])


def test_classes_scheme_restricts_train_and_test() -> None:
    data = registry.load_private(
        spec(
            "fashion-mnist", scheme="classes", classes=(1, 3), num_partitions=2, index=1
        )
    )
    assert set(np.unique(data.train.y)) == {1, 3}
    assert set(np.unique(data.test.y)) == {1, 3} and len(data.test) == 2000
    assert (
        abs(len(data.train) - (np.isin(fashion_full()[0].y[:55_000], (1, 3)).sum() / 2))
        <= 1
    )


def test_max_train_and_max_test_subsample_deterministically() -> None:
    s = spec("mnist-5k", max_train=100, max_test=50, scheme="iid", num_partitions=2)
    a, b = registry.load_private(s), registry.load_private(s)
    full = registry.load_private(spec("mnist-5k", scheme="iid", num_partitions=2))
    assert (len(a.train), len(a.test)) == (100, 50)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    full_rows = {row.tobytes() for row in np.asarray(full.train.x)}
    assert all(row.tobytes() in full_rows for row in np.asarray(a.train.x))


def test_whole_scheme_gives_everyone_everything() -> None:
    a = registry.load_private(spec("digits", scheme="whole", num_partitions=3, index=0))
    b = registry.load_private(spec("digits", scheme="whole", num_partitions=3, index=2))
    assert len(a.train) == len(b.train) == 1437


def test_dirichlet_with_too_many_partitions_degrades_or_explains() -> None:
    labels = np.repeat(np.arange(10), 5)  # 50 rows
    try:
        parts = partition_table(labels, "dirichlet", 20, alpha=0.05, seed=0)
    except ValueError as exc:
        assert "raise alpha" in str(exc)
    else:
        assert all(len(p) >= 1 for p in parts)
        assert len(np.concatenate(parts)) == 50


def test_options_and_unknown_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="takes no options"):
        registry.load_private(DataSpec(dataset="digits", options={"x": 1}))
    with pytest.raises(ValueError, match="unknown"):
        registry.load_private(DataSpec(dataset="cifar-1000"))
    with pytest.raises(ValueError, match="partitions but only"):
        partition_table(np.zeros(3, dtype=np.int64), "iid", 4)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_iid_shards_equal_flwr_datasets_iid_partitioner(n: int) -> None:
    from flwr_datasets.partitioner import IidPartitioner

    from fedmuscle_flwr.data.partitioning import _dataset, _iid

    labels = np.arange(103) % 10
    rows = np.arange(103)
    ours = _iid(labels, rows, n, seed=5)
    shuffled = np.random.default_rng(5).permutation(rows)
    reference = IidPartitioner(num_partitions=n)
    reference.dataset = _dataset(labels, shuffled)
    for i, part in enumerate(ours):
        expected = np.asarray(reference.load_partition(i)["idx"])
        np.testing.assert_array_equal(part, expected)
