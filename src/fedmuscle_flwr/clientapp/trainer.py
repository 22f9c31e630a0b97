"""The local trainer: plain PyTorch, no Flower (docs/method.md §3, client side).

One round of a client is (Algorithm 1 of the paper, client lines):

1. ``train_task``: E epochs of the task loss on private data (whole model θ^n);
2. ``encode_public``: Z^n = normalize(w^n(P[idx])) for the public batches asked;
3. ``align``: T steps minimising the alignment loss (Muscle by default) against
   the partners' representations, updating w^n only (task head φ^n frozen);
4. ``evaluate``: the task metric on the client's own test split.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fedmuscle_flwr.data.base import PublicData, Split
from fedmuscle_flwr.data.loader import iter_batches
from fedmuscle_flwr.method.algorithms.base import Algorithm, AlignContext, StepPayload
from fedmuscle_flwr.models.base import ModelInput, move_to
from fedmuscle_flwr.models.batchnorm import (
    public_encoding,
    recompute_running_stats,
    trainable_norms,
)
from fedmuscle_flwr.models.client_model import ClientModel, public_inputs
from fedmuscle_flwr.tasks.base import Task

#: what a client uploads of a public batch: (model, inputs) -> (B, D)
Readout = Callable[[ClientModel, ModelInput], Tensor]


def _representation(model: ClientModel, inputs: ModelInput) -> Tensor:
    return model.represent(inputs)


@dataclass(frozen=True)
class PhaseStats:
    """What a phase reports: mean loss, examples seen, wall seconds."""

    loss: float
    num_examples: int
    seconds: float
    first_loss: float = float("nan")


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_task(
    model: ClientModel,
    task: Task,
    split: Split,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    device: torch.device,
    max_batches: int = 0,
    workers: int = 0,
) -> PhaseStats:
    """Phase 1: ``epochs`` epochs of the task loss over ``split`` (θ^n).

    The batch order is drawn from ``rng`` here; a lazily decoded split is
    decoded by ``workers`` DataLoader processes in that order
    (:func:`~fedmuscle_flwr.data.loader.iter_batches`), an in-memory one is
    sliced in this process.
    """
    model.train()
    t0, total, seen = time.perf_counter(), 0.0, 0
    for _ in range(epochs):
        order = list(_batches(len(split), batch_size, rng))
        if max_batches:
            order = order[:max_batches]
        for batch in iter_batches(split, order, workers):
            inputs = move_to(model.prepare(batch.x), device)
            targets = task.targets(batch.y).to(device)
            out = model(inputs)
            assert out.logits is not None
            loss = task.loss(out.logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
    return PhaseStats(total / max(seen, 1), seen, time.perf_counter() - t0)


@torch.no_grad()
def encode_public(
    model: ClientModel,
    public: PublicData,
    indices: np.ndarray,
    device: torch.device,
    readout: Readout = _representation,
    *,
    batch_stats: bool = True,
) -> np.ndarray:
    """Z^n (or logits) of each batch of ``indices`` (K, B), K >= 1 -> (K, B, D).

    Encoded as :func:`align` encodes its anchor (:func:`public_encoding`: each
    public batch normalised by its own BatchNorm statistics, dropout off, the
    running statistics untouched); ``batch_stats=False``: plain eval mode.
    """
    with public_encoding(model, batch_stats=batch_stats):
        out = [
            readout(model, public_inputs(model, public, row, device)).float().cpu()  # type: ignore[arg-type]
            for row in indices
        ]
    return torch.stack(out).numpy()  # (K, B, d)


def align(
    model: ClientModel,
    public: PublicData,
    step_indices: np.ndarray,
    payloads: Sequence[StepPayload],
    optimizer: torch.optim.Optimizer,
    *,
    algorithm: Algorithm,
    ctx: AlignContext,
    device: torch.device,
) -> PhaseStats:
    """Phase 2: one step per public batch in ``step_indices`` (S, B).

    ``payloads[s]`` holds what the server sent for step s (already on ``device``).
    In representation space only w^n is in ``optimizer``: the task head is
    neither evaluated nor updated (frozen, docs/method.md §3 step 2c); logit-space
    baselines pass the task parameters.

    The anchor is encoded exactly as :func:`encode_public` encodes uploads
    (:func:`public_encoding`): BatchNorm normalises each public batch with its
    own statistics and its running statistics (the private data's) are left as
    they were, so phase 2 leaves no public-data statistics in the model that
    evaluates private data. With ``ctx.cfg.freeze_norm_stats`` (an ablation)
    both use the running statistics instead.
    """
    t0, losses = time.perf_counter(), []
    with public_encoding(model, batch_stats=not ctx.cfg.freeze_norm_stats):
        for row, payload in zip(step_indices, payloads, strict=True):
            raw = public.batch(row, model.modality)
            loss = algorithm.step_loss(model, raw, payload, ctx, device)  # scalar
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    n = int(step_indices.size)
    mean = float(np.mean(losses)) if losses else float("nan")
    first = losses[0] if losses else float("nan")
    return PhaseStats(mean, n, time.perf_counter() - t0, first_loss=first)


def recompute_norm_statistics(
    model: ClientModel,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    max_batches: int = 0,
) -> int:
    """Re-estimate the BatchNorm running statistics on ``split`` (private train data).

    No weight changes: one pass in eval mode with BatchNorm accumulating the exact
    mean of the batches' statistics (:func:`recompute_running_stats`). Run before
    every evaluation, for every algorithm alike (``eval.norm-stats = "recompute"``):
    running averages lag the weights of a briefly trained model. Batches are equal
    splits of the data (none of one sample); ``max_batches`` caps them (0: all).
    Returns the number of batches used (0 without BatchNorm layers).
    """
    if not trainable_norms(model) or len(split) < 2:
        return 0
    chunks = np.array_split(np.arange(len(split)), max(1, len(split) // batch_size))
    if max_batches:
        chunks = chunks[:max_batches]

    def forward(idx: object) -> object:
        raw = split.batch(idx)  # type: ignore[arg-type]
        return model(move_to(model.prepare(raw), device))

    return recompute_running_stats(model, chunks, forward)


@torch.no_grad()
def evaluate(
    model: ClientModel,
    task: Task,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    num_outputs: int,
    workers: int = 0,
) -> dict[str, float]:
    """The task metrics on ``split`` plus the mean task loss (``workers``: as train)."""
    model.eval()
    meter = task.meter(num_outputs)
    total = 0.0
    order = [
        np.arange(start, min(start + batch_size, len(split)))
        for start in range(0, len(split), batch_size)
    ]
    for batch in iter_batches(split, order, workers):
        inputs = move_to(model.prepare(batch.x), device)
        targets = task.targets(batch.y).to(device)
        logits = model(inputs).logits
        assert logits is not None
        total += float(task.loss(logits, targets)) * len(batch)
        meter.update(logits, targets)
    metrics = meter.compute()
    metrics["test-loss"] = total / max(len(split), 1)
    return metrics
