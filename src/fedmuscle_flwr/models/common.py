"""Shared encoder plumbing: image/text base classes and pooling helpers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fedmuscle_flwr.data.base import Modality, RawBatch
from fedmuscle_flwr.models.base import Encoder, EncoderOutput, ModelInput
from fedmuscle_flwr.models.preprocess import TextPreparer, images_to_tensor


class ImageEncoder(Encoder):
    """An encoder of images resized to ``image_size`` with ``channels`` channels.

    Subclasses implement :meth:`forward`; :meth:`prepare` is shared.
    """

    modality: Modality = "image"
    #: peft target modules used by :func:`models.lora.apply_lora` by default
    lora_targets: tuple[str, ...] = ()

    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"option channels must be 1 or 3, got {channels}")
        if image_size < 4:
            raise ValueError(f"option image_size must be >= 4, got {image_size}")
        self.channels = channels
        self.image_size = image_size

    def prepare(self, raw: RawBatch) -> ModelInput:
        """Shape: uint8 (N, H, W[, 3]) -> float (N, C, S, S) in [-1, 1]."""
        return images_to_tensor(raw, self.channels, self.image_size)

    def dummy_input(self, batch: int = 2) -> Tensor:
        """Return a random prepared batch. Shape: (batch, C, S, S)."""
        raw = np.random.default_rng(0).integers(
            0, 256, size=(batch, self.image_size, self.image_size), dtype=np.uint8
        )
        return images_to_tensor(raw, self.channels, self.image_size)


class TextEncoder(Encoder):
    """An encoder of tokenized text; :meth:`prepare` tokenizes with ``preparer``."""

    modality: Modality = "text"
    lora_targets: tuple[str, ...] = ()

    def __init__(self, preparer: TextPreparer) -> None:
        super().__init__()
        self.preparer = preparer

    def prepare(self, raw: RawBatch) -> ModelInput:
        """Shape: N strings -> dict input_ids, attention_mask (N, L)."""
        return self.preparer(raw)

    def dummy_input(self, batch: int = 2) -> dict[str, Tensor]:
        """Return a tokenized dummy batch. Shape: (batch, L) per tensor."""
        return self.preparer(["a short dummy sentence"] * batch)


def text_inputs(inputs: ModelInput) -> tuple[Tensor, Tensor]:
    """Split a text model input into (input_ids, attention_mask), both (B, L)."""
    if isinstance(inputs, Tensor):
        raise TypeError("a text encoder needs a dict with input_ids and attention_mask")
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    return ids, torch.ones_like(ids) if mask is None else mask


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean over valid tokens.

    Shape: tokens (B, L, D), mask (B, L) -> (B, D).
    """
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # (B, L, 1)
    total = (tokens * weights).sum(dim=1)  # (B, D)
    return total / weights.sum(dim=1).clamp_min(1.0)


def tokens_to_output(tokens: Tensor) -> EncoderOutput:
    """Vision tokens -> pooled features and a spatial map.

    The number of prefix tokens (CLS, distillation) is the smallest k in 0..2 for
    which the remaining N - k tokens form a square grid; with a prefix the first
    token is the pooled feature, otherwise the mean of all tokens.

    Shape: tokens (B, N, D) -> pooled (B, D), spatial (B, D, h, w) or None.
    """
    n = tokens.shape[1]
    for prefix in range(3):
        side = math.isqrt(n - prefix) if n > prefix else 0
        if side > 0 and side * side == n - prefix:
            patches = tokens[:, prefix:]  # (B, h*w, D)
            pooled = tokens[:, 0] if prefix else patches.mean(dim=1)
            # (B, h*w, D) -> (B, D, h, w)
            spatial = patches.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)
            return EncoderOutput(pooled=pooled, spatial=spatial)
    return EncoderOutput(pooled=tokens.mean(dim=1))


def module_output(out: Any, mask: Tensor | None = None) -> EncoderOutput:
    """Normalise what a backbone returns into an :class:`EncoderOutput`.

    Accepts an :class:`EncoderOutput`, a Tensor (B, F) | (B, L, D) | (B, C, h, w),
    a Hugging Face model output (``last_hidden_state``) or a tuple (first item).
    Sequences are mean-pooled over ``mask`` (text) or treated as vision tokens.
    """
    if isinstance(out, EncoderOutput):
        return out
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    elif isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, Tensor):
        raise TypeError(f"cannot read features from a {type(out).__name__}")
    if out.ndim == 2:
        return EncoderOutput(pooled=out)
    if out.ndim == 4:  # (B, C, h, w)
        return EncoderOutput(pooled=out.mean(dim=(2, 3)), spatial=out)
    if out.ndim == 3:
        if mask is not None:
            return EncoderOutput(pooled=masked_mean(out, mask))
        return tokens_to_output(out)
    raise ValueError(f"backbone output has unsupported shape {tuple(out.shape)}")


@torch.no_grad()
def probe_dims(encoder: Encoder, inputs: ModelInput) -> tuple[int, int | None]:
    """(F, C of the spatial map or None) from one eval-mode forward on ``inputs``."""
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder(inputs)
    finally:
        encoder.train(was_training)
    spatial = None if out.spatial is None else int(out.spatial.shape[1])
    return int(out.pooled.shape[1]), spatial


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Count parameters (optionally only those with ``requires_grad``)."""
    return sum(
        p.numel() for p in module.parameters() if p.requires_grad or not trainable_only
    )
