"""One sample of a foreign source (PIL image, array, tensor, string) -> a raw sample.

Sources that are not files of ours (a ``datasets`` table, a plugin ``Dataset``)
yield samples in their own types. :func:`sample_converter` fixes, from the first
sample, one mode and one size for the whole source (images of another size are
resized, as image folders are), so every batch stacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from fedmuscle_flwr.data.base import Modality
from fedmuscle_flwr.data.decode import DataFileError

Converter = Callable[[Any], np.ndarray | str]


def to_pil(sample: Any, origin: str) -> Image.Image:
    """A PIL image from a PIL image, a uint8 array or a CHW/HW tensor."""
    if isinstance(sample, Image.Image):
        return sample
    array = sample.numpy() if hasattr(sample, "numpy") else np.asarray(sample)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]  # (H, W, 1) -> (H, W)
    if array.dtype != np.uint8:
        if array.dtype.kind == "f" and array.size and array.max() <= 1.0:
            array = np.clip(array * 255.0 + 0.5, 0, 255)
        array = array.astype(np.uint8)
    if array.ndim not in (2, 3):
        raise DataFileError(f"{origin}: an image sample has shape {array.shape}")
    return Image.fromarray(array)


def sample_converter(
    modality: Modality, first: Any, image_size: int, origin: str
) -> Converter:
    """The converter of every sample of a source whose first sample is ``first``.

    Text: ``str``. Images: ``L`` if the first is grayscale else ``RGB``, at
    ``image_size`` (0: the first image's size), as uint8 (H, W[, 3]).
    """
    if modality == "text":

        def text(sample: Any) -> str:
            if not isinstance(sample, str):
                raise DataFileError(
                    f"{origin}: a text sample is {type(sample).__name__}"
                )
            return sample

        return text
    head = to_pil(first, origin)
    mode = "L" if head.mode in {"1", "L", "I", "I;16", "F"} else "RGB"
    size = (image_size, image_size) if image_size else head.size

    def image(sample: Any) -> np.ndarray:
        img = to_pil(sample, origin).convert(mode)
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)

    return image
