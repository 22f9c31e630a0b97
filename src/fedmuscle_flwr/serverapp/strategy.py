"""The FedMuscle strategy: Flower's ``Strategy`` whose ``start()`` is the round.

A FedMuscle round (docs/method.md §3) has more phases than Flower's train/evaluate
loop, so besides ``configure_train``/``aggregate_train`` (phase 1: task epochs,
then encode the round's public batches) and ``configure_evaluate``/
``aggregate_evaluate`` it has ``configure_align``/``aggregate_align`` (phase 2:
the algorithm's steps). :meth:`FedMuscle.start` overrides Flower's template
method with that round: wait for clients (with a deadline), [evaluate at 0],
then per round train -> align x T (or 1) -> evaluate, each phase a push and a
fast poll (:mod:`fedmuscle_flwr.serverapp.rounds`), then the checkpoint hook.

The server keeps a *representation bank*: node -> (K, B, d) representations of
the batches of the current step (the logit baselines: (K, B, C) class scores;
fedavg: the models of clients with an architecture twin); it never sees private
data. Which clients pair and what each gets is the algorithm's business
(:mod:`fedmuscle_flwr.method.algorithms`). Every reply is size-checked and
validated before it reaches the bank; every bank is screened for poisoning
(:mod:`fedmuscle_flwr.method.robust`); what goes wrong is logged and counted by
:class:`~fedmuscle_flwr.serverapp.incidents.Incidents`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Message,
    MetricRecord,
    MetricRecordValues,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method import planner, robust
from fedmuscle_flwr.method.algorithms import check_algorithm
from fedmuscle_flwr.method.algorithms.base import Uploads
from fedmuscle_flwr.method.alignment import alignment
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.serverapp.incidents import Incidents
from fedmuscle_flwr.serverapp.names import NameBook, NodeKeys
from fedmuscle_flwr.serverapp.progress import RoundClock
from fedmuscle_flwr.serverapp.replies import ReplyDesk, Sent
from fedmuscle_flwr.serverapp.rounds import fmt, send_and_collect, wait_for_nodes
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import record_nbytes

log = logging.getLogger(__name__)

#: called after each completed round: (round, its summary, seconds of the segment)
RoundHook = Callable[[int, Mapping[str, float], float], None]


class FedMuscle(Strategy):
    """FedMuscle (Setayesh et al., ICLR 2026) over Flower's Message API.

    Parameters
    ----------
    run : RunConfig
        The validated run configuration (algorithm, rounds, B, d, M, τ, ...).
    recorder : RunRecorder
        Where per-round and per-client metrics go.
    on_round : RoundHook, optional
        Called after every completed round (the checkpoint).
    completed : int
        The last round already done (-1: none; 0: the initial evaluation), for a
        resumed run.
    """

    def __init__(
        self,
        run: RunConfig,
        recorder: RunRecorder,
        *,
        on_round: RoundHook | None = None,
        completed: int = -1,
    ) -> None:
        self.run = run
        self.algorithm = check_algorithm(run)
        self.algorithm.setup(run)
        self.recorder = recorder
        self.on_round = on_round
        self.completed = completed
        self.node_keys = NodeKeys(run.federation.node_keys_file)
        self.book = NameBook(  # name -> node (and key), for the run
            key_of=self.node_keys, connected=self._connected
        )
        self.nodes: set[int] = set()  # connected at the last configure_*
        self.bank: dict[int, np.ndarray] = {}  # node -> (K, B, d)
        self.models: dict[int, p.Reply] = {}  # node -> train reply with its weights
        self.batches = np.zeros((0, run.muscle.batch_size), np.int64)
        self.probe = planner.probe_indices(
            run.seed, run.eval.probe_size, run.public.size
        )
        self.bytes_down = 0  # instruction bytes sent this round
        self.incidents = Incidents(recorder)
        self.desk = ReplyDesk(run, recorder, self.incidents, self.book)
        self.trained = 0  # valid training replies this round
        self._sent = Sent()

    def _connected(self, node: int) -> bool:
        return node in self.nodes

    @property
    def names(self) -> dict[int, str]:
        """Each node's bound client name (the reply desk's)."""
        return self.desk.names

    def restore_names(self, bindings: Mapping[str, Mapping[str, object]]) -> None:
        """Name bindings of the run so far (a resumed run: from the checkpoint)."""
        self.desk.restore(bindings)

    def begin_round(self, server_round: int) -> None:
        """Reset the per-round incident sets (:meth:`start` calls this first)."""
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
        """T, or 0 when the algorithm has no alignment steps."""
        return self.algorithm.align_steps(self.run)

    def align_messages_per_round(self) -> int:
        """Round trips of phase 2: T (per-step sync), 1 (per-round, fedavg) or 0."""
        return self.algorithm.messages_per_round(self.run)

    # ----------------------------------------------------------- messages
    def _message(
        self,
        node: int,
        kind: str,
        server_round: int,
        step: int,
        arrays: dict[str, np.ndarray],
        weights: Mapping[str, np.ndarray] | None = None,
    ) -> Message:
        ins = p.Instruction(self.run, server_round, step, arrays, weights)
        content = p.encode_instruction(ins)
        for record in content.array_records.values():
            self.bytes_down += record_nbytes(record)
        msg = Message(content, dst_node_id=node, message_type=kind)
        self._sent.messages.append(msg)
        return msg

    def _start_phase(self) -> None:
        self._sent = Sent()

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
        return self.desk.by_name(pool)

    def uploads(self) -> Uploads:
        """The partner pool's uploads of the round, for the algorithm's relay."""
        models = {n: r.weights for n, r in self.models.items() if r.weights is not None}
        identity = self.desk.identity
        return Uploads(
            self.partner_pool(),
            self.bank,
            {n: i.get(p.LABEL_SPACE, "") for n, i in identity.items()},
            {n: i.get(p.SOFT_LABELS, "") for n, i in identity.items()},
            models,
            {n: r.metrics.get(p.NUM_EXAMPLES, 1.0) for n, r in self.models.items()},
        )

    # ---------------------------------------------------------- the round
    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord | None = None,
        num_rounds: int | None = None,
        timeout: float | None = None,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Run every round after ``completed`` (Flower's template method, overridden).

        Before every round: wait for ``federation.min-clients`` nodes with a
        deadline (``wait-clients-s``); nodes that join later take part from the
        next round, nodes that leave are not asked again (their pending replies
        time out after ``phase-timeout-s``, or ``timeout`` if given). A round
        whose training leaves fewer than ``min-clients`` valid replies skips its
        alignment. After each round :attr:`on_round` runs (the checkpoint).
        ``initial_arrays``/configs are unused: no model travels, the run
        config is in every instruction. ``evaluate_fn``, if given, runs after
        each evaluation on the (empty) server arrays.
        """
        rounds = self.run.num_rounds if num_rounds is None else num_rounds
        fed = self.run.federation
        phase_timeout = fed.phase_timeout_s if timeout is None else timeout
        result = Result()
        keys = self.node_keys.registered if fed.node_keys_file else None
        nodes = wait_for_nodes(grid, fed.min_clients, fed.wait_clients_s, keys=keys)
        log.info("%d clients connected; starting %s", len(nodes), self.algorithm.name)
        self.summary()
        t_start = time.perf_counter()

        def exchange(messages: Iterable[Message]) -> list[Message]:
            return send_and_collect(grid, messages, phase_timeout, fed.poll_s)

        def evaluate(server_round: int) -> None:
            msgs = self.configure_evaluate(
                server_round, ArrayRecord(), ConfigRecord(), grid
            )
            row = self.aggregate_evaluate(server_round, exchange(msgs))
            log.info("round %d evaluate: %s", server_round, fmt(dict(row or {})))
            if row is not None:
                result.evaluate_metrics_clientapp[server_round] = row
            if evaluate_fn is not None:
                central = evaluate_fn(server_round, ArrayRecord())
                if central is not None:
                    result.evaluate_metrics_serverapp[server_round] = central

        clock = RoundClock(self.run.num_rounds)

        def done(server_round: int, clients: int, t0: float) -> None:
            summary = {"clients": float(clients), **self.incidents.round_summary()}
            summary["seconds"] = time.perf_counter() - t0
            log.info("round %d done in %.1f s", server_round, summary["seconds"])
            log.info("%s", clock.done(server_round, summary["seconds"]))
            if self.on_round is not None:
                self.on_round(server_round, summary, time.perf_counter() - t_start)

        if self.run.eval.initial and self.completed < 0:
            t0 = time.perf_counter()
            self.begin_round(0)
            evaluate(0)
            done(0, len(nodes), t0)
        for rnd in range(max(self.completed, 0) + 1, rounds + 1):
            t0 = time.perf_counter()
            wait_for_nodes(grid, fed.min_clients, fed.wait_clients_s, keys=keys)
            self.begin_round(rnd)
            msgs = self.configure_train(rnd, ArrayRecord(), ConfigRecord(), grid)
            _, metrics = self.aggregate_train(rnd, exchange(msgs))
            log.info("round %d train: %s", rnd, fmt(dict(metrics or {})))
            if metrics is not None:
                result.train_metrics_clientapp[rnd] = metrics
            for step in range(self._align_messages(rnd)):
                msgs = self.configure_align(rnd, step, grid)
                row = self.aggregate_align(rnd, step, exchange(msgs))
                log.debug("round %d align step %d: %s", rnd, step, fmt(dict(row)))
            if self.run.eval.due(rnd, rounds):
                evaluate(rnd)
            done(rnd, self.trained, t0)
        return result

    def _align_messages(self, server_round: int) -> int:
        """Phase-2 round trips this round: none when too few clients trained."""
        align, minimum = (
            self.align_messages_per_round(),
            self.run.federation.min_clients,
        )
        if align and self.trained < minimum:
            log.warning(
                "round %d: %d valid training replies, fewer than min-clients=%d; "
                "alignment skipped this round",
                server_round,
                self.trained,
                minimum,
            )
            return 0
        return align

    # ------------------------------------------------------ phase 1: train
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Task epochs, then encode the round's first public batch(es)."""
        self._start_phase()
        self.nodes = set(grid.get_node_ids())
        self.bytes_down = self.desk.bytes_up = 0
        t, b = self.align_steps, self.run.muscle.batch_size
        self.batches = planner.public_batches(
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
        good = self.desk.take(replies, self._sent, server_round, "train")
        self.bank = {n: r.z for n, r in good.items() if r.z is not None}
        self.models = {n: r for n, r in good.items() if r.weights is not None}
        self._screen("train")
        self.trained = len(good)
        self.desk.record(server_round, good, phase="train")
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
        self.nodes = set(grid.get_node_ids())
        per_round = self.run.muscle.sync == "per-round"
        steps = slice(0, self.align_steps) if per_round else slice(step, step + 1)
        nxt = self.batches[0:0] if per_round else self.batches[step + 1 : step + 2]
        span = range(steps.start, steps.stop)
        relays = self.algorithm.relay(
            self.run, self.uploads(), self.batches[steps], server_round, step, span
        )
        for node, relay in relays.items():
            arrays = {p.STEP_INDICES: self.batches[steps], p.ENCODE_INDICES: nxt}
            arrays |= relay.arrays
            self._sent.indices[node] = nxt
            self._message(node, p.ALIGN, server_round, step, arrays, relay.weights)
        return list(self._sent.messages)

    def aggregate_align(
        self, server_round: int, step: int, replies: Iterable[Message]
    ) -> MetricRecord:
        """Record alignment losses; refresh the bank with the next batch (per-step)."""
        good = self.desk.take(replies, self._sent, server_round, "align")
        self.bank = {n: r.z for n, r in good.items() if r.z is not None}
        self._screen("align")
        self.desk.record(server_round, good, phase="align", step=step)
        return MetricRecord(
            {"clients": float(len(good)), "align-loss": _mean(good, "align-loss")}
        )

    # ---------------------------------------------------------- evaluate
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Every node (but those that failed this round): metric + probe batch."""
        self._start_phase()
        self.nodes = set(grid.get_node_ids())
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
        good = self.desk.take(replies, self._sent, server_round, "evaluate")
        quarantined = self.incidents.quarantined  # not part of the alignment figures
        probe = {  # by client name: the same cyclic partners in every engine
            n: z[0]
            for n in self.desk.by_name(good)
            if (z := good[n].z) is not None and n not in quarantined
        }
        self.desk.record(server_round, good, phase="evaluate", identity=True)
        align = alignment(probe, self.run.muscle)
        row: dict[str, MetricRecordValues] = dict(align.as_dict()) if align else {}
        row |= {"clients": float(len(good)), **self.incidents.take_window()}
        row |= {
            "bytes-up": float(self.desk.bytes_up),
            "bytes-down": float(self.bytes_down),
        }
        row["mean-metric"] = _mean(good, "metric")
        self.recorder.record(server_round, SERVER_ROW, phase="round", **row)
        return MetricRecord(row)


def _mean(good: Mapping[int, p.Reply], key: str) -> float:
    """Mean of metric ``key`` over the replies that have it (NaN if none)."""
    values = [r.metrics[key] for r in good.values() if key in r.metrics]
    return float(np.mean(values)) if values else float("nan")
