"""The in-process Flower Grid used by tests (see :mod:`fedmuscle_flwr.inprocess`)."""

from fedmuscle_flwr.inprocess import InProcessGrid as LoopbackGrid

__all__ = ["LoopbackGrid"]
