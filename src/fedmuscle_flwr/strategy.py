"""The FedMuscle strategy: Flower's ``Strategy`` with one hook pair per phase.

A FedMuscle round (fedmuscle.md §3) has more phases than Flower's train/evaluate
loop, so besides ``configure_train``/``aggregate_train`` (phase 1: task epochs,
then encode the round's public batches) and ``configure_evaluate``/
``aggregate_evaluate`` it has ``configure_align``/``aggregate_align`` (phase 2:
Muscle steps), which :func:`fedmuscle_flwr.driver.run_federation` calls with a
fast poll. Shared mechanics live in :mod:`fedmuscle_flwr.aggregation`.

The server keeps a *representation bank*: node -> (K, B, d) representations of
the batches of the current step (the logit baselines: (K, B, C) class scores;
fedavg: the models of clients with an architecture twin); it never sees private
data. Who gets which partners is :mod:`fedmuscle_flwr.phase2`'s business. Every
reply is size-checked and validated before it reaches the bank; every bank is
screened for poisoning (:mod:`fedmuscle_flwr.robust`); what goes wrong is
logged and counted by :class:`~fedmuscle_flwr.incidents.Incidents`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Message,
    MetricRecord,
    MetricRecordValues,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedmuscle_flwr import aggregation as agg
from fedmuscle_flwr import protocol as p
from fedmuscle_flwr import robust
from fedmuscle_flwr.algorithms import get_algorithm
from fedmuscle_flwr.codec import ProtocolError, record_nbytes
from fedmuscle_flwr.config import ConfigError, RunConfig
from fedmuscle_flwr.incidents import Incidents
from fedmuscle_flwr.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.phase2 import Phase2Planner, Uploads

log = logging.getLogger(__name__)


@dataclass
class _Sent:
    """What was asked of each node in the phase in flight."""

    messages: list[Message] = field(default_factory=list)
    indices: dict[int, np.ndarray] = field(default_factory=dict)  # node -> (K, B)


class FedMuscle(Strategy):
    """FedMuscle (Setayesh et al., ICLR 2026) over Flower's Message API.

    Parameters
    ----------
    run : RunConfig
        The validated run configuration (algorithm, rounds, B, d, M, τ, ...).
    recorder : RunRecorder
        Where per-round and per-client metrics go.
    """

    def __init__(self, run: RunConfig, recorder: RunRecorder) -> None:
        self.run = run
        self.algorithm = get_algorithm(run.algorithm)
        if self.algorithm.space != "representation" and run.privacy.noise > 0:
            raise ConfigError(
                f"privacy.noise applies to representations; algorithm "
                f"{run.algorithm!r} uploads {self.algorithm.space}"
            )
        self.recorder = recorder
        self.phase2 = Phase2Planner(run, self.algorithm)
        self.names: dict[int, str] = {}  # node -> client name
        self.identity: dict[int, Mapping[str, str]] = {}
        self.bank: dict[int, np.ndarray] = {}  # node -> (K, B, d)
        self.models: dict[int, p.Reply] = {}  # node -> train reply with its weights
        self.batches = np.zeros((0, run.muscle.batch_size), np.int64)
        self.probe = agg.probe_indices(run.seed, run.eval.probe_size, run.public.size)
        self.bytes = {"up": 0, "down": 0}
        self.incidents = Incidents(recorder)
        self.trained = 0  # valid training replies this round
        self._sent = _Sent()

    def begin_round(self, server_round: int) -> None:
        """Reset the per-round incident sets (the driver calls this first)."""
        self.incidents.begin(server_round)

    def summary(self) -> None:
        """Log the configuration of this strategy."""
        m, run = self.run.muscle, self.run
        log.info(
            "FedMuscle[%s]: rounds=%d E=%d T=%d B=%d d=%d M=%d τ=%.3g τ'=%.3g "
            "downlink=%s sync=%s wire=%s robust=%s privacy-noise=%g",
            self.algorithm.name, run.num_rounds, run.train.epochs, self.align_steps,
            m.batch_size, m.dim, m.partners, m.tau, m.tau_partners,
            self.algorithm.downlink(m),
            m.sync, m.precision, run.robust.detectors if run.robust.enabled else "off",
            run.privacy.noise,
        )  # fmt: skip

    @property
    def align_steps(self) -> int:
        """T, or 0 when the algorithm has no alignment phase."""
        return self.run.muscle.steps if self.algorithm.align_loss else 0

    def align_messages_per_round(self) -> int:
        """Round trips of phase 2: T (per-step sync), 1 (per-round) or 0."""
        if self.algorithm.space == "weights":
            return 1  # one message: the group's mean model
        if not self.align_steps:
            return 0
        return self.align_steps if self.run.muscle.sync == "per-step" else 1

    # ----------------------------------------------------------- messages
    def _message(
        self,
        node: int,
        kind: str,
        server_round: int,
        step: int,
        arrays: dict[str, np.ndarray],
        weights: dict[str, np.ndarray] | None = None,
    ) -> Message:
        ins = p.Instruction(self.run, server_round, step, arrays, weights)
        content = p.encode_instruction(ins)
        for record in content.array_records.values():
            self.bytes["down"] += record_nbytes(record)
        msg = Message(content, dst_node_id=node, message_type=kind)
        self._sent.messages.append(msg)
        return msg

    def _start_phase(self) -> None:
        self._sent = _Sent()

    def _replies(
        self, replies: Iterable[Message], server_round: int, phase: str
    ) -> dict[int, p.Reply]:
        """Decode and validate replies; bad ones are logged, counted and dropped."""
        dst = {
            m.metadata.message_id: m.metadata.dst_node_id for m in self._sent.messages
        }
        good: dict[int, p.Reply] = {}
        answered: set[int] = set()
        for msg in replies:
            node = dst.get(msg.metadata.reply_to_message_id, msg.metadata.src_node_id)
            answered.add(node)
            if msg.has_error():
                reason = f"error {msg.error.code}: {msg.error.reason}"
                self.incidents.failed(phase, node, self.names, reason)
                continue
            name = self.names.get(node, "?")
            who = f"round {server_round} {phase} node {node} ({name})"
            try:
                reply = self._decode(msg, node, who, good, phase)
            except ProtocolError as exc:
                self.incidents.rejected(phase, node, self.names, str(exc))
                continue
            except Exception as exc:  # a decoder bug must never end the run
                reason = f"{who}: undecodable reply ({type(exc).__name__}: {exc})"
                self.incidents.rejected(phase, node, self.names, reason)
                continue
            good[node] = reply
            self.identity[node] = reply.identity
            self.names[node] = reply.identity.get(p.CLIENT_NAME, str(node))
        self.incidents.timed_out(phase, set(self._sent.indices) - answered, self.names)
        return good

    def _decode(
        self, msg: Message, node: int, who: str, good: dict[int, p.Reply], phase: str
    ) -> p.Reply:
        """Size limit before decoding, then the protocol, then a unique name."""
        sent = self._sent.indices.get(node, np.zeros((0, 0), np.int64))
        reply = p.decode_reply_checked(
            msg.content, self.run, sent, where=who, phase=phase
        )
        name = reply.identity.get(p.CLIENT_NAME, str(node))
        if any(self.names.get(other) == name for other in good):
            raise ProtocolError(f"{who}: client name {name!r} already answered")
        for key in (p.REPS, p.WEIGHTS):
            if key in msg.content.array_records:
                self.bytes["up"] += record_nbytes(msg.content.array_records[key])
        return reply

    def _record(
        self,
        server_round: int,
        good: Mapping[int, p.Reply],
        identity: bool = False,
        **extra: object,
    ) -> None:
        """One metrics row per client reply (with its identity, for evaluations)."""
        for node, reply in good.items():
            who = dict(reply.identity) if identity else {}
            self.recorder.record(
                server_round, self.names[node], **extra, **who, **reply.metrics
            )

    def _screen(self, phase: str) -> None:
        """Poisoning screen of the fresh bank; flagged nodes leave the partners.

        The detectors assume unit-row representations: logit banks are not screened.
        """
        if self.algorithm.space != "representation":
            return
        findings = robust.screen(self.bank, self.run.robust)
        self.incidents.quarantine(phase, findings, self.names)

    def partner_pool(self) -> list[int]:
        """Nodes that uploaded (bank or weights) minus the quarantined, by name."""
        pool = [
            n for n in {*self.bank, *self.models} if n not in self.incidents.quarantined
        ]
        return sorted(pool, key=lambda n: (self.names.get(n, ""), n))

    def uploads(self) -> Uploads:
        """The partner pool's uploads of the round, for :class:`Phase2Planner`."""
        models = {n: r.weights for n, r in self.models.items() if r.weights is not None}
        return Uploads(
            self.partner_pool(),
            self.bank,
            {n: i.get(p.LABEL_SPACE, "") for n, i in self.identity.items()},
            {n: i.get(p.SOFT_LABELS, "") for n, i in self.identity.items()},
            models,
            {n: r.metrics.get(p.NUM_EXAMPLES, 1.0) for n, r in self.models.items()},
        )

    # ------------------------------------------------------ phase 1: train
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Task epochs, then encode the round's first public batch(es)."""
        self._start_phase()
        self.bytes = {"up": 0, "down": 0}
        t, b = self.align_steps, self.run.muscle.batch_size
        self.batches = agg.public_batches(
            self.run.seed, server_round, t, b, self.run.public.size
        )
        k = t if self.run.muscle.sync == "per-round" else min(t, 1)
        for node in sorted(grid.get_node_ids()):
            self._sent.indices[node] = self.batches[:k]
            self._message(
                node, p.TRAIN, server_round, 0, {p.ENCODE_INDICES: self.batches[:k]}
            )
        return list(self._sent.messages)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Fill the bank with the uploaded Z^n; record task losses."""
        good = self._replies(replies, server_round, "train")
        self.bank = {n: r.z for n, r in good.items() if r.z is not None}
        self.models = {n: r for n, r in good.items() if r.weights is not None}
        self._screen("train")
        self.trained = len(good)
        self._record(server_round, good, phase="train")
        metrics: dict[str, MetricRecordValues] = {
            "clients": float(len(good)),
            "task-loss": _mean(good, "task-loss"),
        }
        return None, MetricRecord(metrics)

    # ------------------------------------------------------ phase 2: align
    def configure_align(
        self, server_round: int, step: int, grid: Grid
    ) -> list[Message]:
        """Partners' representations for the steps of this message (per node)."""
        self._start_phase()
        per_round = self.run.muscle.sync == "per-round"
        steps = slice(0, self.align_steps) if per_round else slice(step, step + 1)
        nxt = self.batches[0:0] if per_round else self.batches[step + 1 : step + 2]
        if self.algorithm.space == "weights":  # fedavg: the group's mean model
            for node, mean in self.phase2.mean_models(self.uploads()).items():
                self._sent.indices[node] = nxt
                arrays = {p.STEP_INDICES: nxt, p.ENCODE_INDICES: nxt}
                self._message(node, p.ALIGN, server_round, step, arrays, mean)
            return list(self._sent.messages)
        span = range(steps.start, steps.stop)
        matrices = self.phase2.partner_matrices(
            self.uploads(), self.batches[steps], server_round, step, span
        )
        for node, compact in matrices.items():
            arrays = {p.STEP_INDICES: self.batches[steps], p.ENCODE_INDICES: nxt}
            if self.algorithm.downlink(self.run.muscle) == "compact":
                arrays[p.PARTNERS] = compact
            else:
                arrays[p.AGGREGATE], arrays[p.LOG_ALPHA] = agg.aggregated_payload(
                    compact, self.run.muscle
                )
            self._sent.indices[node] = nxt
            self._message(node, p.ALIGN, server_round, step, arrays)
        return list(self._sent.messages)

    def aggregate_align(
        self, server_round: int, step: int, replies: Iterable[Message]
    ) -> MetricRecord:
        """Record alignment losses; refresh the bank with the next batch (per-step)."""
        good = self._replies(replies, server_round, "align")
        self.bank = {n: r.z for n, r in good.items() if r.z is not None}
        self._screen("align")
        self._record(server_round, good, phase="align", step=step)
        return MetricRecord(
            {"clients": float(len(good)), "align-loss": _mean(good, "align-loss")}
        )

    # ---------------------------------------------------------- evaluate
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Every node (but those that failed this round): metric + probe batch."""
        self._start_phase()
        for node in sorted(set(grid.get_node_ids()) - self.incidents.dropped):
            self._sent.indices[node] = self.probe[None, :]
            self._message(
                node, p.EVALUATE, server_round, 0, {p.PROBE_INDICES: self.probe}
            )
        return list(self._sent.messages)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Per-client metrics, probe alignment and the round's byte counts."""
        good = self._replies(replies, server_round, "evaluate")
        quarantined = self.incidents.quarantined  # not part of the alignment figures
        probe = {
            n: r.z[0]
            for n, r in good.items()
            if r.z is not None and n not in quarantined
        }
        self._record(server_round, good, phase="evaluate", identity=True)
        align = agg.alignment(probe, self.run.muscle)
        row: dict[str, MetricRecordValues] = dict(align.as_dict()) if align else {}
        row |= {"clients": float(len(good)), **self.incidents.take_window()}
        row |= {
            "bytes-up": float(self.bytes["up"]),
            "bytes-down": float(self.bytes["down"]),
        }
        row["mean-metric"] = _mean(good, "metric")
        self.recorder.record(server_round, SERVER_ROW, phase="round", **row)
        return MetricRecord(row)


def _mean(good: Mapping[int, p.Reply], key: str) -> float:
    """Mean of metric ``key`` over the replies that have it (NaN if none)."""
    values = [r.metrics[key] for r in good.values() if key in r.metrics]
    return float(np.mean(values)) if values else float("nan")
