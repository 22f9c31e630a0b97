"""Tests of fedmuscle_flwr.examples.custom_model: the documented shapes, and a profile that uses it."""

from __future__ import annotations

import pytest
import torch

from fedmuscle_flwr.config.profile import ModelSpec
from fedmuscle_flwr.examples import custom_model
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.tasks.registry import get_task


@pytest.mark.parametrize(("width", "depth", "channels"), [(16, 2, 1), (8, 3, 3)])
def test_build_maps_images_to_the_documented_feature_map(
    width: int, depth: int, channels: int
) -> None:
    net = custom_model.build(width=width, depth=depth)
    out = net(torch.randn(2, channels, 32, 32))
    assert out.shape == (2, width * 2 ** (depth - 1), 32 // 2**depth, 32 // 2**depth)


def test_a_client_model_built_from_the_import_path_trains() -> None:
    # Prepare: the profile line of the module docstring
    spec = ModelSpec(
        backbone="fedmuscle_flwr.examples.custom_model:build",
        options={"width": 8, "image_size": 28, "channels": 1},
        pretrained=False,
    )
    model = build_client_model(spec, get_task("classification"), 4, 16, seed=0)
    x = model.prepare(torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8).numpy())
    # Execute
    out = model(x)
    loss = out.logits.logsumexp(1).mean() + out.representation.sum()
    loss.backward()
    # Assert
    assert out.logits.shape == (3, 4) and out.representation.shape == (3, 16)
    assert any(p.grad is not None for p in model.encoder.parameters())
