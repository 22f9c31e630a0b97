"""Small random-init image encoders for CPU: ``small-cnn``, ``resnet-mini``, ``mlp``.

Builders take keyword options (the profile's ``model.options``) and ``pretrained``,
which they ignore: these families have no pretrained weights.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from fedmuscle_flwr.models.base import ENCODERS, EncoderOutput, ModelInput
from fedmuscle_flwr.models.common import ImageEncoder

log = logging.getLogger(__name__)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _image(inputs: ModelInput) -> Tensor:
    if not isinstance(inputs, Tensor):
        raise TypeError("an image encoder needs a (B, C, H, W) tensor")
    return inputs


def _no_weights(name: str, pretrained: bool) -> None:
    if pretrained:
        log.debug("%s has no pretrained weights; random init", name)


class SmallCNN(ImageEncoder):
    """Conv-BN-ReLU blocks; 2x2 max-pool after each block but the last.

    Channels double per block up to 4 x ``width``; F = channels of the last block.
    """

    def __init__(self, channels: int, image_size: int, width: int, depth: int) -> None:
        super().__init__(channels, image_size)
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got {width}, {depth}")
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(depth):
            c_out = width * 2 ** min(i, 2)
            layers.append(_conv_bn(c_in, c_out))
            if i < depth - 1 and image_size // 2 ** (i + 1) >= 2:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.feature_dim = c_in
        self.spatial_dim = c_in

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, C, S, S) -> pooled (B, F), spatial (B, F, h, w)."""
        spatial = self.body(_image(inputs))  # (B, F, h, w)
        return EncoderOutput(pooled=spatial.mean(dim=(2, 3)), spatial=spatial)


class _BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a 1x1 projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, stride)
        self.conv2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Shape: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetMini(ImageEncoder):
    """A 3-stage CIFAR-style ResNet (widths w, 2w, 4w; stride 1, 2, 2)."""

    def __init__(self, channels: int, image_size: int, width: int, blocks: int) -> None:
        super().__init__(channels, image_size)
        if width < 1 or blocks < 1:
            raise ValueError(f"width and blocks must be >= 1, got {width}, {blocks}")
        layers: list[nn.Module] = [_conv_bn(channels, width)]
        c_in = width
        for stage in range(3):
            c_out = width * 2**stage
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(_BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.body = nn.Sequential(*layers)
        self.feature_dim = c_in
        self.spatial_dim = c_in

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, C, S, S) -> pooled (B, 4w), spatial (B, 4w, S/4, S/4)."""
        spatial = self.body(_image(inputs))  # (B, 4w, S/4, S/4)
        return EncoderOutput(pooled=spatial.mean(dim=(2, 3)), spatial=spatial)


class MLPEncoder(ImageEncoder):
    """Flatten -> ``depth`` x (Linear-ReLU) of ``hidden`` units; no spatial map."""

    def __init__(self, channels: int, image_size: int, hidden: int, depth: int) -> None:
        super().__init__(channels, image_size)
        if hidden < 1 or depth < 1:
            raise ValueError(f"hidden and depth must be >= 1, got {hidden}, {depth}")
        layers: list[nn.Module] = [nn.Flatten()]
        d_in = channels * image_size * image_size
        for _ in range(depth):
            layers += [nn.Linear(d_in, hidden), nn.ReLU(inplace=True)]
            d_in = hidden
        self.body = nn.Sequential(*layers)
        self.feature_dim = hidden

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, C, S, S) -> pooled (B, hidden)."""
        return EncoderOutput(pooled=self.body(_image(inputs)))  # (B, C*S*S) inside


@ENCODERS.register("small-cnn")
def build_small_cnn(
    *,
    pretrained: bool = False,
    channels: int = 3,
    image_size: int = 28,
    width: int = 32,
    depth: int = 3,
) -> SmallCNN:
    """Small conv net (3 conv blocks, 32-64-128 channels, ~93k params); spatial map."""
    _no_weights("small-cnn", pretrained)
    return SmallCNN(channels, image_size, width, depth)


@ENCODERS.register("resnet-mini")
def build_resnet_mini(
    *,
    pretrained: bool = False,
    channels: int = 3,
    image_size: int = 32,
    width: int = 16,
    blocks: int = 1,
) -> ResNetMini:
    """CIFAR-style 3-stage ResNet (widths 16-32-64, ~78k params); spatial map."""
    _no_weights("resnet-mini", pretrained)
    return ResNetMini(channels, image_size, width, blocks)


@ENCODERS.register("mlp")
def build_mlp(
    *,
    pretrained: bool = False,
    channels: int = 3,
    image_size: int = 28,
    hidden: int = 128,
    depth: int = 2,
) -> MLPEncoder:
    """Flatten -> 2-layer MLP of 128 units; no spatial map (no segmentation)."""
    _no_weights("mlp", pretrained)
    return MLPEncoder(channels, image_size, hidden, depth)
