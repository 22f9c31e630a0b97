"""Model zoo: encoders (backbones), projector, client model, registry, LoRA.

No flwr imports in this package.
"""
