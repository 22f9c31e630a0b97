"""``hf:<model id or local path>`` backbones through ``transformers.AutoModel``.

Resolution, all offline-safe (``local_files_only=True``):

1. config: a local folder or the Hugging Face cache; else a built-in default
   config for a few common ids (:data:`OFFLINE_CONFIGS`); else ``ValueError``;
2. weights (``pretrained``): the same folder/cache; else RANDOM INIT, logged;
3. text models get their tokenizer from the folder/cache (or option
   ``tokenizer``), falling back to the bundled MiniLM (bert-base-uncased) vocabulary.
"""

from __future__ import annotations

import logging
from typing import Any

from fedmuscle_flwr.models.common import ImageEncoder, TextEncoder
from fedmuscle_flwr.models.preprocess import TextPreparer
from fedmuscle_flwr.models.pretrained import minilm_tokenizer
from fedmuscle_flwr.models.transformer import HFTextEncoder, HFVisionEncoder

log = logging.getLogger(__name__)

#: model id -> (transformers config class, its kwargs); library defaults otherwise
OFFLINE_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert-base-uncased": ("BertConfig", {}),
    "google-bert/bert-base-uncased": ("BertConfig", {}),
    "distilbert-base-uncased": ("DistilBertConfig", {}),
    "distilbert/distilbert-base-uncased": ("DistilBertConfig", {}),
    "prajjwal1/bert-tiny": (
        "BertConfig",
        {
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 512,
        },
    ),
    "google/vit-base-patch16-224": ("ViTConfig", {}),
    "google/vit-base-patch16-224-in21k": ("ViTConfig", {}),
    "facebook/deit-tiny-patch16-224": (
        "DeiTConfig",
        {"hidden_size": 192, "num_attention_heads": 3, "intermediate_size": 768},
    ),
    "nvidia/mit-b0": ("SegformerConfig", {}),
}


def _config(model_id: str, overrides: dict[str, Any]) -> tuple[Any, bool]:
    """(config, whether it came from a local folder or the cache)."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(
            model_id, local_files_only=True, **overrides
        )
        return config, True
    except (OSError, ValueError):
        pass
    if model_id not in OFFLINE_CONFIGS:
        raise ValueError(
            f"model.backbone 'hf:{model_id}': not a local folder and not in the "
            "Hugging Face cache; "
            f"offline defaults exist for {sorted(OFFLINE_CONFIGS)}"
        )
    cls_name, kwargs = OFFLINE_CONFIGS[model_id]
    config = getattr(transformers, cls_name)(**{**kwargs, **overrides})
    return config, False


def _model(model_id: str, config: Any, local: bool, pretrained: bool) -> Any:
    from transformers import AutoModel

    if pretrained and local:
        try:
            model = AutoModel.from_pretrained(
                model_id,
                config=config,
                local_files_only=True,
                ignore_mismatched_sizes=True,
            )
        except (OSError, ValueError) as exc:
            log.warning("hf:%s: no local weights (%s); RANDOM INIT", model_id, exc)
        else:
            log.info("hf:%s: loaded pretrained weights (local files)", model_id)
            return model
    elif pretrained:
        log.warning(
            "hf:%s: offline, weights not cached; RANDOM INIT from the default config",
            model_id,
        )
    else:
        log.info("hf:%s: random init (pretrained=false)", model_id)
    return AutoModel.from_config(config)


def _tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError, TypeError):
        log.info("hf:%s: no local tokenizer; using the MiniLM (bert-uncased) one", name)
        return minilm_tokenizer()


def build_hf(
    model_id: str,
    *,
    pretrained: bool = True,
    config: dict[str, Any] | None = None,
    image_size: int | None = None,
    channels: int = 3,
    max_length: int = 32,
    tokenizer: str | None = None,
) -> ImageEncoder | TextEncoder:
    """Wrap a transformers model (BERT, DistilBERT, ViT, SegFormer, ...) as an encoder.

    ``config`` overrides config fields (e.g. ``num_hidden_layers``); for vision
    models ``image_size`` defaults to the config's and is written into it.
    """
    overrides = dict(config or {})
    if image_size is not None:
        overrides.setdefault("image_size", image_size)
    if channels != 3:
        overrides.setdefault("num_channels", channels)
    cfg, local = _config(model_id, overrides)
    model = _model(model_id, cfg, local, pretrained)
    if getattr(cfg, "vocab_size", None) is not None:
        preparer = TextPreparer(_tokenizer(tokenizer or model_id), max_length)
        return HFTextEncoder(model, preparer)
    size = getattr(cfg, "image_size", None) if image_size is None else image_size
    if isinstance(size, list | tuple):
        size = size[0]
    return HFVisionEncoder(model, channels, int(size or 224))
