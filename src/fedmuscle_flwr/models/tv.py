"""``tv:<name>`` backbones: any torchvision classification model, classifier removed.

The trunk is torchvision's ``create_feature_extractor`` up to the node before the
model's pooling or classifier (ViTs: the encoder's tokens), so the model's own
``forward`` logic is kept (GoogLeNet's input transform, DenseNet's last ReLU).

Weights: with ``pretrained`` the torchvision DEFAULT weights are used when they are
already in torch hub's cache, else a download is tried (bounded timeout); if that
fails the model is randomly initialised. Every outcome is logged at INFO/WARNING.
"""

from __future__ import annotations

import itertools
import logging
import socket
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fedmuscle_flwr.models.base import EncoderOutput, ModelInput
from fedmuscle_flwr.models.common import ImageEncoder, module_output, probe_dims

log = logging.getLogger(__name__)

_DOWNLOAD_TIMEOUT_S = 15.0
#: root-level graph nodes where a torchvision classifier leaves its trunk
_HEAD_NODES = frozenset(
    {"avgpool", "adaptive_avg_pool2d", "mean", "flatten", "classifier", "fc", "head"}
)


class TorchvisionEncoder(ImageEncoder):
    """A torchvision trunk; pooled = mean of its map (or its token/vector output)."""

    def __init__(self, trunk: nn.Module, image_size: int) -> None:
        super().__init__(3, image_size)
        self.trunk = trunk
        self.feature_dim, self.spatial_dim = probe_dims(self, self.dummy_input())

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, 3, S, S) -> pooled (B, F) [+ spatial (B, F, h, w)]."""
        if not isinstance(inputs, Tensor):
            raise TypeError("an image encoder needs a (B, C, H, W) tensor")
        # (B, F, h, w) map, (B, 1 + N, D) ViT tokens or (B, F) vector
        return module_output(self.trunk(inputs)[_FEATURES])


_FEATURES = "features"


def _trunk_node(model: nn.Module, name: str) -> str:
    """The graph node with the last features before the classifier pools them.

    ViTs: the encoder's token output (the class token is picked after it).
    Others: the node just before the first pooling/flatten/classifier node.
    """
    from torchvision.models.feature_extraction import get_graph_node_names

    with warnings.catch_warnings():  # "eval nodes are a subsequence of train nodes"
        warnings.simplefilter("ignore", UserWarning)
        nodes = get_graph_node_names(model)[1]
    if hasattr(model, "class_token"):
        return [n for n in nodes if n.startswith("encoder")][-1]
    for before, node in itertools.pairwise(nodes):
        if node.split(".")[0] in _HEAD_NODES:
            return before
    raise ValueError(f"cannot find the classifier of torchvision model {name!r}")


def _trunk(model: nn.Module, name: str) -> nn.Module:
    """``model`` up to its last features (torchvision's feature extractor)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    node = _trunk_node(model, name)
    return create_feature_extractor(model, return_nodes={node: _FEATURES})


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
    return TorchvisionEncoder(_trunk(model, name), size)


def _classification() -> Any:
    import torchvision.models

    return torchvision.models
