"""``fedmuscle data export``: packaged data written the way a user keeps their own.

* labelled images (class targets) -> ``imagefolder``: ``out/train/<class>/*.png``,
  ``out/test/<class>/*.png``; multi-label -> ``image-labels`` (``images/`` +
  ``labels.csv``); masks -> ``image-masks`` (``train|test/images|masks/``);
* labelled texts -> ``csv``: ``out/train.csv`` and ``out/test.csv``
  (``text``, ``label``; multi-label joined by ``|``);
* public images -> ``imagefolder`` (``out/<i>.png``), texts -> ``textfile``
  (``out/public.txt``), pairs -> ``image-captions`` (PNGs + ``captions.csv``).

A public set is written whole, in its pool order, so reading it back with the
same ``public.size`` gives the packaged set's samples, order and fingerprint.
Everything is written into a temporary sibling folder that replaces ``out``
only when complete: a failed export leaves nothing half-written.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from fedmuscle_flwr.data.base import DatasetInfo, PrivateData, PublicData, Split
from fedmuscle_flwr.data.decode import DataFileError

#: samples decoded at a time while writing
EXPORT_BATCH = 512


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary folder next to ``out`` that becomes ``out`` on success.

    Raises
    ------
    DataFileError
        ``out`` exists and is not an empty folder.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataFileError(f"{out}: exists and is not empty; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _folder_name(name: str) -> str:
    """A class name usable as a folder name (``T-shirt/top`` -> ``T-shirt-top``)."""
    return name.replace("/", "-").replace(os.sep, "-").strip() or "_"


def _batches(n: int) -> Iterator[np.ndarray]:
    for start in range(0, n, EXPORT_BATCH):
        yield np.arange(start, min(start + EXPORT_BATCH, n))


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _images_by_class(split: Split, folder: Path, names: list[str]) -> None:
    for idx in _batches(len(split)):
        for row, image in zip(idx, split.batch(idx), strict=True):
            label = names[int(split.y[row])]
            _save(folder / label / f"{row:05d}.png", image)


def _images_with_labels(split: Split, folder: Path, names: list[str]) -> None:
    rows = []
    for idx in _batches(len(split)):
        for row, image in zip(idx, split.batch(idx), strict=True):
            _save(folder / "images" / f"{row:05d}.png", image)
            labels = [names[k] for k in np.flatnonzero(split.y[row] > 0)]
            rows.append((f"images/{row:05d}.png", "|".join(labels)))
    _write_csv(folder / "labels.csv", ("file", "labels"), rows)


def _images_with_masks(split: Split, folder: Path, names: list[str]) -> None:
    if len(names) > 256:
        raise DataFileError("masks of more than 256 classes do not fit 8-bit PNGs")
    for idx in _batches(len(split)):
        for row, image in zip(idx, split.batch(idx), strict=True):
            _save(folder / "images" / f"{row:05d}.png", image)
            mask = np.asarray(split.y[row], dtype=np.uint8)
            _save(folder / "masks" / f"{row:05d}.png", mask)


def _write_csv(
    path: Path, header: tuple[str, ...], rows: Sequence[Sequence[str]]
) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _texts(split: Split, path: Path, info: DatasetInfo) -> None:
    texts = split.batch(np.arange(len(split)))
    names = list(info.class_names)
    if info.target_kind == "multilabel":
        labels = ["|".join(names[k] for k in np.flatnonzero(y > 0)) for y in split.y]
    else:
        labels = [names[int(y)] for y in split.y]
    _write_csv(path, ("text", "label"), list(zip(map(str, texts), labels, strict=True)))


Writer = Callable[[Split, Path, list[str]], None]
_IMAGE_WRITERS: dict[str, tuple[str, Writer]] = {
    "class": ("imagefolder", _images_by_class),
    "multilabel": ("image-labels", _images_with_labels),
    "mask": ("image-masks", _images_with_masks),
}


def export_private(data: PrivateData, out: Path) -> str:
    """Write a client's train/test splits under ``out``; returns the format name."""
    info = data.info
    names = list(info.class_names) or [str(i) for i in range(info.num_classes)]
    if info.target_kind == "class":  # the names become folder names
        names = [_folder_name(n) for n in names]
    if len(set(names)) != len(names):
        raise DataFileError(f"{info.name}: class names collide as folder names")
    with staged(out) as tmp:
        if info.modality == "text":
            _texts(data.train, tmp / "train.csv", info)
            _texts(data.test, tmp / "test.csv", info)
            return "csv"
        fmt, write = _IMAGE_WRITERS[info.target_kind]
        for split_name, split in (("train", data.train), ("test", data.test)):
            folder = tmp / split_name
            write(split, folder, names)
        if fmt == "image-labels":  # one table at the root, with a split column
            _merge_label_tables(tmp)
    return fmt


def _merge_label_tables(root: Path) -> None:
    rows = []
    for split_name in ("train", "test"):
        with (root / split_name / "labels.csv").open(encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader)
            rows += [(f"{split_name}/{f}", labels, split_name) for f, labels in reader]
        (root / split_name / "labels.csv").unlink()
    _write_csv(root / "labels.csv", ("file", "labels", "split"), rows)


def export_public(pool: PublicData, out: Path) -> str:
    """Write a whole public pool under ``out`` in its order; returns the layout name."""
    n = len(pool)
    width = max(5, len(str(n)))
    with staged(out) as tmp:
        if pool.modalities == frozenset({"text"}):
            texts = pool.batch(np.arange(n), "text")
            lines = [str(t).replace("\n", " ") for t in texts]
            (tmp / "public.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            return "textfile"
        rows = []
        paired = "text" in pool.modalities
        for idx in _batches(n):
            images = np.asarray(pool.batch(idx, "image"))
            captions = pool.batch(idx, "text") if paired else []
            for k, row in enumerate(idx):
                name = f"{row:0{width}d}.png"
                _save(tmp / name, images[k])
                if paired:
                    rows.append((name, str(captions[k])))
        if rows:
            _write_csv(tmp / "captions.csv", ("file", "caption"), rows)
            return "image-captions"
    return "imagefolder"
