"""``tv:<name>`` backbones: any torchvision classification model, classifier removed.

Weights: with ``pretrained`` the torchvision DEFAULT weights are used when they are
already in torch hub's cache, else a download is tried (bounded timeout); if that
fails the model is randomly initialised. Every outcome is logged at INFO/WARNING.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from fedmuscle_flwr.models.base import EncoderOutput, ModelInput
from fedmuscle_flwr.models.common import ImageEncoder, module_output, probe_dims

log = logging.getLogger(__name__)

Layout = Literal["nchw", "nhwc", "pooled"]
_DOWNLOAD_TIMEOUT_S = 15.0


class _ViTTokens(nn.Module):
    """torchvision ViT up to the encoder output. Shape: (B, 3, S, S) -> (B, 1+N, D)."""

    def __init__(self, vit: Any) -> None:
        super().__init__()
        self.vit: Any = vit
        vit.heads = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Shape: (B, 3, S, S) -> (B, 1 + N, D)."""
        tokens = self.vit._process_input(x)  # (B, N, D)
        cls = self.vit.class_token.expand(tokens.shape[0], -1, -1)  # (B, 1, D)
        return self.vit.encoder(torch.cat([cls, tokens], dim=1))


class TorchvisionEncoder(ImageEncoder):
    """A torchvision trunk; pooled = mean of its map (or its token/vector output)."""

    def __init__(self, trunk: nn.Module, layout: Layout, image_size: int) -> None:
        super().__init__(3, image_size)
        self.trunk = trunk
        self.layout = layout
        self.feature_dim, self.spatial_dim = probe_dims(self, self.dummy_input())

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, 3, S, S) -> pooled (B, F) [+ spatial (B, F, h, w)]."""
        if not isinstance(inputs, Tensor):
            raise TypeError("an image encoder needs a (B, C, H, W) tensor")
        out = self.trunk(inputs)
        if self.layout == "nhwc":
            out = out.permute(0, 3, 1, 2)  # (B, h, w, C) -> (B, C, h, w)
        elif self.layout == "pooled":
            out = out.flatten(1)  # (B, F, ...) -> (B, F)
        return module_output(out)


def _trunk(model: Any, name: str) -> tuple[nn.Module, Layout]:
    """Cut the classifier off ``model``; return the trunk and its output layout."""
    if hasattr(model, "class_token") and hasattr(model, "heads"):
        return _ViTTokens(model), "nchw"  # tokens -> grid in module_output
    if hasattr(model, "features"):
        return model.features, "nhwc" if name.startswith("swin") else "nchw"
    if hasattr(model, "fc") and hasattr(model, "avgpool"):  # resnet / resnext
        children = dict(model.named_children())
        keep = [m for k, m in children.items() if k not in ("avgpool", "fc")]
        return nn.Sequential(*keep), "nchw"
    if hasattr(model, "trunk_output"):  # regnet
        return nn.Sequential(model.stem, model.trunk_output), "nchw"
    last = [k for k, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError(f"cannot find the classifier of torchvision model {name!r}")
    model.set_submodule(last[-1], nn.Identity())
    return model, "pooled"


def _cached(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _with_weights(name: str, pretrained: bool) -> nn.Module:
    from torchvision.models import get_model, get_model_weights

    if not pretrained:
        log.info("tv:%s: random init (pretrained=false)", name)
        return get_model(name, weights=None)
    weights = get_model_weights(name).DEFAULT
    where = "torch hub cache" if _cached(weights.url).is_file() else "download"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        model = get_model(name, weights=weights)
    except Exception as exc:  # offline: URLError, timeout, hash mismatch ...
        log.warning(
            "tv:%s: no cached weights and the download failed (%s); RANDOM INIT",
            name,
            exc,
        )
        return get_model(name, weights=None)
    finally:
        socket.setdefaulttimeout(previous)
    log.info("tv:%s: pretrained weights %s (from %s)", name, weights, where)
    return model


def build_torchvision(
    name: str, *, pretrained: bool = True, image_size: int | None = None
) -> TorchvisionEncoder:
    """Any torchvision classifier by name (e.g. resnet18, mobilenet_v3_small, vit_b_16).

    ``image_size`` defaults to 64 px (224 for ViTs, which need their trained size).
    """
    from torchvision.models import list_models

    known = list_models(module=_classification())
    if name not in known:
        raise ValueError(
            f"model.backbone 'tv:{name}': unknown torchvision model; known: {known}"
        )
    model = _with_weights(name, pretrained)
    fixed: Any = getattr(model, "image_size", None)
    if fixed is not None and image_size not in (None, fixed):
        raise ValueError(f"tv:{name} needs image_size={fixed}, got {image_size}")
    size = int(fixed or image_size or 64)
    trunk, layout = _trunk(model, name)
    return TorchvisionEncoder(trunk, layout, size)


def _classification() -> Any:
    import torchvision.models

    return torchvision.models
