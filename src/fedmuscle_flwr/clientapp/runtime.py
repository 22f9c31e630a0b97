"""One FedMuscle client, free of Flower: profile -> model, data, optimisers, state.

:class:`ClientRuntime` is built from the client's profile and the server's run
config, restores its state from the :class:`ClientStateStore`, runs one phase
(``train`` / ``align`` / ``evaluate``) and saves its state again
(:func:`fedmuscle_flwr.clientapp.runner.run_phase`, which may keep it warm
across messages). The ClientApp (``clientapp/app.py``) only translates Flower
messages to calls there. The run's algorithm comes with each instruction
(:attr:`~fedmuscle_flwr.wire.messages.Instruction.algorithm`): one look-up per
message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from fedmuscle_flwr.clientapp import trainer as training
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.data.base import PrivateData, PublicData
from fedmuscle_flwr.data.registry import load_participant_public, load_private
from fedmuscle_flwr.method import privacy
from fedmuscle_flwr.method.algorithms.base import Algorithm, AlignContext
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.method.seeds import (
    STREAM_PRIVACY,
    STREAM_REFIT,
    STREAM_TRAIN,
    client_seed,
    rng_for,
)
from fedmuscle_flwr.models.batchnorm import trainable_norms
from fedmuscle_flwr.models.client_model import (
    ClientModel,
    build_client_model,
    resolve_device,
)
from fedmuscle_flwr.tasks.base import Task
from fedmuscle_flwr.tasks.registry import get_task
from fedmuscle_flwr.wire.messages import (
    CLIENT_NAME,
    ENCODE_INDICES,
    LABEL_SPACE,
    METRIC_NAME,
    MODEL_NAME,
    NUM_EXAMPLES,
    PROBE_INDICES,
    SOFT_LABELS,
    STEP_INDICES,
    TASK_KIND,
    Instruction,
    Reply,
)

log = logging.getLogger(__name__)


@dataclass
class ClientRuntime:
    """A client's live objects for one message."""

    profile: ClientProfile
    run: RunConfig
    model: ClientModel
    task: Task
    data: PrivateData
    public: PublicData
    task_opt: torch.optim.Optimizer
    align_opt: torch.optim.Optimizer
    device: torch.device
    rounds_done: int = 0

    @classmethod
    def build(
        cls, profile: ClientProfile, run: RunConfig, algorithm: Algorithm
    ) -> ClientRuntime:
        """Fresh runtime: validates that task, data and model fit together.

        An unpinned partition seed follows the run's seed (``ClientProfile.for_run``).
        """
        task = get_task(profile.task.kind, profile.task.options)
        data = load_private(profile.for_run(run.seed).data)
        try:
            task.check_data(data.info)
        except ValueError as exc:
            raise ValueError(f"profile {profile.name!r}: task.kind: {exc}") from None
        model = build_client_model(
            profile.model,
            task,
            data.info.num_classes,
            run.muscle.dim,
            seed=run.seed + client_seed(profile),
        )
        device = resolve_device(run.device)
        model.to(device)
        task_opt = torch.optim.Adam(
            model.task_parameters(),
            lr=run.train.lr,
            weight_decay=run.train.weight_decay,
        )
        align_params = algorithm.align_parameters(model)
        align_opt = torch.optim.Adam(align_params, lr=run.muscle.lr)
        public = load_participant_public(run.public, profile.public)
        return cls(profile, run, model, task, data, public, task_opt, align_opt, device)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue: model, both optimisers, counters."""
        return {
            "model": self.model.state_dict(),
            "task-opt": self.task_opt.state_dict(),
            "align-opt": self.align_opt.state_dict(),
            "rounds-done": self.rounds_done,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict` output."""
        self.model.load_state_dict(state["model"])  # type: ignore[arg-type]
        self.task_opt.load_state_dict(state["task-opt"])  # type: ignore[arg-type]
        self.align_opt.load_state_dict(state["align-opt"])  # type: ignore[arg-type]
        self.rounds_done = int(state["rounds-done"])  # type: ignore[call-overload]

    # ----------------------------------------------------------------- phases
    def identity(self) -> dict[str, str]:
        """Who this client is (sent with every reply; no data, no weights)."""
        return {
            CLIENT_NAME: self.profile.name,
            TASK_KIND: self.task.kind,
            MODEL_NAME: self.profile.model.backbone,
            METRIC_NAME: self.task.primary_metric,
            LABEL_SPACE: self.label_space(),
            SOFT_LABELS: self.task.soft_labels or "",
        }

    def label_space(self) -> str:
        """Task kind/dataset/classes: who may share logits (or weights, same model).

        A packaged dataset is named; data from files or a plugin is named by its
        ordered class names (``DatasetInfo.label_key``), so two clients whose
        own folders hold the same classes share a label space.
        """
        info = self.data.info
        space = info.label_key or self.profile.data.dataset
        return f"{self.task.kind}/{space}/{info.num_classes}"

    def _encode(
        self, ins: Instruction, metrics: dict[str, float], phase: Phase
    ) -> Reply:
        idx = ins.arrays[ENCODE_INDICES]
        if idx.shape[0] == 0:
            return Reply(metrics, self.identity())
        algorithm = ins.algorithm
        z = training.encode_public(
            self.model,
            self.public,
            idx,
            self.device,
            algorithm.readout,
            batch_stats=not ins.run.muscle.freeze_norm_stats,
        )
        upload = self._upload(z, ins, phase, algorithm.space)
        return Reply(metrics, self.identity(), upload, idx)

    def _upload(
        self,
        z: np.ndarray,
        ins: Instruction,
        phase: Phase,
        space: str = "representation",
    ) -> np.ndarray:
        """``privacy``: clip + noise + renormalise what leaves the client.

        The phase's :attr:`~Phase.noise_key` keeps the noise of different
        uploads independent: reused noise would cancel in differences. The
        knobs are defined for unit-row representations only.
        """
        if space != "representation":
            if privacy.is_active(ins.run.privacy):
                raise ValueError(
                    f"privacy clipping/noise applies to representations; algorithm "
                    f"{ins.run.algorithm!r} uploads {space}"
                )
            return z
        key = (client_seed(self.profile), ins.server_round, ins.step, phase.noise_key)
        rng = rng_for(ins.run.seed, STREAM_PRIVACY, *key)
        return privacy.perturb(z, ins.run.privacy, rng)

    def train(self, ins: Instruction) -> Reply:
        """Phase 1 (E task epochs), then encode the requested public batches."""
        cfg = ins.run.train
        seed = client_seed(self.profile)
        rng = rng_for(ins.run.seed, STREAM_TRAIN, seed, ins.server_round)
        stats = training.train_task(
            self.model,
            self.task,
            self.data.train,
            self.task_opt,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            rng=rng,
            device=self.device,
            max_batches=cfg.max_batches,
            workers=self.profile.data.workers,
        )
        metrics = {
            "task-loss": stats.loss,
            "train-seconds": stats.seconds,
            NUM_EXAMPLES: float(len(self.data.train)),
        }
        algorithm = ins.algorithm
        if cfg.head_refit_epochs and not algorithm.aligns:
            metrics["refit-loss"] = self._refit_head(ins)  # same head epochs as others
        reply = self._encode(ins, metrics, Phase.TRAIN)
        weights = algorithm.train_upload(self.model)
        return reply if weights is None else replace(reply, weights=weights)

    def align(self, ins: Instruction) -> Reply:
        """Phase 2: Muscle (or the algorithm's) steps on w^n, then encode.

        A weight-sharing algorithm (fedavg) loads its group's mean model instead.
        """
        algorithm = ins.algorithm
        if ins.weights is not None:
            return self._load_weights(ins.weights)
        if not algorithm.aligns:
            raise ValueError(f"algorithm {algorithm.name!r} has no alignment phase")
        steps = ins.arrays[STEP_INDICES]
        payloads = self._payloads(ins, steps.shape[0])
        stats = training.align(
            self.model,
            self.public,
            steps,
            payloads,
            self.align_opt,
            algorithm=algorithm,
            ctx=AlignContext(ins.run.muscle, self.task),
            device=self.device,
        )
        metrics = {
            "align-loss": stats.loss,
            "align-loss-first": stats.first_loss,
            "align-seconds": stats.seconds,
            NUM_EXAMPLES: float(stats.num_examples),
        }
        last = (
            ins.run.muscle.sync == "per-round" or ins.step == ins.run.muscle.steps - 1
        )
        if ins.run.train.head_refit_epochs and last:
            metrics["refit-loss"] = self._refit_head(ins)
        return self._encode(ins, metrics, Phase.ALIGN)

    def _refit_head(self, ins: Instruction) -> float:
        """Task epochs on the head only, after the round's last phase-2 step.

        Not in the paper: phase 2 moves the encoder under a frozen head, which
        costs off-domain clients most of their accuracy; re-fitting the head on
        the private data recovers it (docs/results.md §5). Algorithms without
        phase-2 steps (local, fedavg) re-fit after phase 1, so that every
        algorithm gets the same head epochs. A fresh Adam each time.
        """
        cfg = ins.run.train
        opt = torch.optim.Adam(self.model.head_parameters(), lr=cfg.lr)
        rng = rng_for(
            ins.run.seed, STREAM_REFIT, client_seed(self.profile), ins.server_round
        )
        stats = training.train_task(
            self.model,
            self.task,
            self.data.train,
            opt,
            epochs=cfg.head_refit_epochs,
            batch_size=cfg.batch_size,
            rng=rng,
            device=self.device,
            max_batches=cfg.max_batches,
            workers=self.profile.data.workers,
        )
        return stats.loss

    def _load_weights(self, weights: Mapping[str, np.ndarray]) -> Reply:
        """Load the group's mean model (strict: names and shapes must match)."""
        state = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"the mean model does not fit this client: {exc}"
            ) from None
        return Reply({NUM_EXAMPLES: 0.0}, self.identity())

    def _payloads(self, ins: Instruction, steps: int) -> list[dict[str, torch.Tensor]]:
        keys = ins.algorithm.payloads(ins.run.muscle).relay  # what the server relays
        tensors = {k: torch.from_numpy(ins.arrays[k]).to(self.device) for k in keys}
        for k, t in tensors.items():
            if t.shape[0] != steps:
                raise ValueError(f"{k}: {t.shape[0]} steps for {steps} batches")
        return [{k: t[s] for k, t in tensors.items()} for s in range(steps)]

    def evaluate(self, ins: Instruction) -> Reply:
        """Task metrics on the own test split + probe representations.

        With ``eval.norm-stats = "recompute"`` (default) the BatchNorm running
        statistics are first re-estimated on the private train split, for every
        algorithm alike; the metric with the running averages as they were is
        reported beside it as ``metric-running-stats``. The re-estimate lives for
        this evaluation only: evaluate saves no state, and the model's buffers are
        put back afterwards, so that a runtime kept warm for the next message
        holds what a cold one would load (the saved state).
        """
        kept = {n: b.detach().clone() for n, b in self.model.named_buffers()}
        try:
            return self._evaluate(ins)
        finally:
            with torch.no_grad():
                for name, buf in self.model.named_buffers():
                    buf.copy_(kept[name])

    def _evaluate(self, ins: Instruction) -> Reply:
        batch_size = max(ins.run.train.batch_size, 128)
        metrics = self._test_metrics(batch_size)
        recompute = ins.run.eval.norm_stats == "recompute"
        if recompute and trainable_norms(self.model):
            running = metrics[self.task.primary_metric]
            training.recompute_norm_statistics(
                self.model,
                self.data.train,
                batch_size=batch_size,
                device=self.device,
                max_batches=ins.run.eval.norm_stats_batches,
            )
            metrics = self._test_metrics(batch_size)
            metrics["metric-running-stats"] = running
        metrics["metric"] = metrics[self.task.primary_metric]
        metrics[NUM_EXAMPLES] = float(len(self.data.test))
        probe = ins.arrays[PROBE_INDICES][None, :]  # (1, P)
        z = training.encode_public(
            self.model,
            self.public,
            probe,
            self.device,
            batch_stats=not ins.run.muscle.freeze_norm_stats,
        )
        z = self._upload(z, ins, Phase.EVALUATE)
        return Reply(metrics, self.identity(), z, probe)

    def _test_metrics(self, batch_size: int) -> dict[str, float]:
        return training.evaluate(
            self.model,
            self.task,
            self.data.test,
            batch_size=batch_size,
            device=self.device,
            num_outputs=self.data.info.num_classes,
            workers=self.profile.data.workers,
        )
