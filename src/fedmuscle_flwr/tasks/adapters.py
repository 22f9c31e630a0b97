"""Target adapters and shape checks shared by the task kinds."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def long_targets(y: np.ndarray, ndim: int, kind: str) -> Tensor:
    """Integer targets (class ids or masks) as an int64 CPU tensor.

    Parameters
    ----------
    y : np.ndarray
        Raw targets. Shape: (N,) class ids or (N, H, W) masks, integer dtype.
    ndim : int
        The expected number of dimensions (1 or 3).
    kind : str
        The task kind, for error messages.

    Returns
    -------
    Tensor
        Shape: as ``y``, int64.
    """
    y = np.asarray(y)
    if y.ndim != ndim or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"task {kind!r} needs {ndim}-d integer targets, got shape {y.shape} "
            f"and dtype {y.dtype}"
        )
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def float_targets(y: np.ndarray, kind: str) -> Tensor:
    """Multi-hot targets as a float32 CPU tensor.

    Parameters
    ----------
    y : np.ndarray
        Raw multi-hot targets. Shape: (N, K).
    kind : str
        The task kind, for error messages.

    Returns
    -------
    Tensor
        Shape: (N, K), float32.
    """
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"task {kind!r} needs (N, K) multi-hot targets, got {y.shape}")
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


def check_batch(
    logits: Tensor, targets: Tensor, num_classes: int, kind: str, class_dim: int = 1
) -> None:
    """Raise ``ValueError`` unless logits carry K classes and match the targets.

    Parameters
    ----------
    logits : Tensor
        Shape: (B, K) or (B, K, H, W).
    targets : Tensor
        Shape: (B,), (B, K) or (B, H, W).
    num_classes : int
        K, as the meter was built with.
    kind : str
        The task kind, for error messages.
    class_dim : int
        Which dimension of ``logits`` holds the K classes.
    """
    if logits.ndim <= class_dim or logits.shape[class_dim] != num_classes:
        raise ValueError(
            f"task {kind!r}: logits of shape {tuple(logits.shape)} do not have "
            f"{num_classes} classes in dim {class_dim}"
        )
    if logits.shape[0] != targets.shape[0]:
        raise ValueError(
            f"task {kind!r}: {logits.shape[0]} logits rows but "
            f"{targets.shape[0]} targets"
        )


def check_class_ids(ids: Tensor, num_classes: int, kind: str) -> None:
    """Raise ``ValueError`` if any id is outside ``[0, num_classes)``.

    Parameters
    ----------
    ids : Tensor
        Class ids. Shape: any, integer.
    num_classes : int
        K.
    kind : str
        The task kind, for error messages.
    """
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
        raise ValueError(
            f"task {kind!r}: targets must lie in [0, {num_classes}), got range "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )


def check_fraction(kind: str, name: str, value: object) -> float:
    """Return ``value`` as a float in ``[0, 1)`` or raise ``ValueError``.

    Parameters
    ----------
    kind : str
        The task kind, for error messages.
    name : str
        The option's name, for error messages.
    value : object
        The option's value.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"task {kind!r}: option {name!r} must be a number")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"task {kind!r}: option {name!r} must be in [0, 1)")
    return float(value)
