"""The in-memory public set: raw images, texts or image–caption pairs.

Image public sets return uint8 images: grayscale (N, H, W) for the image-only
sets (``fashion-mnist-heldout``, ``mnist-5k-public``, ``digits-public``: 28×28)
and RGB (N, 64, 64, 3) for the image–caption sets. ``batch(idx, "text")`` of a
pair set returns the captions of the *same* pairs as ``batch(idx, "image")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedmuscle_flwr.data.base import Modality, PublicData, RawBatch


class InMemoryPublicData(PublicData):
    """A public set held in memory; indices select rows of every modality.

    Parameters
    ----------
    name : str
        The public set's registry name.
    images : np.ndarray | None
        uint8 (N, H, W) or (N, H, W, 3), or ``None`` for a text-only set.
    texts : Sequence[str] | None
        N strings (captions of the images when both are given), or ``None``.
    origin : str
        Where the samples come from (shown when fingerprints differ).
    """

    def __init__(
        self,
        name: str,
        images: np.ndarray | None = None,
        texts: Sequence[str] | None = None,
        origin: str = "",
    ) -> None:
        if images is None and texts is None:
            raise ValueError(f"public set {name!r} needs images or texts")
        if images is not None and images.dtype != np.uint8:
            raise ValueError(f"public images must be uint8, got {images.dtype}")
        if images is not None and texts is not None and len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} captions")
        self.name = name
        self.origin = origin or f"packaged set {name!r}"
        self._images = images
        self._texts = list(texts) if texts is not None else None
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
        """Raw samples ``indices`` in ``modality``.

        Raises
        ------
        ValueError
            If this set has no ``modality`` or ``indices`` is not 1-D integer.
        IndexError
            If an index is out of range.
        """
        idx = self._check(indices)
        if modality == "image" and self._images is not None:
            return self._images[idx]
        if modality == "text" and self._texts is not None:
            return [self._texts[i] for i in idx.tolist()]
        raise ValueError(
            f"public set {self.name!r} has no {modality!r} modality "
            f"(it has {sorted(self.modalities)})"
        )

    def subset(self, indices: np.ndarray) -> InMemoryPublicData:
        """Return a new public set made of rows ``indices`` (in that order)."""
        idx = self._check(indices)
        images = self._images[idx] if self._images is not None else None
        texts = None if self._texts is None else [self._texts[i] for i in idx.tolist()]
        return InMemoryPublicData(self.name, images, texts, self.origin)
