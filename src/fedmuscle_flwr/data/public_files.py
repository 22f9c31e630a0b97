"""Public sets read from a participant's own files.

Three layouts, named by ``public.dataset`` (``options`` say where):

* ``imagefolder``: every image under ``root`` (recursive), unlabelled; the
  sorted relative file names define the order;
* ``textfile``: one sample a line of the UTF-8 file ``path`` (blank lines
  skipped);
* ``image-captions``: image-caption pairs, the CSV ``captions`` (columns
  ``file``, ``caption``; ``file`` relative to ``root``) in row order.

Images are decoded on demand (:class:`~fedmuscle_flwr.data.lazy.ImageFiles`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from fedmuscle_flwr.config.schema import _Schema, validate
from fedmuscle_flwr.data.base import LazySamples, Modality, PublicData, RawBatch
from fedmuscle_flwr.data.decode import (
    DataFileError,
    ImageMode,
    OnBad,
    image_files,
    scan_images,
)
from fedmuscle_flwr.data.lazy import ImageFiles
from fedmuscle_flwr.data.tables import read_table


class ImageOptions(_Schema):
    """How image files become samples: one mode, one size, bad files."""

    image_size: int = Field(0, ge=0, description="side S; 0 = the most common size")
    mode: Literal["auto", "L", "RGB"] = "auto"
    on_bad: OnBad = "refuse"


class ImageFolderOptions(ImageOptions):
    """``imagefolder`` public set: every image under ``root``."""

    root: Path


class TextFileOptions(_Schema):
    """``textfile`` public set: one sample a line of ``path``."""

    path: Path


class CaptionOptions(ImageOptions):
    """``image-captions`` public set: images under ``root`` + a captions CSV."""

    root: Path
    captions: Path = Path("captions.csv")
    file_column: str = "file"
    caption_column: str = "caption"


def image_samples(paths: list[Path], opts: ImageOptions, origin: str) -> ImageFiles:
    """Check the headers of ``paths`` and fix one mode and size for them all."""
    scan = scan_images(paths, opts.on_bad)
    if not scan.paths:
        raise DataFileError(f"{origin}: no readable image files")
    mode: ImageMode = scan.common_mode() if opts.mode == "auto" else opts.mode
    side = opts.image_size
    size = (side, side) if side else scan.common_size()
    return ImageFiles(scan.paths, mode, size, origin, scan)


class FilePublicData(PublicData):
    """A public set of files: lazy images and/or in-memory texts, row-aligned."""

    def __init__(
        self,
        name: str,
        origin: str,
        images: LazySamples | None = None,
        texts: list[str] | None = None,
    ) -> None:
        if images is None and texts is None:
            raise ValueError(f"public set {name!r} needs images or texts")
        if images is not None and texts is not None and len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} captions")
        self.name = name
        self.origin = origin
        self._images = images
        self._texts = texts
        present: set[Modality] = set()
        if images is not None:
            present.add("image")
        if texts is not None:
            present.add("text")
        self.modalities = frozenset(present)

    def __len__(self) -> int:
        return len(self._images) if self._images is not None else len(self._texts or ())

    def _check(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"indices must be a 1-D integer array, got {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices outside [0, {len(self)}) of {self.name!r}")
        return idx.astype(np.int64, copy=False)

    def batch(self, indices: np.ndarray, modality: Modality) -> RawBatch:
        """Raw samples ``indices`` in ``modality`` (decoded now)."""
        idx = self._check(indices)
        if modality == "image" and self._images is not None:
            return self._images.decode(idx)
        if modality == "text" and self._texts is not None:
            return [self._texts[i] for i in idx.tolist()]
        raise ValueError(
            f"public set {self.name!r} has no {modality!r} modality "
            f"(it has {sorted(self.modalities)})"
        )

    def subset(self, indices: np.ndarray) -> FilePublicData:
        """Rows ``indices`` (in that order), still undecoded."""
        idx = self._check(indices)
        images = self._images.subset(idx) if self._images is not None else None
        texts = None if self._texts is None else [self._texts[i] for i in idx.tolist()]
        return FilePublicData(self.name, self.origin, images, texts)


def _imagefolder(options: Mapping[str, Any]) -> FilePublicData:
    opts = validate(ImageFolderOptions, options, "public.options of 'imagefolder'")
    root = opts.root.expanduser()
    paths = image_files(root)
    if not paths:
        raise DataFileError(f"{root}: no image files (suffixes .png, .jpg, ...)")
    origin = f"imagefolder {root}"
    return FilePublicData("imagefolder", origin, image_samples(paths, opts, origin))


def _textfile(options: Mapping[str, Any]) -> FilePublicData:
    opts = validate(TextFileOptions, options, "public.options of 'textfile'")
    path = opts.path.expanduser()
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise DataFileError(f"{path}: no non-blank lines")
    return FilePublicData("textfile", f"textfile {path}", texts=texts)


def _captions(options: Mapping[str, Any]) -> FilePublicData:
    opts = validate(CaptionOptions, options, "public.options of 'image-captions'")
    root = opts.root.expanduser()
    if not root.is_dir():
        raise DataFileError(f"{root}: no such folder")
    csv = opts.captions if opts.captions.is_absolute() else root / opts.captions
    table = read_table(csv, (opts.file_column, opts.caption_column))
    paths = [root / str(f) for f in table[opts.file_column]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataFileError(
            f"{csv}: {len(missing)} listed images missing, e.g. {missing[0]}"
        )
    origin = f"image-captions {root} + {csv.name}"
    images = image_samples(paths, opts, origin)
    if len(images) != len(paths):
        kept = set(map(str, images.paths))
        texts = [
            str(c)
            for p, c in zip(paths, table[opts.caption_column], strict=True)
            if str(p) in kept
        ]
    else:
        texts = [str(c) for c in table[opts.caption_column]]
    return FilePublicData("image-captions", origin, images, texts)


#: public-set layouts read from files: name -> (modalities, loader)
PUBLIC_FORMATS: dict[
    str, tuple[frozenset[Modality], Callable[[Mapping[str, Any]], FilePublicData]]
] = {
    "imagefolder": (frozenset({"image"}), _imagefolder),
    "textfile": (frozenset({"text"}), _textfile),
    "image-captions": (frozenset({"image", "text"}), _captions),
}
