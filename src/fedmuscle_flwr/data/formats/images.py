"""Image datasets from folders: classes, multi-label and segmentation.

* ``imagefolder``: torchvision's ``ImageFolder`` layout, ``root/train/<class>/*``
  and ``root/test/<class>/*`` (or ``root/<class>/*`` and a carved test split);
  folder names are the classes;
* ``image-labels``: images under ``root`` plus a table (CSV, JSON, JSONL or
  Parquet) of ``file`` and ``labels`` (a list, or a string split at
  ``separator``); multi-hot targets; an optional ``split`` column (train/test);
* ``image-masks``: ``root/[train|test/]images/*`` and mask PNGs of the same stems
  under ``.../masks/`` whose pixel values are class ids (0 = background).

Images stay files (decoded per batch); masks are read into memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fedmuscle_flwr.data.base import LabelledData, Split
from fedmuscle_flwr.data.decode import DataFileError, image_files
from fedmuscle_flwr.data.formats.base import (
    FORMATS,
    FileFormat,
    SplitOptions,
    assemble,
    class_ids,
    label_space,
    make_info,
    multi_hot,
)
from fedmuscle_flwr.data.public_files import ImageOptions, image_samples
from fedmuscle_flwr.data.tables import read_table


class FolderOptions(SplitOptions, ImageOptions):
    """Where the images are, and how they are decoded."""

    root: Path


def _root(opts: FolderOptions) -> Path:
    root = opts.root.expanduser()
    if not root.is_dir():
        raise DataFileError(f"{root}: no such folder")
    return root


def _class_folders(folder: Path) -> list[tuple[str, list[Path]]]:
    """(class name, image files) of every subfolder, sorted; an empty one refused."""
    from torchvision.datasets.folder import find_classes

    try:
        names, _ = find_classes(str(folder))
    except FileNotFoundError:
        raise DataFileError(
            f"{folder}: no class subfolders (<class>/<image>)"
        ) from None
    out = []
    for name in names:
        files = image_files(folder / name)
        if not files:
            raise DataFileError(f"{folder / name}: empty class folder (no image files)")
        out.append((name, files))
    return out


@FORMATS.register("imagefolder")
class ImageFolder(FileFormat):
    """Images in one subfolder per class (torchvision ``ImageFolder`` layout)."""

    summary = "images, one subfolder per class: root/train/<class>/*, root/test/..."
    Options = FolderOptions

    @classmethod
    def load(cls, opts: Any) -> LabelledData:
        """Read ``root``; the train folders' names are the label space."""
        root = _root(opts)
        train_dir = root / "train" if (root / "train").is_dir() else root
        train = _class_folders(train_dir)
        test = _class_folders(root / "test") if (root / "test").is_dir() else None
        names = label_space([n for n, _ in train], opts.classes, str(train_dir))
        if test is not None:  # test classes must be train classes
            label_space([n for n, _ in test], names, str(root / "test"))
        origin = f"imagefolder {root}"
        label_of = {p: n for n, files in [*train, *(test or [])] for p in files}
        train_paths = {p for _, files in train for p in files}
        files = image_samples(list(label_of), opts, origin)
        ids = class_ids([label_of[p] for p in files.paths], names, origin)
        is_train = np.asarray([p in train_paths for p in files.paths])
        whole = Split(files, ids)
        info = make_info(origin, "image", "class", names)
        test_split = whole.take(np.flatnonzero(~is_train)) if test else None
        train_split = whole.take(np.flatnonzero(is_train))
        return assemble(info, train_split, test_split, opts.test_fraction)


class LabelsOptions(FolderOptions):
    """``image-labels``: the images' folder plus a labels table."""

    labels: Path = Path("labels.csv")
    file_column: str = "file"
    labels_column: str = "labels"
    separator: str = "|"
    split_column: str = ""


def _label_list(value: object, separator: str) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    text = "" if value is None else str(value)
    return [part.strip() for part in text.split(separator) if part.strip()]


@FORMATS.register("image-labels")
class ImageLabels(FileFormat):
    """Images plus a table of labels per image: multi-label targets."""

    summary = "images + a CSV/JSON/JSONL/Parquet of file -> labels (multi-label)"
    Options = LabelsOptions

    @classmethod
    def load(cls, opts: Any) -> LabelledData:
        """Read the table, then the images it names (in the table's order)."""
        root = _root(opts)
        table_path = opts.labels if opts.labels.is_absolute() else root / opts.labels
        columns = [opts.file_column, opts.labels_column]
        if opts.split_column:
            columns.append(opts.split_column)
        table = read_table(table_path, columns)
        paths = [root / str(f) for f in table[opts.file_column]]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataFileError(f"{table_path}: image {missing[0]} does not exist")
        lists = [_label_list(v, opts.separator) for v in table[opts.labels_column]]
        origin = f"image-labels {root}"
        names = label_space([c for ls in lists for c in ls], opts.classes, origin)
        files = image_samples(paths, opts, origin)
        row_of = {p: i for i, p in enumerate(paths)}
        rows = np.asarray([row_of[p] for p in files.paths], dtype=np.int64)
        y = multi_hot([lists[r] for r in rows], names, origin)
        whole = Split(files, y)
        info = make_info(origin, "image", "multilabel", names)
        if not opts.split_column:
            return assemble(info, whole, None, opts.test_fraction)
        split = np.asarray([str(table[opts.split_column][r]) for r in rows])
        unknown = sorted(set(split) - {"train", "test"})
        if unknown:
            raise DataFileError(
                f"{table_path}: column {opts.split_column!r} holds {unknown[0]!r}; "
                "use 'train' or 'test'"
            )
        test = whole.take(np.flatnonzero(split == "test"))
        return assemble(info, whole.take(np.flatnonzero(split == "train")), test, 0.2)


def _mask_pairs(folder: Path) -> tuple[list[Path], list[Path]]:
    images = image_files(folder / "images")
    if not images:
        raise DataFileError(f"{folder / 'images'}: no image files")
    masks = {p.stem: p for p in image_files(folder / "masks")}
    if not masks:
        raise DataFileError(f"{folder / 'masks'}: no mask files")
    lacking = [p for p in images if p.stem not in masks]
    if lacking:
        raise DataFileError(
            f"{lacking[0]}: no mask of the same stem in {folder / 'masks'}"
        )
    return images, [masks[p.stem] for p in images]


def _read_masks(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    """Shape: n mask files -> int64 (n, H, W) class ids (nearest resize to size)."""
    out = np.empty((len(paths), size[1], size[0]), dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                mask = img if img.mode in {"L", "P", "I", "I;16"} else img.convert("L")
                if mask.size != size:
                    mask = mask.resize(size, Image.Resampling.NEAREST)
                out[i] = np.asarray(mask, dtype=np.int64)
        except OSError as exc:
            raise DataFileError(f"{path}: cannot decode mask ({exc})") from None
    return out


@FORMATS.register("image-masks")
class ImageMasks(FileFormat):
    """Images plus mask PNGs of the same stems: segmentation targets."""

    summary = "images/ + masks/ of the same stems, pixel value = class id"
    Options = FolderOptions

    @classmethod
    def load(cls, opts: Any) -> LabelledData:
        """Read ``root/[train/]images`` + ``masks`` (and ``root/test/...``)."""
        root = _root(opts)
        if (root / "images").is_dir() and (root / "masks").is_dir():
            parts = {"train": _mask_pairs(root)}
        elif (root / "train").is_dir():
            parts = {"train": _mask_pairs(root / "train")}
            if (root / "test").is_dir():
                parts["test"] = _mask_pairs(root / "test")
        else:
            raise DataFileError(
                f"{root}: expected images/ and masks/ (or train/, test/)"
            )
        origin = f"image-masks {root}"
        images, masks = parts["train"]
        test_images, test_masks = parts.get("test", ([], []))
        files = image_samples(images + test_images, opts, origin)
        if files.stats is not None and files.stats.skipped:
            raise DataFileError(f"{origin}: unreadable images with masks are refused")
        y = _read_masks(masks + test_masks, files.size)
        k = int(y.max()) + 1
        found = [str(i) for i in range(k)]
        names = list(opts.classes) if opts.classes else found
        if len(names) < k:
            raise DataFileError(
                f"{origin}: mask value {k - 1} is not in the label space "
                f"options.classes = {names}"
            )
        info = make_info(origin, "image", "mask", names)
        whole = Split(files, y)
        n = len(images)
        if not test_images:
            return assemble(info, whole, None, opts.test_fraction)
        test = whole.take(np.arange(n, len(whole)))
        return assemble(info, whole.take(np.arange(n)), test, opts.test_fraction)
