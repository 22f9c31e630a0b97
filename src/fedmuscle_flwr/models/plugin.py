"""User backbones by import path: ``backbone = "package.module:callable"``.

The callable gets the profile's ``model.options`` it accepts (and ``pretrained``
if it has such a parameter) and returns either an :class:`Encoder` (used as is)
or any ``nn.Module`` that maps an image batch (B, C, H, W) — or, for text, the
keyword arguments ``input_ids``/``attention_mask`` — to features (B, F),
tokens (B, L, D), a map (B, C, h, w) or a Hugging Face output. Plain modules are
wrapped in :class:`ModuleEncoder`, which infers F by a dummy forward. Adapter
options: ``modality`` (image|text, default image), ``image_size`` (32),
``channels`` (3), ``max_length`` (32), ``tokenizer`` (local path; default MiniLM).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from fedmuscle_flwr.config.imports import load_callable as import_callable
from fedmuscle_flwr.models.base import Encoder, EncoderOutput, ModelInput
from fedmuscle_flwr.models.common import (
    ImageEncoder,
    TextEncoder,
    module_output,
    probe_dims,
    text_inputs,
)
from fedmuscle_flwr.models.preprocess import TextPreparer
from fedmuscle_flwr.models.pretrained import minilm_tokenizer
from fedmuscle_flwr.models.transformer import lora_targets_for

ADAPTER_OPTIONS = ("modality", "image_size", "channels", "max_length", "tokenizer")


def load_callable(path: str) -> Callable[..., Any]:
    """Import the backbone ``"package.module:callable"`` (``mod:Cls.make`` too)."""
    return import_callable(path, "model.backbone")


class ModuleImageEncoder(ImageEncoder):
    """Adapter: a plain image ``nn.Module`` as an :class:`Encoder`."""

    def __init__(self, module: nn.Module, channels: int, image_size: int) -> None:
        super().__init__(channels, image_size)
        self.module = module
        self.lora_targets = lora_targets_for(module)
        self.feature_dim, self.spatial_dim = probe_dims(self, self.dummy_input())

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: (B, C, S, S) -> pooled (B, F) [+ spatial (B, F, h, w)]."""
        if not isinstance(inputs, Tensor):
            raise TypeError("an image encoder needs a (B, C, H, W) tensor")
        return module_output(self.module(inputs))


class ModuleTextEncoder(TextEncoder):
    """Adapter: a plain text ``nn.Module`` called with ids and attention mask."""

    def __init__(self, module: nn.Module, preparer: TextPreparer) -> None:
        super().__init__(preparer)
        self.module = module
        self.lora_targets = lora_targets_for(module)
        self.feature_dim, _ = probe_dims(self, self.dummy_input())

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: input_ids, attention_mask (B, L) -> pooled (B, F)."""
        ids, mask = text_inputs(inputs)
        return module_output(self.module(input_ids=ids, attention_mask=mask), mask)


def _call_kwargs(
    fn: Callable[..., Any], options: dict[str, Any], pretrained: bool, path: str
) -> dict[str, Any]:
    """Select the options ``fn`` accepts; unknown non-adapter ones raise ValueError."""
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in options.items() if var_kw or k in params}
    unknown = set(options) - set(kwargs) - set(ADAPTER_OPTIONS)
    if unknown:
        raise ValueError(
            f"model.options {sorted(unknown)} not accepted by {path!r}; "
            f"its parameters: {sorted(params)}"
        )
    if "pretrained" in params:
        kwargs["pretrained"] = pretrained
    return kwargs


def build_plugin(path: str, options: dict[str, Any], pretrained: bool) -> Encoder:
    """Build the user backbone at ``path`` with ``options``; wrap plain modules."""
    fn = load_callable(path)
    built = fn(**_call_kwargs(fn, options, pretrained, path))
    if isinstance(built, Encoder):
        return built
    if not isinstance(built, nn.Module):
        raise ValueError(
            f"model.backbone {path!r} returned {type(built).__name__}, "
            "expected an Encoder or an nn.Module"
        )
    modality = options.get("modality", "image")
    if modality == "text":
        tok = options.get("tokenizer")
        tokenizer = minilm_tokenizer() if tok is None else _local_tokenizer(tok)
        preparer = TextPreparer(tokenizer, int(options.get("max_length", 32)))
        return ModuleTextEncoder(built, preparer)
    if modality != "image":
        raise ValueError(f"model.options.modality must be image|text, got {modality!r}")
    channels = int(options.get("channels", 3))
    return ModuleImageEncoder(built, channels, int(options.get("image_size", 32)))


def _local_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)
