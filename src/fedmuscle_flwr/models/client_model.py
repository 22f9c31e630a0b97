"""The client model θ^n = (w^n, φ^n): encoder + projector (w^n) and task head (φ^n).

``representation`` = normalize(projector(encoder(x).pooled)) in R^d (docs/method.md
§1). The head reads the pooled features (``head_on="features"``), the
representation (``head_on="representation"``) or, for tasks with
``needs_spatial``, the encoder's spatial map.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedmuscle_flwr.config.profile import ModelSpec
from fedmuscle_flwr.data.base import Modality, PublicData, RawBatch
from fedmuscle_flwr.models.base import ClientModelOutput, Encoder, ModelInput, move_to
from fedmuscle_flwr.models.common import count_parameters
from fedmuscle_flwr.models.lora import apply_lora
from fedmuscle_flwr.models.projector import build_projector
from fedmuscle_flwr.models.registry import build_encoder
from fedmuscle_flwr.tasks.base import Task

log = logging.getLogger(__name__)

HeadOn = Literal["features", "representation", "spatial"]


class ClientModel(nn.Module):
    """Encoder + projector + task head.

    Parameters
    ----------
    encoder
        The backbone (prepares raw batches, returns pooled [+ spatial] features).
    projector
        (B, F) -> (B, d); its output is L2-normalised here.
    head
        The task head φ on features (B, F), representation (B, d) or the
        spatial map (B, C, h, w), per ``head_on``.
    head_on
        ``features`` | ``representation`` | ``spatial``.
    frozen_encoder
        Keep the encoder in eval mode (BatchNorm statistics, dropout) even when
        the model trains: used with ``freeze_backbone``.
    """

    def __init__(
        self,
        encoder: Encoder,
        projector: nn.Module,
        head: nn.Module,
        head_on: HeadOn = "features",
        frozen_encoder: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.head = head
        self.head_on: HeadOn = head_on
        self.frozen_encoder = frozen_encoder
        if head_on == "spatial" and encoder.spatial_dim is None:
            raise ValueError(f"{type(encoder).__name__} has no spatial feature map")

    @property
    def modality(self) -> Modality:
        """The encoder's input modality (image | text)."""
        return self.encoder.modality

    def prepare(self, raw: RawBatch) -> ModelInput:
        """Raw batch -> model input on the CPU (delegates to the encoder)."""
        return self.encoder.prepare(raw)

    def train(self, mode: bool = True) -> ClientModel:
        """Set train/eval mode; a frozen encoder always stays in eval mode."""
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()
        return self

    def forward(
        self,
        inputs: ModelInput,
        *,
        compute_logits: bool = True,
        output_size: tuple[int, int] | None = None,
    ) -> ClientModelOutput:
        """Encode, project, normalise and (optionally) apply the task head.

        Parameters
        ----------
        inputs
            Per :meth:`prepare`: images (B, C, S, S) or a dict of (B, L) tensors.
        compute_logits
            False skips the head (``logits`` is None).
        output_size
            (H, W) of dense (spatial) logits; default the input's (S, S). Pass the
            target masks' size when it differs from the encoder's image size.

        Returns
        -------
        ClientModelOutput
            Shape: features (B, F); representation (B, d), unit rows; logits
            (B, K) or, for a spatial head, (B, K, H, W).
        """
        enc = self.encoder(inputs)
        representation = F.normalize(self.projector(enc.pooled), dim=-1)  # (B, d)
        logits: Tensor | None = None
        if compute_logits:
            if self.head_on == "representation":
                logits = self.head(representation)  # (B, K)
            elif self.head_on == "spatial":
                assert enc.spatial is not None, "encoder lost its spatial map"
                logits = self._dense(self.head(enc.spatial), inputs, output_size)
            else:
                logits = self.head(enc.pooled)  # (B, K)
        return ClientModelOutput(enc.pooled, representation, logits)

    @staticmethod
    def _dense(
        logits: Tensor, inputs: ModelInput, size: tuple[int, int] | None
    ) -> Tensor:
        """Upsample (B, K, h, w) head output to (B, K, H, W) when smaller."""
        if size is None:
            if not isinstance(inputs, Tensor):
                raise ValueError("dense logits need image inputs or an output_size")
            size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        if tuple(logits.shape[-2:]) == size:
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def represent(self, inputs: ModelInput) -> Tensor:
        """w^n(x) only, the head skipped. Shape: inputs -> (B, d), unit rows."""
        return self.forward(inputs, compute_logits=False).representation

    def representation_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of w^n (encoder + projector): the Muscle loss's."""
        return _trainable(self.encoder, self.projector)

    def task_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters the task loss reaches (encoder, head [+ projector])."""
        if self.head_on == "representation":
            return _trainable(self.encoder, self.projector, self.head)
        return _trainable(self.encoder, self.head)

    def head_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of φ^n."""
        return _trainable(self.head)


def _trainable(*modules: nn.Module) -> list[nn.Parameter]:
    seen: set[int] = set()
    params: list[nn.Parameter] = []
    for module in modules:
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def build_client_model(
    spec: ModelSpec, task: Task, num_outputs: int, dim: int, *, seed: int = 0
) -> ClientModel:
    """Build θ^n from a profile's model spec for ``task`` with ``num_outputs``.

    Initialisation runs under ``seed`` in a forked RNG (the global RNG is left
    untouched), so two builds with the same arguments are identical.

    Raises
    ------
    ValueError
        ``model.projection-dim`` != ``dim``; an encoder of another modality than
        the task's; a spatial task on an encoder without a spatial map; an
        unknown backbone or option.
    """
    if spec.projection_dim is not None and spec.projection_dim != dim:
        raise ValueError(
            f"model.projection-dim={spec.projection_dim} must equal the shared "
            f"representation dim (muscle.dim={dim})"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(spec)
        if task.modality is not None and encoder.modality != task.modality:
            raise ValueError(
                f"model.backbone {spec.backbone!r} reads {encoder.modality} but "
                f"task.kind {task.kind!r} needs {task.modality} inputs"
            )
        if task.needs_spatial and encoder.spatial_dim is None:
            raise ValueError(
                f"model.backbone {spec.backbone!r} has no spatial feature map, "
                f"which task.kind {task.kind!r} needs"
            )
        head_on: HeadOn = "spatial" if task.needs_spatial else spec.head_on
        if task.needs_spatial and spec.head_on == "representation":
            log.warning("task %s reads the spatial map; head-on ignored", task.kind)
        in_dim = {
            "features": encoder.feature_dim,
            "representation": dim,
            "spatial": encoder.spatial_dim or 0,
        }[head_on]
        projector = build_projector(spec.projector, encoder.feature_dim, dim)
        head = task.build_head(in_dim, num_outputs)
        if spec.freeze_backbone:
            encoder.requires_grad_(False)
        apply_lora(encoder, spec.lora)  # rank 0: no-op
    model = ClientModel(encoder, projector, head, head_on, spec.freeze_backbone)
    log.debug(  # built per message; the server names each client's model once
        "model %s: F=%d, d=%d, head on %s, %d params (%d trainable)",
        spec.backbone,
        encoder.feature_dim,
        dim,
        head_on,
        count_parameters(model),
        count_parameters(model, trainable_only=True),
    )
    return model


def public_inputs(
    model: ClientModel, public: PublicData, indices: np.ndarray, device: torch.device
) -> object:
    """Model inputs for public samples ``indices`` (B,) in the client's modality."""
    raw = public.batch(indices, model.encoder.modality)
    return move_to(model.prepare(raw), device)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
