"""Transformer encoders on Hugging Face ``transformers``: wrappers and built-ins.

Built-ins: ``vit-tiny`` (random init), ``minilm`` (bundled all-MiniLM-L6-v2,
optionally truncated) and ``bert-tiny`` (random init, MiniLM vocabulary).
``transformers`` is imported inside the builders (it takes seconds to import).
"""

from __future__ import annotations

import logging

from torch import Tensor, nn

from fedmuscle_flwr.models.base import ENCODERS, EncoderOutput, ModelInput
from fedmuscle_flwr.models.common import (
    ImageEncoder,
    TextEncoder,
    masked_mean,
    module_output,
    probe_dims,
    text_inputs,
)
from fedmuscle_flwr.models.preprocess import TextPreparer
from fedmuscle_flwr.models.pretrained import load_minilm, minilm_tokenizer

log = logging.getLogger(__name__)

#: attention query/value projection names, by library version and family
#: (BERT: query/value; ViT, DeiT, SegFormer in transformers 5: q_proj/v_proj;
#: DistilBERT: q_lin/v_lin)
LORA_TARGET_PAIRS: tuple[tuple[str, str], ...] = (
    ("query", "value"),
    ("q_proj", "v_proj"),
    ("q_lin", "v_lin"),
)


def lora_targets_for(model: nn.Module) -> tuple[str, ...]:
    """Find the default LoRA targets: a query/value pair of Linear layers in ``model``.

    Returns ``()`` for models without attention projections (CNNs, MLPs).
    """
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    }
    for pair in LORA_TARGET_PAIRS:
        if set(pair) <= names:
            return pair
    return ()


def _unused_pooler_frozen(backbone: nn.Module) -> nn.Module:
    """Freeze an AutoModel's ``pooler`` (we pool ourselves; it gets no gradient)."""
    pooler = getattr(backbone, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)
    return backbone


class HFVisionEncoder(ImageEncoder):
    """A transformers vision model called as ``backbone(pixel_values=x)``.

    Token outputs (ViT) give pooled = CLS, spatial = patch grid; map outputs
    (SegFormer, ResNet) give spatial = the map, pooled = its spatial mean.
    """

    def __init__(self, backbone: nn.Module, channels: int, image_size: int) -> None:
        super().__init__(channels, image_size)
        self.backbone = _unused_pooler_frozen(backbone)
        self.lora_targets = lora_targets_for(backbone)
        self.feature_dim, self.spatial_dim = probe_dims(self, self.dummy_input())

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, C, S, S) -> pooled (B, F), spatial (B, F, h, w) when a grid."""
        if not isinstance(inputs, Tensor):
            raise TypeError("an image encoder needs a (B, C, H, W) tensor")
        return module_output(self.backbone(pixel_values=inputs))


class HFTextEncoder(TextEncoder):
    """A transformers text model; pooled = mean of the last hidden states."""

    def __init__(self, backbone: nn.Module, preparer: TextPreparer) -> None:
        super().__init__(preparer)
        vocab = getattr(getattr(backbone, "config", None), "vocab_size", None)
        if vocab is not None and preparer.vocab_size > vocab:
            raise ValueError(
                f"tokenizer has {preparer.vocab_size} tokens but the model's "
                f"vocab_size is {vocab}"
            )
        self.backbone = _unused_pooler_frozen(backbone)
        self.lora_targets = lora_targets_for(backbone)
        self.feature_dim, _ = probe_dims(self, self.dummy_input())

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: input_ids, attention_mask (B, L) -> pooled (B, F)."""
        ids, mask = text_inputs(inputs)
        out = self.backbone(input_ids=ids, attention_mask=mask)
        return EncoderOutput(pooled=masked_mean(out.last_hidden_state, mask))


@ENCODERS.register("vit-tiny")
def build_vit_tiny(
    *,
    pretrained: bool = False,
    channels: int = 3,
    image_size: int = 28,
    patch_size: int = 4,
    hidden: int = 64,
    layers: int = 4,
    heads: int = 4,
    mlp_ratio: int = 2,
) -> HFVisionEncoder:
    """Tiny ViT (hidden 64, 4 layers, patch 4 at 28 px, ~140k params); random init."""
    from transformers import ViTConfig, ViTModel

    if pretrained:
        log.debug("vit-tiny has no pretrained weights; random init")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} not divisible by patch {patch_size}")
    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_channels=channels,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * mlp_ratio,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return HFVisionEncoder(
        ViTModel(config, add_pooling_layer=False), channels, image_size
    )


@ENCODERS.register("minilm")
def build_minilm(
    *, pretrained: bool = True, layers: int = 6, max_length: int = 32
) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (BERT, hidden 384; ``layers`` = k keeps the first k of 6)."""
    backbone = load_minilm(layers, pretrained)
    return HFTextEncoder(backbone, TextPreparer(minilm_tokenizer(), max_length))


@ENCODERS.register("bert-tiny")
def build_bert_tiny(
    *,
    pretrained: bool = False,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    max_length: int = 32,
) -> HFTextEncoder:
    """Random-init BERT (2 layers, hidden 64, ~2.1M params) on the MiniLM vocabulary."""
    from transformers import BertConfig, BertModel

    if pretrained:
        log.debug("bert-tiny has no pretrained weights; random init")
    preparer = TextPreparer(minilm_tokenizer(), max_length)
    config = BertConfig(
        vocab_size=preparer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=max(128, max_length),
    )
    return HFTextEncoder(BertModel(config, add_pooling_layer=False), preparer)
