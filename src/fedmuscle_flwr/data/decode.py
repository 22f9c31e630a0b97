"""Image files: finding them, checking their headers, decoding one to uint8.

Pillow does the reading. A dataset of files has one *mode* (``L``: grayscale
(H, W), ``RGB``: (H, W, 3)) and one *size*: images of another mode are
converted and images of another size resized (bilinear) when decoded, so a
batch stacks; each model's preprocessing then resizes to its own input size.

A zero-byte or unreadable file is refused with its name (``on_bad="refuse"``,
the default) or skipped and counted (``on_bad="skip"``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

#: file suffixes read as images (lower case; torchvision's ``IMG_EXTENSIONS``)
IMAGE_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
ImageMode = Literal["L", "RGB"]
OnBad = Literal["refuse", "skip"]
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


class DataFileError(ValueError):
    """A data file or folder is missing, empty, unreadable or inconsistent."""


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path."""
    if not folder.is_dir():
        raise DataFileError(f"{folder}: no such folder")
    found = [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


@dataclass
class ImageScan:
    """What the headers of a list of image files say."""

    paths: list[Path]
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)

    def common_size(self) -> tuple[int, int]:
        """The most frequent (width, height)."""
        return self.sizes.most_common(1)[0][0]

    def common_mode(self) -> ImageMode:
        """``L`` when every image is grayscale, else ``RGB``."""
        return "L" if set(self.modes) <= _GRAY_MODES else "RGB"


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and mode from the file's header; raises on a bad file."""
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: zero-byte image file")
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataFileError(f"{path}: not a readable image ({exc})") from None


def scan_images(paths: Iterable[Path], on_bad: OnBad = "refuse") -> ImageScan:
    """Read the headers of ``paths``; refuse or skip (and count) bad files.

    Raises
    ------
    DataFileError
        The first zero-byte or unreadable file with ``on_bad="refuse"``.
    """
    scan = ImageScan(paths=[])
    for path in paths:
        try:
            size, mode = _header(path)
        except DataFileError as exc:
            if on_bad == "refuse":
                raise DataFileError(
                    f"{exc} (set options.on-bad = 'skip' to skip such files)"
                ) from None
            scan.skipped.append(str(path))
            continue
        scan.paths.append(path)
        scan.sizes[size] += 1
        scan.modes[mode] += 1
    if scan.skipped:
        logger.warning("skipped %d unreadable image files", len(scan.skipped))
    return scan


def decode_image(path: Path, mode: ImageMode, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (H, W) for ``L`` or (H, W, 3) for ``RGB``, at ``size``.

    ``size`` is (width, height). Transparent pixels are composed on white.
    """
    try:
        with Image.open(path) as file:
            img: Image.Image = file
            img.load()
            if img.mode in {"RGBA", "LA", "P", "PA"}:
                img = img.convert("RGBA")
                white = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, img)
            out = img.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataFileError(f"{path}: cannot decode image ({exc})") from None
    if out.size != size:
        out = out.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def decode_many(
    paths: Sequence[Path], mode: ImageMode, size: tuple[int, int]
) -> np.ndarray:
    """Shape: n files -> uint8 (n, H, W) or (n, H, W, 3)."""
    height, width = size[1], size[0]
    shape = (len(paths), height, width) + ((3,) if mode == "RGB" else ())
    out = np.empty(shape, dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_image(path, mode, size)
    return out
