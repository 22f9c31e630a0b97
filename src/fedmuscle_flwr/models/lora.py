"""LoRA adapters (peft) on an encoder's transformer backbone."""

from __future__ import annotations

import logging

from torch import nn

from fedmuscle_flwr.config.profile import LoraConfig
from fedmuscle_flwr.models.base import Encoder

log = logging.getLogger(__name__)

_ADAPTER_TAG = "lora_"


def apply_lora(encoder: Encoder, cfg: LoraConfig) -> Encoder:
    """Inject LoRA adapters into ``encoder`` in place and freeze everything else.

    Target modules are ``cfg.target_modules`` or, when empty, the encoder's
    encoder's defaults (``encoder.lora_targets``: the attention query/value
    projections found in its backbone: query/value for BERT, q_proj/v_proj for
    ViT/DeiT/SegFormer, q_lin/v_lin for DistilBERT). Rank 0 is a no-op.

    Raises
    ------
    ValueError
        Rank > 0 on an encoder without default targets and no
        ``model.lora.target-modules``, or targets that match no module.
    """
    if cfg.rank == 0:
        return encoder
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    targets = tuple(cfg.target_modules) or tuple(getattr(encoder, "lora_targets", ()))
    if not targets:
        raise ValueError(
            f"model.lora: {type(encoder).__name__} is not a known transformer "
            "backbone; set model.lora.target-modules to the module names to adapt"
        )
    peft_cfg = PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,  # type: ignore[arg-type]  # peft annotates int
        lora_dropout=cfg.dropout,
        target_modules=list(targets),
    )
    try:
        inject_adapter_in_model(peft_cfg, encoder)
    except ValueError as exc:
        raise ValueError(f"model.lora.target-modules {list(targets)}: {exc}") from exc
    n_adapter = freeze_all_but_adapters(encoder)
    log.info("LoRA rank %d on %s: %d adapter params", cfg.rank, targets, n_adapter)
    return encoder


def freeze_all_but_adapters(module: nn.Module) -> int:
    """Set ``requires_grad`` only on LoRA parameters; return their count."""
    count = 0
    for name, param in module.named_parameters():
        param.requires_grad = _ADAPTER_TAG in name
        count += param.numel() if param.requires_grad else 0
    if count == 0:
        raise ValueError("model.lora: no adapter parameters were created")
    return count
