"""Model contracts: an encoder (backbone), the client model and its output.

A client model is θ = (w, φ): w = encoder + projection head to the shared
dimension d (output L2-normalised), φ = task head (docs/method.md §1).
No flwr imports in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fedmuscle_flwr.config.registry import Registry
from fedmuscle_flwr.data.base import Modality, RawBatch

#: what an encoder consumes: an image tensor (B, C, H, W) or a dict of text tensors
ModelInput = Tensor | dict[str, Tensor]


@dataclass
class EncoderOutput:
    """Backbone output.

    ``pooled``: (B, F) global features. ``spatial``: (B, C, h, w) feature map, or
    None for encoders without one (text, MLP); segmentation needs it.
    """

    pooled: Tensor
    spatial: Tensor | None = None


@dataclass
class ClientModelOutput:
    """Forward output of a :class:`ClientModel`; fields feed the losses.

    ``features`` (B, F); ``representation`` (B, d), unit rows; ``logits`` task
    output ((B, K) or (B, K, H, W)), None when the head is skipped.
    """

    features: Tensor
    representation: Tensor
    logits: Tensor | None


class Encoder(nn.Module, ABC):
    """A backbone that knows its modality and how to prepare raw batches."""

    modality: Modality
    feature_dim: int  # F of ``pooled``
    spatial_dim: int | None = None  # C of ``spatial``, when provided

    @abstractmethod
    def prepare(self, raw: RawBatch) -> ModelInput:
        """Raw batch -> model input tensors on the CPU (resize, scale, tokenize)."""

    @abstractmethod
    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: inputs per :meth:`prepare`; returns pooled (B, F) [+ spatial]."""


def move_to(inputs: ModelInput, device: torch.device) -> ModelInput:
    """Move a model input (tensor or dict of tensors) to ``device``."""
    if isinstance(inputs, Tensor):
        return inputs.to(device, non_blocking=True)
    return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}


#: backbone name -> builder ``(*, pretrained, **options) -> Encoder``, filled by
#: ``@ENCODERS.register("name")`` in the modules of this folder (style and
#: scan: config/registry.py; look-ups: models/registry.py)
ENCODERS: Registry[Callable[..., Encoder]] = Registry(
    "backbone", "fedmuscle_flwr.models"
)
