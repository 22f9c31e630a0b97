"""BatchNorm statistics: which data a model's normalisation layers describe.

A BatchNorm layer in train mode normalises with the batch's statistics and moves
its running statistics towards them; in eval mode it normalises with the running
statistics. Two consequences for FedMuscle (issue 16):

* Phase 2 feeds *public* batches. In plain train mode it would leave public-data
  running statistics in the model that then evaluates *private* test data.
  :func:`public_encoding` normalises public batches with their own statistics
  and leaves the running statistics untouched; the anchor of the Muscle loss and
  every uploaded representation are encoded in this one mode (dropout off), so a
  client minimises the loss of exactly what its partners see.
* Running averages lag the weights of a small model trained for a few epochs.
  :func:`recompute_running_stats` re-estimates them on the client's private
  training data (weights unchanged) before an evaluation, for every algorithm.

Layers of a frozen encoder (``ClientModel.frozen_encoder``) stay in eval mode
and keep their (pretrained) statistics in both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def trainable_norms(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers that follow the train mode (not those of a frozen encoder)."""
    frozen: set[int] = set()
    encoder = getattr(model, "encoder", None)
    if getattr(model, "frozen_encoder", False) and isinstance(encoder, nn.Module):
        frozen = {id(m) for m in encoder.modules()}
    return [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and id(m) not in frozen
    ]


@contextmanager
def public_encoding(model: nn.Module, *, batch_stats: bool = True) -> Iterator[None]:
    """Eval mode, except that BatchNorm normalises with the batch's statistics.

    The running statistics are neither used nor changed (``track_running_stats``
    is off inside the block). ``batch_stats=False`` is plain eval mode: the
    running statistics normalise the batch (the ``muscle.freeze-norm-stats``
    ablation). The model's train/eval flags are restored afterwards.
    """
    modes = {id(m): m.training for m in model.modules()}
    norms = trainable_norms(model) if batch_stats else []
    model.eval()
    for m in norms:
        m.train()
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
        for module in model.modules():
            module.training = modes[id(module)]


@torch.no_grad()
def recompute_running_stats(
    model: nn.Module, batches: Iterable[object], forward: Callable[[object], object]
) -> int:
    """Replace the running statistics by their exact mean over ``batches``.

    ``forward(batch)`` runs the model on one batch. Every trainable BatchNorm
    layer is reset and accumulates a cumulative (not exponential) average
    (``momentum=None``); dropout is off. Returns the number of batches seen; with
    no BatchNorm layer nothing runs and 0 is returned.
    """
    norms = trainable_norms(model)
    if not norms:
        return 0
    modes = {id(m): m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        for batch in batches:
            forward(batch)
            seen += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for module in model.modules():
            module.training = modes[id(module)]
    return seen
