"""Samples decoded on demand: image files, and rows of any indexable source.

:class:`ImageFiles` holds paths only (about 100 bytes a sample), so a client
with 50,000 images at 224 px keeps a few MB of metadata and decodes one batch
at a time (``bench/data_memory.py`` measures it). :class:`IndexedSamples`
wraps anything indexable by an int (an on-disk ``datasets`` table, a plugin
``Dataset``) with a function that turns one row into a raw sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedmuscle_flwr.data.base import LazySamples, Modality, RawBatch
from fedmuscle_flwr.data.decode import ImageMode, ImageScan, decode_image, decode_many


def _rows(indices: np.ndarray, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"indices must be a 1-D integer array, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"indices outside [0, {n})")
    return idx.astype(np.int64, copy=False)


class ImageFiles(LazySamples):
    """Image files of one mode and size, decoded when a batch is asked for.

    Parameters
    ----------
    paths : Sequence[Path]
        The files, in sample order.
    mode : ImageMode
        ``L`` (grayscale, (H, W)) or ``RGB`` ((H, W, 3)).
    size : tuple[int, int]
        (width, height) every image is decoded to.
    origin : str
        Where the files are (a folder), for messages.
    stats : ImageScan | None
        What the headers said (sizes, modes, skipped files), for ``data check``.
    """

    modality: Modality = "image"

    def __init__(
        self,
        paths: Sequence[Path],
        mode: ImageMode,
        size: tuple[int, int],
        origin: str,
        stats: ImageScan | None = None,
    ) -> None:
        self.paths = list(paths)
        self.mode: ImageMode = mode
        self.size = size
        self.origin = origin
        self.stats = stats

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: np.ndarray) -> ImageFiles:
        """The files ``indices`` (in that order), undecoded."""
        idx = _rows(indices, len(self))
        paths = [self.paths[i] for i in idx]
        return ImageFiles(paths, self.mode, self.size, self.origin, self.stats)

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """Shape: n indices -> uint8 (n, H, W) or (n, H, W, 3)."""
        idx = _rows(indices, len(self))
        return decode_many([self.paths[i] for i in idx], self.mode, self.size)

    def decode_one(self, index: int) -> np.ndarray:
        """Sample ``index``: uint8 (H, W) or (H, W, 3)."""
        return decode_image(self.paths[index], self.mode, self.size)


class IndexedSamples(LazySamples):
    """Rows of an int-indexable ``source``, each turned into a raw sample.

    Parameters
    ----------
    source : Any
        Supports ``len()`` and ``source[i]`` (a ``datasets.Dataset``, a torch
        ``Dataset``).
    convert : Callable[[Any], np.ndarray | str]
        Row -> uint8 image (H, W[, 3]) or string.
    modality : Modality
        What ``convert`` returns.
    origin : str
        Where the source comes from, for messages.
    rows : np.ndarray | None
        The rows of ``source`` in this view (``None``: all of them).
    """

    def __init__(
        self,
        source: Any,
        convert: Callable[[Any], np.ndarray | str],
        modality: Modality,
        origin: str,
        rows: np.ndarray | None = None,
    ) -> None:
        self.source = source
        self.convert = convert
        self.modality = modality
        self.origin = origin
        self.rows = np.arange(len(source), dtype=np.int64) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, indices: np.ndarray) -> IndexedSamples:
        """The rows ``indices`` of this view (in that order), undecoded."""
        idx = _rows(indices, len(self))
        return IndexedSamples(
            self.source, self.convert, self.modality, self.origin, self.rows[idx]
        )

    def decode(self, indices: np.ndarray) -> RawBatch:
        """Shape: n indices -> uint8 (n, H, W[, 3]) or n strings."""
        idx = _rows(indices, len(self))
        samples = [self.convert(self.source[int(self.rows[i])]) for i in idx]
        if self.modality == "text":
            return [str(s) for s in samples]
        return _stack(samples, self.origin)


def _stack(images: list[Any], origin: str) -> np.ndarray:
    shapes = {np.shape(a) for a in images}
    if len(shapes) > 1:
        raise ValueError(
            f"{origin}: images of one batch differ in shape {sorted(shapes)}; "
            "give the source one size (options.image-size)"
        )
    if not images:
        return np.zeros((0, 1, 1), dtype=np.uint8)
    return np.stack(images).astype(np.uint8, copy=False)
