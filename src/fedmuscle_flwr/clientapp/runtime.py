"""One FedMuscle client, free of Flower: profile -> model, data, optimisers, state.

:class:`ClientRuntime` is built from the client's profile and the server's run
config, restores its state from the :class:`ClientStateStore`, runs one phase
(``train`` / ``align`` / ``evaluate``) and saves its state again: per message,
unless a :class:`RuntimeCache` keeps it warm across messages (``fedmuscle
client``'s warm executor). The ClientApp (``client_app.py``) only translates
Flower messages to calls here.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

from fedmuscle_flwr.clientapp import trainer as training
from fedmuscle_flwr.clientapp.state import ClientStateStore, Stamp
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.data.base import PrivateData, PublicData
from fedmuscle_flwr.data.registry import load_private, load_public
from fedmuscle_flwr.method import privacy
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import AlignContext
from fedmuscle_flwr.method.seeds import (
    STREAM_PRIVACY,
    STREAM_REFIT,
    STREAM_TORCH,
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
    AGGREGATE,
    CLIENT_NAME,
    ENCODE_INDICES,
    LABEL_SPACE,
    LOG_ALPHA,
    METRIC_NAME,
    MODEL_NAME,
    NUM_EXAMPLES,
    PARTNERS,
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
    def build(cls, profile: ClientProfile, run: RunConfig) -> ClientRuntime:
        """Fresh runtime: validates that task, data and model fit together."""
        task = get_task(profile.task.kind, profile.task.options)
        data = load_private(profile.data)
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
        align_params = get_algorithm(run.algorithm).align_parameters(model)
        align_opt = torch.optim.Adam(align_params, lr=run.muscle.lr)
        public = load_public(run.public.dataset, run.public.size)
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
        """Task kind/dataset/classes: who may share logits (or weights, same model)."""
        classes = self.data.info.num_classes
        return f"{self.task.kind}/{self.profile.data.dataset}/{classes}"

    def _encode(self, ins: Instruction, metrics: dict[str, float], phase: int) -> Reply:
        idx = ins.arrays[ENCODE_INDICES]
        if idx.shape[0] == 0:
            return Reply(metrics, self.identity())
        algorithm = get_algorithm(ins.run.algorithm)
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
        phase: int,
        space: str = "representation",
    ) -> np.ndarray:
        """``privacy``: clip + noise + renormalise what leaves the client.

        ``phase`` (0 train, 1 evaluate, 2 align) keeps the noise of different
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
        key = (client_seed(self.profile), ins.server_round, ins.step, phase)
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
        )
        metrics = {
            "task-loss": stats.loss,
            "train-seconds": stats.seconds,
            NUM_EXAMPLES: float(len(self.data.train)),
        }
        algorithm = get_algorithm(ins.run.algorithm)
        if cfg.head_refit_epochs and not algorithm.aligns:
            metrics["refit-loss"] = self._refit_head(ins)  # same head epochs as others
        reply = self._encode(ins, metrics, 0)
        weights = algorithm.train_upload(self.model)
        return reply if weights is None else replace(reply, weights=weights)

    def align(self, ins: Instruction) -> Reply:
        """Phase 2: Muscle (or the algorithm's) steps on w^n, then encode.

        A weight-sharing algorithm (fedavg) loads its group's mean model instead.
        """
        algorithm = get_algorithm(ins.run.algorithm)
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
        return self._encode(ins, metrics, 2)

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
        keys = (PARTNERS,) if PARTNERS in ins.arrays else (AGGREGATE, LOG_ALPHA)
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
        this evaluation only (evaluate saves no state).
        """
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
        return Reply(metrics, self.identity(), self._upload(z, ins, 1), probe)

    def _test_metrics(self, batch_size: int) -> dict[str, float]:
        return training.evaluate(
            self.model,
            self.task,
            self.data.test,
            batch_size=batch_size,
            device=self.device,
            num_outputs=self.data.info.num_classes,
        )


class RuntimeCache:
    """Live :class:`ClientRuntime` objects kept across messages, per (run, client).

    A cached runtime is reused only for the same profile and run config, and
    only while the client's state file is still the one it saved last (same
    inode, mtime, size): if another process wrote it, the state is reloaded.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._live: OrderedDict[tuple[str, int], tuple[ClientRuntime, Stamp | None]]
        self._live = OrderedDict()

    def get(
        self,
        key: tuple[str, int],
        profile: ClientProfile,
        run: RunConfig,
        stamp: Stamp | None,
    ) -> ClientRuntime | None:
        """The warm runtime for ``key``, or None (then build one)."""
        hit = self._live.get(key)
        if hit is None:
            return None
        runtime, saved = hit
        if runtime.profile != profile or runtime.run != run or saved != stamp:
            del self._live[key]
            return None
        self._live.move_to_end(key)
        return runtime

    def put(
        self, key: tuple[str, int], runtime: ClientRuntime, stamp: Stamp | None
    ) -> None:
        """Keep ``runtime`` with the stamp of its state file now."""
        self._live[key] = (runtime, stamp)
        self._live.move_to_end(key)
        while len(self._live) > self.size:
            self._live.popitem(last=False)


def run_phase(
    kind: str,
    ins: Instruction,
    profile: ClientProfile,
    store: ClientStateStore,
    run_key: str,
    node_id: int,
    cache: RuntimeCache | None = None,
) -> Reply:
    """Build (or reuse) the runtime, restore state, run phase ``kind``, save state.

    The state is keyed by run (``run_key`` plus the run's ``checkpoint.uid``,
    which a resumed run keeps) and by the client's profile, not by ``node_id``:
    Flower gives a SuperNode a new id when it or the SuperLink restarts, and a
    resumed run must find the states its clients saved before. With a
    ``cache`` the runtime of the previous message is reused when its state is
    still the saved one, so the model is built once per run; the state is saved
    after every phase all the same (a restarted client resumes from it).
    """
    uid = ins.run.checkpoint.uid
    key, slot = (f"{run_key}-{uid}" if uid else run_key), client_seed(profile)
    runtime = None
    if cache is not None:
        runtime = cache.get((key, slot), profile, ins.run, store.stamp(key, slot))
    if runtime is None:
        runtime = ClientRuntime.build(profile, ins.run)
        if cache is not None:  # a warm client: once per run, worth a line
            log.info(
                "built model %s for run %s (%d parameters)",
                profile.model.backbone,
                key,
                sum(p.numel() for p in runtime.model.parameters()),
            )
        saved = store.load(key, slot)
        if saved is not None:
            runtime.load_state_dict(saved)
    phase = PHASES[kind]
    with seeded_torch(ins, profile, kind, runtime.device):
        reply = phase(runtime, ins)
    if kind != "evaluate":
        store.save(key, slot, runtime.state_dict())
    if cache is not None:
        cache.put((key, slot), runtime, store.stamp(key, slot))
    return reply


@contextmanager
def seeded_torch(
    ins: Instruction, profile: ClientProfile, kind: str, device: torch.device
) -> Iterator[None]:
    """Torch's RNG (dropout, drop-connect) seeded per (run, client, round, step, phase).

    Without it a client's dropout masks depend on which other clients ran
    before it in the same process, so even ``local`` runs were not repeatable.
    Torch's CPU thread count is set to the run's ``client-threads`` too: a
    kernel's summation order depends on it, and phase 2 amplifies the last-bit
    differences (Ray runs each simulated client with one thread, the in-process
    engine used all cores: probe similarity 0.093 vs 0.102 after one round of
    ``--preset tiny``). The caller's RNG state and thread count are restored.
    """
    cuda = [device.index or 0] if device.type == "cuda" else []
    key = (client_seed(profile), ins.server_round, ins.step, zlib.crc32(kind.encode()))
    seed = int(rng_for(ins.run.seed, STREAM_TORCH, *key).integers(2**62))
    threads = torch.get_num_threads()
    if ins.run.client_threads:
        torch.set_num_threads(ins.run.client_threads)
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


PHASES = {
    "train": ClientRuntime.train,
    "align": ClientRuntime.align,
    "evaluate": ClientRuntime.evaluate,
}
