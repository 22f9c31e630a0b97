"""The phases of a FedMuscle round on the server: what to send, what came back.

Each phase is a pair: ``open_*`` builds the messages for a snapshot of the
connected nodes and returns a :class:`~fedmuscle_flwr.serverapp.calls.PhaseCall`;
``close_*`` takes that call and the replies, validates them (the reply desk),
updates the round's :class:`~fedmuscle_flwr.serverapp.calls.RoundState` and
returns the phase's aggregate metrics. The strategy
(:mod:`fedmuscle_flwr.serverapp.strategy`) runs them in the round's order.

The server keeps a *representation bank* per round: node -> (K, B, d)
representations of the batches of the current step (the logit baselines:
(K, B, C) class scores; fedavg: the models of clients with an architecture
twin); it never sees private data. Which clients pair and what each gets is the
algorithm's business (:meth:`~fedmuscle_flwr.method.algorithms.base.Algorithm.relay`).
Every bank is screened for poisoning (:mod:`fedmuscle_flwr.method.robust`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Message,
    MetricRecord,
    MetricRecordValues,
)

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method import planner, robust
from fedmuscle_flwr.method.algorithms.base import Algorithm, RelayRequest, Uploads
from fedmuscle_flwr.method.alignment import alignment
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.serverapp.calls import PhaseCall, RoundState
from fedmuscle_flwr.serverapp.incidents import Incidents
from fedmuscle_flwr.serverapp.replies import ReplyDesk
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import encode, record_nbytes
from fedmuscle_flwr.wire.npy import npy_join


class Shared(NamedTuple):
    """What every message of a phase carries, encoded once for all of them."""

    config: ConfigRecord  # run config, round, step, public fingerprint
    arrays: ArrayRecord  # the phase's index arrays


class RoundPhases:
    """Train, align and evaluate of one run's rounds, as open/close pairs."""

    def __init__(
        self,
        run: RunConfig,
        algorithm: Algorithm,
        recorder: RunRecorder,
        incidents: Incidents,
        desk: ReplyDesk,
        public_fingerprint: str = "",
    ) -> None:
        self.run = run
        self.public_fingerprint = public_fingerprint
        self.algorithm = algorithm
        self.recorder = recorder
        self.incidents = incidents
        self.desk = desk
        self.run_json = run.model_dump_json(by_alias=True)  # in every instruction
        self.probe = planner.probe_indices(
            run.seed, run.eval.probe_size, run.public.size
        )

    @property
    def align_steps(self) -> int:
        """T, or 0 when the algorithm has no alignment steps."""
        return self.algorithm.align_steps(self.run)

    # ------------------------------------------------------ phase 1: train
    def open_train(self, rs: RoundState, nodes: Iterable[int]) -> PhaseCall:
        """Task epochs, then encode the round's first public batch(es)."""
        call = PhaseCall(Phase.TRAIN, rs.server_round, 0, frozenset(nodes))
        t, b = self.align_steps, self.run.muscle.batch_size
        rs.batches = planner.public_batches(
            self.run.seed, rs.server_round, t, b, self.run.public.size
        )
        k = t if self.run.muscle.sync == "per-round" else min(t, 1)
        nodes = sorted(call.nodes)
        call.asked |= {node: rs.batches[:k] for node in nodes}
        arrays = {p.ENCODE_INDICES: rs.batches[:k]}
        shared = self._shared(call, arrays)
        return call.lazily(self._message(call, n, arrays, shared) for n in nodes)

    def close_train(
        self, rs: RoundState, call: PhaseCall, replies: Iterable[Message]
    ) -> MetricRecord:
        """Fill the bank with the uploaded Z^n; record task losses."""
        good = self._take_uploads(rs, call, replies)
        rs.models = {n: r for n, r in good.items() if r.weights is not None}
        rs.trained = len(good)
        self.desk.record(call.server_round, good, phase=Phase.TRAIN)
        metrics: dict[str, MetricRecordValues] = {
            "clients": float(len(good)),
            "task-loss": _mean(good, "task-loss"),
        }
        return MetricRecord(metrics)

    # ------------------------------------------------------ phase 2: align
    def open_align(self, rs: RoundState, step: int, nodes: Iterable[int]) -> PhaseCall:
        """What the algorithm relays for the steps of this message (per node)."""
        call = PhaseCall(Phase.ALIGN, rs.server_round, step, frozenset(nodes))
        per_round = self.run.muscle.sync == "per-round"
        steps = slice(0, self.align_steps) if per_round else slice(step, step + 1)
        nxt = rs.batches[0:0] if per_round else rs.batches[step + 1 : step + 2]
        request = RelayRequest(
            self.run,
            self.uploads(rs),
            rs.batches[steps],
            rs.server_round,
            step,
            range(steps.start, steps.stop),
            npy_join,  # each payload gathered into the bytes that carry it
        )
        relays = self.algorithm.relay(request)  # payloads made when looked up
        call.asked |= {node: nxt for node in relays}
        indices = {p.STEP_INDICES: rs.batches[steps], p.ENCODE_INDICES: nxt}
        shared = self._shared(call, indices)

        def build() -> Iterator[Message]:  # one node's payload at a time
            for node in list(relays):
                relay = relays[node]
                arrays = {**indices, **relay.arrays}
                yield self._message(call, node, arrays, shared, relay.weights)

        return call.lazily(build())

    def close_align(
        self, rs: RoundState, call: PhaseCall, replies: Iterable[Message]
    ) -> MetricRecord:
        """Record alignment losses; refresh the bank with the next batch (per-step)."""
        good = self._take_uploads(rs, call, replies)
        self.desk.record(call.server_round, good, phase=Phase.ALIGN, step=call.step)
        return MetricRecord(
            {"clients": float(len(good)), "align-loss": _mean(good, "align-loss")}
        )

    # ---------------------------------------------------------- evaluate
    def open_evaluate(self, rs: RoundState, nodes: Iterable[int]) -> PhaseCall:
        """Every node (but those that failed this round): metric + probe batch."""
        call = PhaseCall(Phase.EVALUATE, rs.server_round, 0, frozenset(nodes))
        asked = sorted(call.nodes - self.incidents.dropped)
        call.asked |= {node: self.probe[None, :] for node in asked}
        arrays = {p.PROBE_INDICES: self.probe}
        shared = self._shared(call, arrays)
        return call.lazily(self._message(call, n, arrays, shared) for n in asked)

    def close_evaluate(
        self, rs: RoundState, call: PhaseCall, replies: Iterable[Message]
    ) -> MetricRecord:
        """Per-client metrics, probe alignment and the round's byte counts."""
        good = self.desk.take(replies, call)
        rs.received(call)
        quarantined = self.incidents.quarantined  # not part of the alignment figures
        probe = {  # by client name: the same cyclic partners in every engine
            n: z[0]
            for n in self.desk.by_name(good)
            if (z := good[n].z) is not None and n not in quarantined
        }
        self.desk.record(call.server_round, good, phase=Phase.EVALUATE, identity=True)
        align = alignment(probe, self.run.muscle)
        row: dict[str, MetricRecordValues] = dict(align.as_dict()) if align else {}
        row |= {"clients": float(len(good)), **self.incidents.take_window()}
        row |= {"bytes-up": float(rs.bytes_up), "bytes-down": float(rs.bytes_down)}
        row["mean-metric"] = _mean(good, "metric")
        self.recorder.record(call.server_round, SERVER_ROW, phase="round", **row)
        return MetricRecord(row)

    # ----------------------------------------------------------- helpers
    def uploads(self, rs: RoundState) -> Uploads:
        """The partner pool's uploads of the round, for the algorithm's relay."""
        models = {n: r.weights for n, r in rs.models.items() if r.weights is not None}
        identity = self.desk.identity
        return Uploads(
            self.partner_pool(rs),
            rs.bank,
            {n: i.get(p.LABEL_SPACE, "") for n, i in identity.items()},
            {n: i.get(p.SOFT_LABELS, "") for n, i in identity.items()},
            models,
            {n: r.metrics.get(p.NUM_EXAMPLES, 1.0) for n, r in rs.models.items()},
        )

    def partner_pool(self, rs: RoundState) -> list[int]:
        """Nodes that uploaded (bank or weights) minus the quarantined, by name."""
        quarantined = self.incidents.quarantined
        pool = [n for n in {*rs.bank, *rs.models} if n not in quarantined]
        return self.desk.by_name(pool)

    def _message(
        self,
        call: PhaseCall,
        node: int,
        arrays: dict[str, np.ndarray],
        shared: Shared,
        weights: Mapping[str, np.ndarray] | None = None,
    ) -> Message:
        """The instruction for ``node``; its array bytes are counted into ``call``.

        ``shared``: what every message of the phase carries, encoded once
        (:meth:`_shared`).
        """
        content = p.encode_instruction(
            self._instruction(call, arrays, weights),
            shared=shared.arrays,
            config=shared.config,
        )
        for record in content.values():  # not content.array_records: ~60 us
            if isinstance(record, ArrayRecord):
                call.bytes_down += record_nbytes(record)
        kind = call.phase.message_type
        return Message(content, dst_node_id=node, message_type=kind)

    def _instruction(
        self,
        call: PhaseCall,
        arrays: dict[str, np.ndarray],
        weights: Mapping[str, np.ndarray] | None = None,
    ) -> p.Instruction:
        return p.Instruction(
            self.run,
            call.server_round,
            call.step,
            arrays,
            weights,
            self.algorithm,
            self.public_fingerprint,
        )

    def _shared(self, call: PhaseCall, arrays: Mapping[str, np.ndarray]) -> Shared:
        """The config and ``arrays`` of ``call``'s messages, encoded once for all.

        Every message of the phase refers to the same records (read-only: a
        receiver decodes them and never writes to them).
        """
        ins = self._instruction(call, dict(arrays))
        return Shared(
            p.instruction_config(ins, self.run_json),
            encode(arrays, self.run.muscle.precision),
        )

    def _take_uploads(
        self, rs: RoundState, call: PhaseCall, replies: Iterable[Message]
    ) -> dict[int, p.Reply]:
        """The valid replies; their uploads become the bank, which is screened.

        Poisoning screen: flagged nodes leave the partners. The detectors assume
        unit-row representations: logit banks are not screened.
        """
        good = self.desk.take(replies, call)
        rs.received(call)
        rs.bank = {n: r.z for n, r in good.items() if r.z is not None}
        if self.algorithm.space == "representation":
            findings = robust.screen(rs.bank, self.run.robust)
            self.incidents.quarantine(call.phase, findings, self.desk.names)
        return good


def _mean(good: Mapping[int, p.Reply], key: str) -> float:
    """Mean of metric ``key`` over the replies that have it (NaN if none).

    ``math.fsum`` rounds the exact sum once, so the mean does not depend on the
    order in which replies arrived (``np.mean`` of the same values in another
    order differed in the last bit between two runs of the default federation).
    """
    values = [r.metrics[key] for r in good.values() if key in r.metrics]
    return math.fsum(values) / len(values) if values else float("nan")
