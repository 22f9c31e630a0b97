"""The FedMuscle strategy: Flower's ``Strategy`` whose ``start()`` is the round.

A FedMuscle round (docs/method.md) has more phases than Flower's train/evaluate
loop: phase 1 (task epochs, then encode the round's public batches), phase 2
(the algorithm's alignment steps, T or 1 messages) and the evaluation.
:meth:`FedMuscle.start` overrides Flower's template method with that round:
wait for clients (with a deadline), [evaluate at 0], then per round train ->
align x T (or 1) -> evaluate, each phase a push and a fast poll
(:mod:`fedmuscle_flwr.serverapp.rounds`), then the checkpoint hook.

Rounds keep no hidden state: each phase is opened for ONE snapshot of the
connected nodes (one ``get_node_ids()`` per phase) and returns a
:class:`~fedmuscle_flwr.serverapp.calls.PhaseCall` that its closing takes back
(:mod:`fedmuscle_flwr.serverapp.phases`); what a round carries from phase to
phase is one :class:`~fedmuscle_flwr.serverapp.calls.RoundState`. Flower's own
``configure_train``/``aggregate_train``/``configure_evaluate``/
``aggregate_evaluate`` work as Flower expects: they open and close the same
phases, the open call kept until its ``aggregate_*`` by (phase, round).
Every reply is size-checked and validated before it reaches the bank; what goes
wrong is logged and counted by
:class:`~fedmuscle_flwr.serverapp.incidents.Incidents`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import check_algorithm
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.runs.metrics import RunRecorder
from fedmuscle_flwr.serverapp.calls import PhaseCall, RoundState
from fedmuscle_flwr.serverapp.incidents import Incidents
from fedmuscle_flwr.serverapp.names import NameBook, NodeKeys
from fedmuscle_flwr.serverapp.phases import RoundPhases
from fedmuscle_flwr.serverapp.progress import RoundClock
from fedmuscle_flwr.serverapp.replies import ReplyDesk
from fedmuscle_flwr.serverapp.rounds import (
    Stragglers,
    eligible_nodes,
    fmt,
    stream_replies,
    wait_for_nodes,
)

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
    public_fingerprint : str
        The content hash of the server's public set
        (:func:`~fedmuscle_flwr.data.fingerprint.public_fingerprint`), announced
        with every instruction; a client whose copy differs refuses ('' = none).
    """

    def __init__(
        self,
        run: RunConfig,
        recorder: RunRecorder,
        *,
        on_round: RoundHook | None = None,
        completed: int = -1,
        public_fingerprint: str = "",
    ) -> None:
        self.run = run
        self.algorithm = check_algorithm(run)  # the run's one instance
        self.algorithm.setup(run)
        self.recorder = recorder
        self.on_round = on_round
        self.completed = completed
        self.node_keys = NodeKeys(run.federation.node_keys_file)
        self.book = NameBook(key_of=self.node_keys)  # the run's one name book
        self._foreign: set[int] = set()  # unregistered nodes already logged
        self.incidents = Incidents(recorder)
        self.desk = ReplyDesk(run, recorder, self.incidents, self.book, self.algorithm)
        self.phases = RoundPhases(
            run, self.algorithm, recorder, self.incidents, self.desk, public_fingerprint
        )
        # Flower's configure_*/aggregate_* only: the open call per (phase, round)
        self._open: dict[tuple[Phase, int], tuple[RoundState, PhaseCall]] = {}

    @property
    def names(self) -> dict[int, str]:
        """Each node's bound client name (the name book's)."""
        return self.book.names()

    def restore_names(self, bindings: Mapping[str, Mapping[str, object]]) -> None:
        """Name bindings of the run so far (a resumed run: from the checkpoint)."""
        self.desk.restore(bindings)

    def begin_round(self, server_round: int) -> RoundState:
        """Reset the per-round incident sets; the round's fresh state."""
        self.incidents.begin(server_round)
        return RoundState(server_round)

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
        nodes = wait_for_nodes(grid, fed.min_clients, fed.wait_clients_s, keys=keys,
                               eligible=self.eligible)  # fmt: skip
        log.info("%d clients connected; starting %s", len(nodes), self.algorithm.name)
        self.summary()
        t_start = time.perf_counter()

        def exchange(call: PhaseCall) -> Iterator[Message]:
            late = Stragglers(fed.straggler_factor, fed.straggler_min_s)
            return stream_replies(
                grid, call.outbox(), phase_timeout, fed.poll_s, late, call.sent
            )

        phases = self.phases

        def evaluate(rs: RoundState, server_round: int) -> None:
            call = phases.open_evaluate(rs, self.eligible(grid.get_node_ids()))
            row = phases.close_evaluate(rs, call, exchange(call))
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
            evaluate(self.begin_round(0), 0)
            done(0, len(nodes), t0)
        for rnd in range(max(self.completed, 0) + 1, rounds + 1):
            t0 = time.perf_counter()
            # the wait's node query is the train phase's snapshot
            nodes = wait_for_nodes(grid, fed.min_clients, fed.wait_clients_s,
                                   keys=keys, eligible=self.eligible)  # fmt: skip
            rs = self.begin_round(rnd)
            call = phases.open_train(rs, nodes)
            metrics = phases.close_train(rs, call, exchange(call))
            log.info("round %d train: %s", rnd, fmt(dict(metrics)))
            result.train_metrics_clientapp[rnd] = metrics
            for step in range(self._align_messages(rs)):
                call = phases.open_align(rs, step, self.eligible(grid.get_node_ids()))
                row = phases.close_align(rs, call, exchange(call))
                log.debug("round %d align step %d: %s", rnd, step, fmt(dict(row)))
            if self.run.eval.due(rnd, rounds):
                evaluate(rs, rnd)
            done(rnd, rs.trained, t0)
        return result

    def eligible(self, connected: Iterable[int]) -> list[int]:
        """The connected nodes a round may draw (registered keys only, if any)."""
        return eligible_nodes(connected, self.node_keys.registered(), self._foreign)

    def _align_messages(self, rs: RoundState) -> int:
        """Phase-2 round trips this round: none when too few clients trained."""
        align, minimum = (
            self.align_messages_per_round(),
            self.run.federation.min_clients,
        )
        if align and rs.trained < minimum:
            log.warning(
                "round %d: %d valid training replies, fewer than min-clients=%d; "
                "alignment skipped this round",
                rs.server_round,
                rs.trained,
                minimum,
            )
            return 0
        return align

    # ---------------------------------------- Flower's Strategy contract
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Phase 1's messages (a new round); :meth:`aggregate_train` closes it."""
        rs = self.begin_round(server_round)
        call = self.phases.open_train(rs, self.eligible(grid.get_node_ids()))
        self._open[(Phase.TRAIN, server_round)] = (rs, call)
        return list(call.messages)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Close phase 1 (no arrays travel back to Flower: the bank stays here)."""
        rs, call = self._open.pop((Phase.TRAIN, server_round))
        self._open[(Phase.ALIGN, server_round)] = (rs, call)  # the round goes on
        return None, self.phases.close_train(rs, call, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Evaluation messages, in the round trained (if any) before."""
        held = self._open.pop((Phase.ALIGN, server_round), None)
        rs = held[0] if held else self.begin_round(server_round)
        call = self.phases.open_evaluate(rs, self.eligible(grid.get_node_ids()))
        self._open[(Phase.EVALUATE, server_round)] = (rs, call)
        return list(call.messages)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Close the evaluation: per-client metrics, probe alignment, bytes."""
        rs, call = self._open.pop((Phase.EVALUATE, server_round))
        return self.phases.close_evaluate(rs, call, replies)
