"""An example user backbone, plugged in by import path (no registration needed).

A client profile selects it with::

    [model]
    backbone = "fedmuscle_flwr.examples.custom_model:build"
    options = { width = 24, image_size = 28, channels = 1 }

``build`` returns a plain ``nn.Module`` mapping images (B, C, H, W) to a feature
map (B, C', h, w); the model zoo wraps it (pooled features, spatial map for
segmentation, raw-batch preparation from the ``image_size``/``channels``
options). Any module of yours works the same way: write ``build(**options)``,
put the module on ``PYTHONPATH`` (or in your package) and name it in a profile.
"""

from __future__ import annotations

from torch import nn


def build(width: int = 16, depth: int = 2) -> nn.Module:
    """Depthwise-separable conv stack; stride 2 per block.

    Parameters
    ----------
    width
        Channels of the first block; doubled per block.
    depth
        Number of blocks.

    Returns
    -------
    nn.Module
        Shape: (B, C, H, W) -> (B, width * 2**(depth-1), H / 2**depth, W / 2**depth).
        Its input channels adapt to the data (``nn.LazyConv2d``).
    """
    layers: list[nn.Module] = [nn.LazyConv2d(width, 3, padding=1), nn.ReLU()]
    c = width
    for i in range(depth):
        c_out = width * 2**i
        layers += [
            nn.Conv2d(c, c, 3, stride=2, padding=1, groups=c),  # depthwise
            nn.Conv2d(c, c_out, 1),  # pointwise
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
        c = c_out
    return nn.Sequential(*layers)
