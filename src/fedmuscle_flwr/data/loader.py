"""Batches of a split, decoded by DataLoader workers when the split is lazy.

The trainer draws its batch order itself (seeded, as ever) and asks this module
for the raw batches in that order. In-memory splits are sliced in the calling
process, exactly as before (same arrays, no worker overhead); lazily decoded
splits (image files, a ``datasets`` table, a plugin) go through a
``torch.utils.data.DataLoader`` whose workers decode whole batches
(``__getitems__``) ahead of the training step, so decoding overlaps training and
memory holds only the batches in flight (``workers * prefetch`` of them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fedmuscle_flwr.data.base import RawBatch, Split

#: batches each worker decodes ahead
PREFETCH = 2


@dataclass(frozen=True)
class Batch:
    """Raw inputs and targets of one batch (rows ``rows`` of the split)."""

    x: RawBatch
    y: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


class SplitRows(torch.utils.data.Dataset[Batch]):
    """A split as a map-style ``Dataset`` that decodes a batch in one call."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> Batch:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """Shape: n row indices -> a :class:`Batch` of n rows."""
        rows = np.asarray(indices, dtype=np.int64)
        return Batch(self.split.batch(rows), self.split.y[rows], rows)


def _as_batch(batch: Any) -> Any:
    return batch  # ``__getitems__`` already made the Batch (no collation)


def iter_batches(
    split: Split, order: Sequence[np.ndarray], workers: int = 0
) -> Iterator[Batch]:
    """The raw batches ``order[0]``, ``order[1]``, ... of ``split``, in that order.

    Parameters
    ----------
    split : Split
        In memory or lazy.
    order : Sequence[np.ndarray]
        Row indices of each batch.
    workers : int
        DataLoader worker processes for a lazy split (0: decode in this process).
    """
    if workers <= 0 or not split.lazy or len(order) <= 1:
        for rows in order:
            rows = np.asarray(rows, dtype=np.int64)
            yield Batch(split.batch(rows), split.y[rows], rows)
        return
    loader = torch.utils.data.DataLoader(
        SplitRows(split),
        batch_sampler=[np.asarray(r, dtype=np.int64).tolist() for r in order],
        num_workers=workers,
        collate_fn=_as_batch,
        prefetch_factor=PREFETCH,
    )
    yield from loader
