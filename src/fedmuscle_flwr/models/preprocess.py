"""Raw batch -> model input tensors (images resized/scaled, text tokenized).

Kept in the model package so that every encoder's :meth:`Encoder.prepare` can turn
the same raw public batch into its own input format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.data.base import RawBatch

#: ITU-R BT.601 luma weights, for RGB -> grayscale
_LUMA = (0.299, 0.587, 0.114)


def images_to_tensor(raw: RawBatch, channels: int, size: int) -> Tensor:
    """Convert raw uint8 images to a float batch in [-1, 1].

    Parameters
    ----------
    raw
        uint8 array (N, H, W) (grayscale) or (N, H, W, 3) (RGB).
    channels
        Output channels: 1 (RGB is converted to luma) or 3 (gray is repeated).
    size
        Output side S; images are resized bilinearly (antialiased) to S x S.

    Returns
    -------
    Tensor
        Shape: (N, C, S, S), float32, values in [-1, 1].
    """
    if not isinstance(raw, np.ndarray):
        raise TypeError(f"image encoders need a uint8 array, got {type(raw).__name__}")
    if raw.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {raw.dtype}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    x = torch.from_numpy(np.ascontiguousarray(raw))
    if x.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] == 3:  # (N, H, W, 3) -> (N, 3, H, W)
        x = x.permute(0, 3, 1, 2)
    else:
        raise ValueError(
            f"images must be (N, H, W) or (N, H, W, 3), got {tuple(raw.shape)}"
        )
    x = x.float().div_(255.0)
    x = _convert_channels(x, channels)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        x = x.clamp_(0.0, 1.0)
    return x.mul_(2.0).sub_(1.0)


def _convert_channels(x: Tensor, channels: int) -> Tensor:
    """Shape: (N, C_in, H, W) -> (N, channels, H, W)."""
    if x.shape[1] == channels:
        return x
    if channels == 3:  # (N, 1, H, W) -> (N, 3, H, W)
        return x.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)  # (N, 3, H, W) -> (N, 1, H, W)


class TextPreparer:
    """Tokenize a list of strings to ``input_ids`` / ``attention_mask`` tensors.

    Parameters
    ----------
    tokenizer
        A Hugging Face tokenizer (callable on a list of strings).
    max_length
        Truncation length in tokens (special tokens included).
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def vocab_size(self) -> int:
        """Number of token ids the tokenizer can emit."""
        return len(self.tokenizer)

    def __call__(self, raw: RawBatch) -> dict[str, Tensor]:
        """Shape: N strings -> input_ids, attention_mask (N, L), L <= max_length."""
        if isinstance(raw, np.ndarray) or not isinstance(raw, Sequence):
            raise TypeError(
                f"text encoders need a list of str, got {type(raw).__name__}"
            )
        enc = self.tokenizer(
            list(raw),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {
            "input_ids": enc["input_ids"].long(),
            "attention_mask": enc["attention_mask"].long(),
        }
