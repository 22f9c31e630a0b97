"""Public-only: the control without collaboration (issue 25, docs/results.md §7c).

Each client trains its encoder on the public set alone, SimCLR-style: in each of the
T phase-2 steps it encodes two augmented views of the round's public batch and takes
the symmetric InfoNCE at τ between them (matching rows are the positives). Nothing is
relayed: no client receives anything derived from another client. Everything else is
FedMuscle's round (same public batches, same steps, the head frozen, the same BatchNorm
handling), so FedMuscle − public-only is what the exchange adds beyond public-data
training. Augmentations: random resized crops (area 40-100 %, aspect 3/4-4/3) and
horizontal flips for images, word dropout (20 %, one word kept at least) for text.

Brute-force reference: tests/unit/method/algorithms/test_public_only.py.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.data.base import RawBatch
from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    AlignContext,
    Payloads,
    Relay,
    RelayRequest,
    StepPayload,
)
from fedmuscle_flwr.models.base import move_to
from fedmuscle_flwr.models.client_model import ClientModel

#: smallest crop area (fraction of the image) and the aspect-ratio range of a crop
MIN_AREA, ASPECT = 0.4, (3 / 4, 4 / 3)
#: probability that a word of a caption is dropped
WORD_DROP = 0.2
#: first entropy word of the views' random stream (apart from other streams)
_STREAM = 0x9B11C


def two_view_infonce(z1: Tensor, z2: Tensor, tau: float) -> Tensor:
    """Symmetric InfoNCE of two views (B, d): row i of each is the other's positive.

    ``(CE(z1 z2ᵀ/τ, I) + CE(z2 z1ᵀ/τ, I)) / 2``; gradients flow through both views.
    """
    if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(
            f"two views (B >= 2, d) of one shape expected, got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    dtype = torch.promote_types(z1.dtype, torch.float32)  # fp16 views: fp32 math
    logits = z1.to(dtype) @ z2.to(dtype).T / tau
    target = torch.arange(z1.shape[0], device=z1.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def crop_and_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random resized crop (resized back to the input size) and flip per image.

    ``images``: uint8 (B, H, W) or (B, H, W, C); returns the same shape and dtype.
    """
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    for i, image in enumerate(images):
        area = rng.uniform(MIN_AREA, 1.0) * height * width
        ratio = float(np.exp(rng.uniform(np.log(ASPECT[0]), np.log(ASPECT[1]))))
        h = int(np.clip(round(np.sqrt(area / ratio)), 1, height))
        w = int(np.clip(round(np.sqrt(area * ratio)), 1, width))
        top = int(rng.integers(0, height - h + 1))
        left = int(rng.integers(0, width - w + 1))
        crop = Image.fromarray(image[top : top + h, left : left + w])
        view = np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR))
        out[i] = view[:, ::-1] if rng.random() < 0.5 else view
    return out


def drop_words(texts: list[str], rng: np.random.Generator) -> list[str]:
    """Each word dropped with probability :data:`WORD_DROP`; one kept at least."""
    out = []
    for text in texts:
        words = text.split()
        if not words:
            out.append(text)
            continue
        keep = rng.random(len(words)) >= WORD_DROP
        if not keep.any():
            keep[int(rng.integers(len(words)))] = True
        out.append(" ".join(w for w, k in zip(words, keep, strict=True) if k))
    return out


def augment(raw: RawBatch, rng: np.random.Generator) -> RawBatch:
    """One augmented view of a raw public batch (images or captions)."""
    if isinstance(raw, np.ndarray):
        return crop_and_flip(raw, rng)
    return drop_words(list(raw), rng)


@ALGORITHMS.register("public-only")
class PublicOnly(Algorithm):
    """SimCLR-style training on the public set, no exchange (the control)."""

    description = (
        "Control: each client trains its encoder contrastively on two augmented views "
        "of the public batches (InfoNCE at tau), nothing exchanged"
    )
    wire = "down: the step batches' indices only; nothing from other clients"

    def step_loss(
        self,
        model: ClientModel,
        raw: RawBatch,
        payload: StepPayload,
        ctx: AlignContext,
        device: torch.device,
    ) -> Tensor:
        """:func:`two_view_infonce` of two augmented views of ``raw``."""
        rng = np.random.default_rng([_STREAM, content_seed(raw)])
        views = [augment(raw, rng) for _ in range(2)]
        z1, z2 = (self.readout(model, move_to(model.prepare(v), device)) for v in views)
        return two_view_infonce(z1, z2, ctx.cfg.tau)

    def payloads(self, muscle: MuscleConfig) -> Payloads:
        """Z^n up (as every representation method; no client sees it), no relay."""
        return Payloads(relay={})

    def relay(self, req: RelayRequest) -> dict[int, Relay]:
        """Every client of the pool gets the steps' batches and nothing else."""
        return {n: Relay() for n in req.uploads.pool}


def content_seed(raw: RawBatch) -> int:
    """A seed from the batch's content: the same batch, the same views."""
    data = raw.tobytes() if isinstance(raw, np.ndarray) else "\n".join(raw).encode()
    return zlib.crc32(data)
