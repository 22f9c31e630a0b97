"""The local trainer: plain PyTorch, no Flower (fedmuscle.md §3, client side).

One round of a client is (Algorithm 1 of the paper, client lines):

1. ``train_task``: E epochs of the task loss on private data (whole model θ^n);
2. ``encode_public``: Z^n = normalize(w^n(P[idx])) for the public batches asked;
3. ``align``: T steps minimising the alignment loss (Muscle by default) against
   the partners' representations, updating w^n only (task head φ^n frozen);
4. ``evaluate``: the task metric on the client's own test split.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from fedmuscle_flwr import baseline_losses as bl
from fedmuscle_flwr.config import MuscleConfig
from fedmuscle_flwr.data.base import PublicData, Split
from fedmuscle_flwr.losses import (
    muscle_loss,
    muscle_loss_from_aggregate,
    pairwise_infonce,
)
from fedmuscle_flwr.models.base import ModelInput, move_to
from fedmuscle_flwr.models.client_model import ClientModel
from fedmuscle_flwr.tasks.base import Task
from fedmuscle_flwr.tasks.soft import SOFT_LABELS, SoftLabels

#: one alignment step's payload: partners (M, B, D), or (S (B^M, d), log α (B^M,))
StepPayload = Mapping[str, Tensor]


@dataclass(frozen=True)
class AlignContext:
    """What an alignment loss may need besides anchor and payload."""

    cfg: MuscleConfig
    task: Task

    @property
    def soft(self) -> SoftLabels:
        """The task's soft labels; ``ValueError`` for tasks without (B, C) labels."""
        if self.task.soft_labels is None:
            raise ValueError(
                f"task {self.task.kind!r} has no per-sample label distribution: "
                "it cannot take part in logit distillation"
            )
        return SOFT_LABELS[self.task.soft_labels]


AlignLoss = Callable[[Tensor, StepPayload, AlignContext], Tensor]


def _muscle(anchor: Tensor, payload: StepPayload, ctx: AlignContext) -> Tensor:
    if "aggregate" in payload:  # the paper's downlink: S^n and log α^n
        return muscle_loss_from_aggregate(
            anchor, payload["aggregate"], payload["log-alpha"]
        )
    cfg = ctx.cfg
    return muscle_loss(
        anchor,
        payload["partners"],
        cfg.tau,
        cfg.tau_partners,
        max_tuples=cfg.max_tuples,
    )


def _pairwise(anchor: Tensor, payload: StepPayload, ctx: AlignContext) -> Tensor:
    return pairwise_infonce(anchor, payload["partners"], ctx.cfg.tau)


def _cka(anchor: Tensor, payload: StepPayload, ctx: AlignContext) -> Tensor:
    return bl.cka_distance(anchor, payload["partners"])


def _gramian(anchor: Tensor, payload: StepPayload, ctx: AlignContext) -> Tensor:
    return bl.gramian_loss(anchor, payload["partners"], ctx.cfg.tau)


def _consensus_l1(anchor: Tensor, payload: StepPayload, ctx: AlignContext) -> Tensor:
    return bl.consensus_l1(anchor, payload["partners"])


def _ensemble_kd(anchor: Tensor, payload: StepPayload, ctx: AlignContext) -> Tensor:
    soft = ctx.soft
    temperature = ctx.cfg.kd_temperature
    return bl.ensemble_kd(
        anchor, payload["partners"], temperature, soft.probs, soft.soft_loss
    )


def _pseudo_label(anchor: Tensor, payload: StepPayload, ctx: AlignContext) -> Tensor:
    soft = ctx.soft
    return bl.pseudo_label_loss(
        anchor, payload["partners"], soft.probs, soft.hard_targets, ctx.task.loss
    )


#: alignment losses by name; algorithms pick one (registry, no elif on names)
ALIGN_LOSSES: dict[str, AlignLoss] = {
    "muscle": _muscle,
    "pairwise": _pairwise,
    "cka": _cka,
    "gramian": _gramian,
    "consensus-l1": _consensus_l1,
    "ensemble-kd": _ensemble_kd,
    "pseudo-label": _pseudo_label,
}

#: what a client uploads of a public batch: (model, inputs) -> (B, D)
Readout = Callable[[ClientModel, ModelInput], Tensor]


def _representation(model: ClientModel, inputs: ModelInput) -> Tensor:
    return model.represent(inputs)


def _logits(model: ClientModel, inputs: ModelInput) -> Tensor:
    logits = model(inputs).logits
    assert logits is not None
    # per-pixel (B, K, h, w) -> image-level (B, K); such tasks never get partners
    return logits.flatten(2).mean(-1) if logits.dim() > 2 else logits


#: the spaces an algorithm can align in (``algorithms.Algorithm.space``)
READOUTS: dict[str, Readout] = {"representation": _representation, "logits": _logits}


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
) -> PhaseStats:
    """Phase 1: ``epochs`` epochs of the task loss over ``split`` (θ^n)."""
    model.train()
    t0, total, seen = time.perf_counter(), 0.0, 0
    for _ in range(epochs):
        for i, idx in enumerate(_batches(len(split), batch_size, rng)):
            if max_batches and i >= max_batches:
                break
            batch = split.take(idx)
            inputs = move_to(model.prepare(batch.x), device)  # type: ignore[arg-type]
            targets = task.targets(batch.y).to(device)
            out = model(inputs)
            assert out.logits is not None
            loss = task.loss(out.logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
    return PhaseStats(total / max(seen, 1), seen, time.perf_counter() - t0)


def public_inputs(
    model: ClientModel, public: PublicData, indices: np.ndarray, device: torch.device
) -> object:
    """Model inputs for public samples ``indices`` (B,) in the client's modality."""
    raw = public.batch(indices, model.encoder.modality)
    return move_to(model.prepare(raw), device)


@torch.no_grad()
def encode_public(
    model: ClientModel,
    public: PublicData,
    indices: np.ndarray,
    device: torch.device,
    readout: Readout = _representation,
) -> np.ndarray:
    """Z^n (or logits) of each batch of ``indices`` (K, B), K >= 1 -> (K, B, D)."""
    model.eval()
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
    loss_fn: AlignLoss,
    ctx: AlignContext,
    device: torch.device,
    readout: Readout = _representation,
) -> PhaseStats:
    """Phase 2: one step per public batch in ``step_indices`` (S, B).

    ``payloads[s]`` holds what the server sent for step s (already on ``device``).
    In representation space only w^n is in ``optimizer``: the task head is
    neither evaluated nor updated (frozen, fedmuscle.md §3 step 2c); logit-space
    baselines pass the task parameters.

    With ``ctx.cfg.freeze_norm_stats`` the normalisation layers keep the running
    statistics of the private data (see :func:`freeze_norm_statistics`).
    """
    model.train()
    if ctx.cfg.freeze_norm_stats:
        freeze_norm_statistics(model)
    t0, losses = time.perf_counter(), []
    for row, payload in zip(step_indices, payloads, strict=True):
        anchor = readout(model, public_inputs(model, public, row, device))  # type: ignore[arg-type]
        loss = loss_fn(anchor, payload, ctx)  # (B, D) -> scalar
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    n = int(step_indices.size)
    mean = float(np.mean(losses)) if losses else float("nan")
    first = losses[0] if losses else float("nan")
    return PhaseStats(mean, n, time.perf_counter() - t0, first_loss=first)


def freeze_norm_statistics(model: torch.nn.Module) -> int:
    """Put every BatchNorm layer in eval mode; return how many there are.

    Phase 2 sees public data only: in train mode a BatchNorm layer normalises
    with, and moves its running statistics towards, the *public* data's
    statistics, which the frozen task head then meets at test time. Frozen
    statistics keep the private data's normalisation (the affine weights still
    train). Measured as an ablation (``muscle.freeze-norm-stats``, off by
    default): it does not stop the accuracy loss of off-domain clients and is
    worse on the default federation (docs/results.md §5).
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for m in norms:
        m.eval()
    return len(norms)


@torch.no_grad()
def evaluate(
    model: ClientModel,
    task: Task,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    num_outputs: int,
) -> dict[str, float]:
    """The task metrics on ``split`` plus the mean task loss."""
    model.eval()
    meter = task.meter(num_outputs)
    total = 0.0
    for start in range(0, len(split), batch_size):
        batch = split.take(np.arange(start, min(start + batch_size, len(split))))
        inputs = move_to(model.prepare(batch.x), device)  # type: ignore[arg-type]
        targets = task.targets(batch.y).to(device)
        logits = model(inputs).logits
        assert logits is not None
        total += float(task.loss(logits, targets)) * len(batch)
        meter.update(logits, targets)
    metrics = meter.compute()
    metrics["test-loss"] = total / max(len(split), 1)
    return metrics


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
