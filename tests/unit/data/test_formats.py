"""A client's own files through the one pipeline: every format on real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data.formats.arrays import NpzArrays
from fedmuscle_flwr.data.formats.base import FORMATS
from fedmuscle_flwr.data.formats.hf import HfDisk
from fedmuscle_flwr.data.formats.images import ImageFolder, ImageLabels, ImageMasks
from fedmuscle_flwr.data.formats.plugin import is_plugin
from fedmuscle_flwr.data.formats.tables import CsvTable, JsonlTable, ParquetTable
from fedmuscle_flwr.data.registry import dataset_info, list_datasets, load_private
from tests import datafiles


def spec(dataset: str, options: dict[str, Any], **extra: Any) -> DataSpec:
    return DataSpec.model_validate({"dataset": dataset, "options": options, **extra})


def test_imagefolder_reads_classes_from_folders_lazily(tmp_path: Path) -> None:
    # Prepare
    root = datafiles.image_folder(tmp_path / "xray")
    # Execute
    data = load_private(spec("imagefolder", {"root": str(root)}))
    # Assert: folder names are the label space; images stay files until asked
    assert data.info.class_names == datafiles.CLASSES
    assert data.info.target_kind == "class" and data.info.modality == "image"
    assert (len(data.train), len(data.test)) == (18, 6)
    assert data.train.lazy
    assert np.bincount(data.train.y).tolist() == [6, 6, 6]
    batch = data.train.batch(np.arange(4))
    assert batch.dtype == np.uint8 and batch.shape == (4, 8, 8)
    first_dog = int(np.flatnonzero(data.train.y == 1)[0])
    expected = datafiles.pixels(1, 0)
    assert np.array_equal(data.train.batch(np.array([first_dog]))[0], expected)


def test_imagefolder_without_test_folder_carves_a_seeded_fraction(
    tmp_path: Path,
) -> None:
    # Prepare: root/<class>/* only
    root = datafiles.image_folder(tmp_path / "d", per_class=10, test_per_class=0)
    flat = tmp_path / "flat"
    (root / "train").rename(flat)
    # Execute
    options = {"root": str(flat), "test-fraction": 0.3}
    a = load_private(spec("imagefolder", options))
    b = load_private(spec("imagefolder", options, partition={"seed": 5}))
    # Assert
    assert (len(a.train), len(a.test)) == (21, 9)
    assert np.array_equal(a.test.y, b.test.y)  # the carve does not follow the run


def test_mixed_sizes_and_modes_decode_to_one_shape(tmp_path: Path) -> None:
    # Prepare: a grayscale 8x8, an RGB 12x10 and an RGBA 8x8 image in one class
    root = tmp_path / "mixed"
    datafiles.write_png(root / "a" / "0.png", datafiles.pixels(0, 0))
    datafiles.write_png(
        root / "a" / "1.png", datafiles.pixels(0, 1, size=12, rgb=True)[:10]
    )
    rgba = np.dstack([datafiles.pixels(0, 2, rgb=True), np.full((8, 8), 128, np.uint8)])
    datafiles.write_png(root / "a" / "2.png", rgba)
    for i in range(3):
        datafiles.write_png(root / "b" / f"{i}.png", datafiles.pixels(1, i))
    # Execute
    data = load_private(spec("imagefolder", {"root": str(root), "test-fraction": 0.3}))
    both = np.concatenate(
        [
            data.train.batch(np.arange(len(data.train))),
            data.test.batch(np.arange(len(data.test))),
        ]
    )
    # Assert: one mode (RGB, as not all are gray) at the most common size 8x8
    assert both.shape == (6, 8, 8, 3)


def test_image_size_option_resizes(tmp_path: Path) -> None:
    root = datafiles.image_folder(tmp_path / "r", per_class=2, test_per_class=1)
    data = load_private(spec("imagefolder", {"root": str(root), "image-size": 5}))
    assert data.train.batch(np.arange(2)).shape == (2, 5, 5)


def test_image_labels_gives_multi_hot_targets(tmp_path: Path) -> None:
    # Prepare
    root = tmp_path / "ml"
    rows = []
    for i in range(10):
        datafiles.write_png(root / "img" / f"{i}.png", datafiles.pixels(i % 3, i))
        rows.append(f"img/{i}.png,{'cat|dog' if i % 2 else 'fox'}")
    (root / "labels.csv").write_text("file,labels\n" + "\n".join(rows) + "\n")
    # Execute
    data = load_private(spec("image-labels", {"root": str(root), "test-fraction": 0.2}))
    # Assert
    assert data.info.target_kind == "multilabel"
    assert data.info.class_names == ("cat", "dog", "fox")
    y = np.concatenate([data.train.y, data.test.y])
    assert y.dtype == np.float32 and sorted(y.sum(axis=1).tolist()) == [1] * 5 + [2] * 5


def test_image_masks_read_masks_of_the_same_stems(tmp_path: Path) -> None:
    # Prepare
    root = tmp_path / "seg"
    for split, n in (("train", 6), ("test", 2)):
        for i in range(n):
            datafiles.write_png(
                root / split / "images" / f"s{i}.png", datafiles.pixels(0, i)
            )
            mask = np.zeros((8, 8), np.uint8)
            mask[2:5, 2:5] = 1 + i % 2
            datafiles.write_png(root / split / "masks" / f"s{i}.png", mask)
    # Execute
    data = load_private(spec("image-masks", {"root": str(root)}))
    # Assert
    assert data.info.target_kind == "mask" and data.info.num_classes == 3
    assert data.train.y.shape == (6, 8, 8) and data.train.y.dtype == np.int64
    assert len(data.test) == 2


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_text_tables(tmp_path: Path, suffix: str) -> None:
    # Prepare
    fmt = suffix[1:]
    train = datafiles.text_table(tmp_path / f"train{suffix}", n=30)
    test = datafiles.text_table(tmp_path / f"test{suffix}", n=9)
    # Execute
    data = load_private(spec(fmt, {"train": str(train), "test": str(test)}))
    # Assert
    assert data.info.modality == "text"
    assert data.info.class_names == ("food", "music", "sports")
    assert (len(data.train), len(data.test)) == (30, 9)
    assert data.train.batch(np.array([0]))[0] == "item 0 about sports things"
    assert data.train.y[0] == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_label_lists_make_a_multilabel_text_set(tmp_path: Path, suffix: str) -> None:
    path = datafiles.text_table(tmp_path / f"t{suffix}", multilabel=True)
    data = load_private(spec(suffix[1:], {"path": str(path)}))
    assert data.info.target_kind == "multilabel"
    assert data.info.class_names == ("food", "music", "news", "sports")
    assert (data.train.y.sum(axis=1) == 2).all()


def test_npz_arrays(tmp_path: Path) -> None:
    path = datafiles.npz_file(tmp_path / "a.npz")
    data = load_private(spec("npz", {"path": str(path)}))
    assert data.info.class_names == datafiles.CLASSES
    assert (len(data.train), len(data.test)) == (24, 6)
    assert data.train.x.shape == (24, 8, 8)  # type: ignore[union-attr]


def test_saved_datasets_folder_decodes_images_per_batch(tmp_path: Path) -> None:
    # Prepare
    path = datafiles.hf_folder(tmp_path / "hf")
    # Execute
    data = load_private(spec("hf-disk", {"path": str(path)}))
    # Assert: ClassLabel names are the label space; the images are lazy
    assert data.info.class_names == datafiles.CLASSES
    assert (len(data.train), len(data.test)) == (24, 6)
    assert data.train.lazy
    first = data.train.batch(np.array([0, 1]))
    assert first.shape == (2, 8, 8)
    assert np.array_equal(first[1], datafiles.pixels(1, 1))


def test_plugin_dataset_by_module_callable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    target = datafiles.plugin_module(tmp_path / "plugins")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    # Execute
    data = load_private(spec(target, {"n": 20}))
    # Assert
    assert data.info.class_names == ("dark", "light")
    assert (len(data.train), len(data.test)) == (20, 6)
    assert data.train.batch(np.array([1]))[0, 0, 0] == 60 + 120 + 1
    assert dataset_info(spec(target, {"n": 20})).num_classes == 2


def test_partition_and_budgets_apply_to_files_like_packaged_sets(
    tmp_path: Path,
) -> None:
    # Prepare
    root = datafiles.image_folder(tmp_path / "p", per_class=8)
    options = {"root": str(root)}
    common = {"max-test": 4, "partition": {"num-partitions": 2, "seed": 1}}
    # Execute
    parts = [
        load_private(
            spec(
                "imagefolder",
                options,
                **common | {"partition": {"num-partitions": 2, "index": i, "seed": 1}},
            )
        )
        for i in range(2)
    ]
    val = load_private(spec("imagefolder", options, validation=0.25, per_class=4))
    # Assert: disjoint IID halves; validation carved from train rows
    paths = [set(map(str, p.train.x.paths)) for p in parts]  # type: ignore[union-attr]
    assert not paths[0] & paths[1] and len(paths[0] | paths[1]) == 24
    assert len(parts[0].test) == 4
    assert (len(val.train), len(val.test)) == (9, 3)


def test_formats_are_listed() -> None:
    listed = list_datasets()
    for name in (
        "imagefolder",
        "image-labels",
        "image-masks",
        "csv",
        "jsonl",
        "parquet",
        "npz",
        "hf-disk",
        "textfile",
        "image-captions",
    ):
        assert any(key.startswith(name) for key in listed), name


def test_same_class_names_give_the_same_label_key(tmp_path: Path) -> None:
    # Prepare: two clients' folders with the same classes, one with others
    a = datafiles.image_folder(tmp_path / "a", per_class=2, test_per_class=1)
    b = datafiles.image_folder(tmp_path / "b", per_class=3, test_per_class=1, offset=50)
    c = datafiles.image_folder(
        tmp_path / "c", per_class=2, test_per_class=1, classes=("cat", "dog")
    )
    # Execute
    keys = [
        load_private(spec("imagefolder", {"root": str(r)})).info.label_key
        for r in (a, b, c)
    ]
    # Assert
    assert keys[0] == keys[1] != keys[2]
    assert keys[0].startswith("classes:")
    assert load_private(DataSpec(dataset="digits")).info.label_key == ""


def test_each_format_module_registers_its_class() -> None:
    registered = {
        "imagefolder": ImageFolder, "image-labels": ImageLabels, "image-masks": ImageMasks,
        "csv": CsvTable, "jsonl": JsonlTable, "parquet": ParquetTable,
        "npz": NpzArrays, "hf-disk": HfDisk,
    }  # fmt: skip
    assert {name: FORMATS[name] for name in registered} == registered
    assert all(FORMATS[n].name == n for n in registered)
    assert is_plugin("pkg.mod:make") and not is_plugin("imagefolder")
