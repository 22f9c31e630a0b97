"""fedmuscle-flwr: FedMuscle (ICLR 2026) on Flower, heterogeneous models and tasks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
