"""The round loop that drives :class:`~fedmuscle_flwr.strategy.FedMuscle`'s hooks.

Flower's ``Strategy.start`` runs a fixed train -> evaluate loop and polls replies
every 3 s; a FedMuscle round has a phase more (T contrastive exchanges), so this
loop calls the strategy's hooks in the order of fedmuscle.md §3 and polls with
``federation.poll-s``. Before every round it waits for ``min-clients`` connected
nodes with a deadline (Flower's built-in sampling waits forever) and logs who is
missing; nodes that join later take part from the next round, nodes that leave
are not asked again (their pending replies time out after
``federation.phase-timeout-s``); a round whose training phase leaves fewer than
``min-clients`` valid replies skips its alignment phase. After each completed
round ``on_round`` (the checkpoint) runs; a resumed run starts after
``completed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from fedmuscle_flwr.profiles import load_roster
from fedmuscle_flwr.strategy import FedMuscle

log = logging.getLogger(__name__)

#: called after each completed round: (round, its summary, seconds of the segment)
RoundHook = Callable[[int, Mapping[str, float], float], None]


def send_and_collect(
    grid: Grid, messages: Iterable[Message], timeout: float, poll: float
) -> list[Message]:
    """Push ``messages``; pull replies every ``poll`` s until all came or timeout."""
    messages = list(messages)
    if not messages:
        return []
    pending = set(grid.push_messages(messages))
    replies: list[Message] = []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        got = list(grid.pull_messages(pending))
        replies.extend(got)
        pending -= {m.metadata.reply_to_message_id for m in got}
        if pending:
            time.sleep(poll)
    if pending:
        log.warning(
            "%d replies missing after %.0f s (timed out)", len(pending), timeout
        )
    return replies


def wait_for_nodes(
    grid: Grid, minimum: int, timeout: float, expected: Sequence[str] = ()
) -> list[int]:
    """Block until ``minimum`` nodes are connected; raise ``TimeoutError`` after.

    Flower identifies a node by its id only, so while waiting the log names the
    connected node ids and the roster's client names (which clients these are is
    known after their first reply).
    """
    deadline, last_log = time.monotonic() + timeout, 0.0
    roster = ", ".join(expected) or "-"
    while len(nodes := sorted(grid.get_node_ids())) < minimum:
        now = time.monotonic()
        missing = minimum - len(nodes)
        if now > deadline:
            raise TimeoutError(
                f"only {len(nodes)} of the {minimum} required clients connected "
                f"after {timeout:.0f} s ({missing} missing; connected node ids "
                f"{nodes}; roster: {roster})"
            )
        if now - last_log > 10:
            log.info(
                "waiting for clients: %d of %d connected, %d missing "
                "(connected node ids %s; roster: %s; %.0f s left)",
                len(nodes),
                minimum,
                missing,
                nodes,
                roster,
                deadline - now,
            )
            last_log = now
        time.sleep(0.5)
    return nodes


def run_federation(
    strategy: FedMuscle,
    grid: Grid,
    *,
    completed: int = -1,
    on_round: RoundHook | None = None,
) -> None:
    """All rounds after ``completed``: [evaluate at 0], then train -> align -> eval.

    ``completed`` is the last round already done (-1: none; 0: the initial
    evaluation). ``on_round(r, summary, seconds)`` runs after every round.
    """
    run = strategy.run
    fed = run.federation
    roster = _roster_names(fed.roster)
    nodes = wait_for_nodes(grid, fed.min_clients, fed.wait_clients_s, roster)
    log.info("%d clients connected; starting %s", len(nodes), strategy.algorithm.name)
    strategy.summary()
    none, cfg = ArrayRecord(), ConfigRecord()
    t_start = time.perf_counter()

    def exchange(messages: Iterable[Message]) -> list[Message]:
        return send_and_collect(grid, messages, fed.phase_timeout_s, fed.poll_s)

    def evaluate(server_round: int) -> None:
        msgs = strategy.configure_evaluate(server_round, none, cfg, grid)
        row = strategy.aggregate_evaluate(server_round, exchange(msgs))
        log.info("round %d evaluate: %s", server_round, _fmt(dict(row or {})))

    def done(server_round: int, clients: int, t0: float) -> None:
        summary = {"clients": float(clients), **strategy.incidents.round_summary()}
        summary["seconds"] = time.perf_counter() - t0
        log.info("round %d done in %.1f s", server_round, summary["seconds"])
        if on_round is not None:
            on_round(server_round, summary, time.perf_counter() - t_start)

    if run.eval.initial and completed < 0:
        t0 = time.perf_counter()
        strategy.begin_round(0)
        evaluate(0)
        done(0, len(nodes), t0)
    for rnd in range(max(completed, 0) + 1, run.num_rounds + 1):
        t0 = time.perf_counter()
        wait_for_nodes(grid, fed.min_clients, fed.wait_clients_s, roster)
        strategy.begin_round(rnd)
        msgs = strategy.configure_train(rnd, none, cfg, grid)
        _, metrics = strategy.aggregate_train(rnd, exchange(msgs))
        log.info("round %d train: %s", rnd, _fmt(dict(metrics or {})))
        trained = strategy.trained
        align = strategy.align_messages_per_round()
        if align and trained < fed.min_clients:
            log.warning(
                "round %d: %d valid training replies, fewer than min-clients=%d; "
                "alignment skipped this round",
                rnd,
                trained,
                fed.min_clients,
            )
            align = 0
        for step in range(align):
            msgs = strategy.configure_align(rnd, step, grid)
            metrics = strategy.aggregate_align(rnd, step, exchange(msgs))
            log.debug("round %d align step %d: %s", rnd, step, _fmt(dict(metrics)))
        if rnd % run.eval.every == 0 or rnd == run.num_rounds:
            evaluate(rnd)
        done(rnd, trained, t0)


def _roster_names(roster: str) -> list[str]:
    try:
        return [profile.name for profile in load_roster(roster)]
    except Exception:  # the roster is only informative here; clients resolve it
        return []


def _fmt(values: dict[str, object]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in values.items()
    )
