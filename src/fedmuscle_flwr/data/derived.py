"""Tasks derived from Fashion-MNIST: multi-label mosaics and segmentation.

Both are generated deterministically (seeded) from the *private* Fashion-MNIST
train split (the public hold-out is never used) and its test split, and cached as
``.npz`` under ``cache_dir()/derived`` keyed by :data:`DERIVED_VERSION`.

* ``fashion-mnist-mosaic``: 2×2 mosaics (56×56) of random items; the target is
  the multi-hot (10,) vector of the classes present. 12,000 / 2,000.
* ``fashion-mnist-seg``: 1 to 3 items pasted at random positions on a 48×48
  black canvas, later items on top; the mask is ``class + 1`` where the pasted
  pixel is above :data:`FOREGROUND_THRESHOLD`, else 0 (background), so there are
  11 classes. 8,000 / 1,500. Masks are kept uint8 here (``load_private`` returns
  int64 for the client's share only).

Each bundle also stores ``items``: the source rows (and positions) of every
sample, so tests can check targets against the pasted items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from fedmuscle_flwr.data.base import DatasetInfo, LabelledData, Split
from fedmuscle_flwr.data.cache import Arrays, cache_dir, cached_arrays
from fedmuscle_flwr.data.images import FASHION_CLASSES, load_fashion_mnist

#: bump when a builder below changes: old cache files are then ignored
DERIVED_VERSION = "1"
DERIVED_SEED = 0
MOSAIC_SIZES = (12_000, 2_000)
SEG_SIZES = (8_000, 1_500)
SEG_CANVAS = 48
SEG_MAX_ITEMS = 3
#: pixels above this value belong to the pasted item
FOREGROUND_THRESHOLD = 16
_ITEM = 28

MOSAIC_INFO = DatasetInfo(
    "fashion-mnist-mosaic", "image", "multilabel", 10, FASHION_CLASSES
)
SEG_INFO = DatasetInfo(
    "fashion-mnist-seg", "image", "mask", 11, ("background", *FASHION_CLASSES)
)


def make_mosaics(
    images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator
) -> Arrays:
    """``n`` 2×2 mosaics of random items.

    Returns
    -------
    Arrays
        ``x`` uint8 (n, 56, 56); ``y`` uint8 multi-hot (n, 10); ``items`` int64
        (n, 4) source rows in tile order (top-left, top-right, bottom-left, ...).
    """
    items = rng.integers(0, len(images), size=(n, 4))
    tiles = images[items].reshape(n, 2, 2, _ITEM, _ITEM)
    x = tiles.transpose(0, 1, 3, 2, 4).reshape(n, 2 * _ITEM, 2 * _ITEM)
    y = np.zeros((n, 10), dtype=np.uint8)
    y[np.arange(n)[:, None], labels[items]] = 1
    return {"x": np.ascontiguousarray(x), "y": y, "items": items}


def make_segmentation(
    images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator
) -> Arrays:
    """``n`` canvases with 1 to :data:`SEG_MAX_ITEMS` pasted items and masks.

    Returns
    -------
    Arrays
        ``x`` uint8 (n, C, C); ``y`` uint8 masks (n, C, C) in 0..10; ``items``
        int64 (n, SEG_MAX_ITEMS, 3) rows ``(source row, top, left)`` in paste
        order, ``-1`` for unused slots.
    """
    side = SEG_CANVAS
    counts = rng.integers(1, SEG_MAX_ITEMS + 1, size=n)
    sources = rng.integers(0, len(images), size=(n, SEG_MAX_ITEMS))
    corners = rng.integers(0, side - _ITEM + 1, size=(n, SEG_MAX_ITEMS, 2))
    x = np.zeros((n, side, side), dtype=np.uint8)
    y = np.zeros((n, side, side), dtype=np.uint8)
    items = np.full((n, SEG_MAX_ITEMS, 3), -1, dtype=np.int64)
    for i in range(n):
        for k in range(counts[i]):
            src, (top, left) = sources[i, k], corners[i, k]
            item = images[src]
            fg = item > FOREGROUND_THRESHOLD
            window = (slice(top, top + _ITEM), slice(left, left + _ITEM))
            x[i][window][fg] = item[fg]
            y[i][window][fg] = labels[src] + 1
            items[i, k] = (src, top, left)
    return {"x": x, "y": y, "items": items}


@dataclass(frozen=True)
class _Recipe:
    info: DatasetInfo
    make: Callable[[np.ndarray, np.ndarray, int, np.random.Generator], Arrays]
    sizes: tuple[int, int]


_MOSAIC = _Recipe(MOSAIC_INFO, make_mosaics, MOSAIC_SIZES)
_SEG = _Recipe(SEG_INFO, make_segmentation, SEG_SIZES)


def _build(recipe: _Recipe) -> Arrays:
    fashion = load_fashion_mnist()
    out: Arrays = {}
    splits = (("train", fashion.train), ("test", fashion.test))
    for split_id, ((prefix, split), n) in enumerate(
        zip(splits, recipe.sizes, strict=True)
    ):
        rng = np.random.default_rng([DERIVED_SEED, split_id])
        arrays = recipe.make(np.asarray(split.x), split.y, n, rng)
        out.update({f"{prefix}_{key}": value for key, value in arrays.items()})
    return out


@cache
def _bundle(recipe: _Recipe, root: Path) -> Arrays:
    return cached_arrays(recipe.info.name, DERIVED_VERSION, lambda: _build(recipe))


def mosaic_bundle() -> Arrays:
    """All arrays of the mosaic task (``train_x``, ``train_y``, ``train_items``...)."""
    return _bundle(_MOSAIC, cache_dir())


def segmentation_bundle() -> Arrays:
    """All arrays of the segmentation task (``train_x``, ``train_y``, ...)."""
    return _bundle(_SEG, cache_dir())


def _labelled(arrays: Arrays, info: DatasetInfo) -> LabelledData:
    train = Split(arrays["train_x"], arrays["train_y"])
    return LabelledData(info, train, Split(arrays["test_x"], arrays["test_y"]))


def load_mosaic() -> LabelledData:
    """Fashion-MNIST mosaics: multi-hot targets (uint8 here; float32 via registry)."""
    return _labelled(mosaic_bundle(), MOSAIC_INFO)


def load_segmentation() -> LabelledData:
    """Fashion-MNIST segmentation canvases: uint8 masks in 0..10."""
    return _labelled(segmentation_bundle(), SEG_INFO)
