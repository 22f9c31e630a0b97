"""The round loop that drives :class:`~fedmuscle_flwr.strategy.FedMuscle`'s hooks.

Flower's ``Strategy.start`` runs a fixed train -> evaluate loop and polls replies
every 3 s; a FedMuscle round has a phase more (T contrastive exchanges), so this
loop calls the strategy's hooks in the order of fedmuscle.md §3 and polls with
``federation.poll-s``. It waits for ``min-clients`` with a deadline (Flower's
built-in sampling waits forever) and logs who is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from fedmuscle_flwr.profiles import load_roster
from fedmuscle_flwr.strategy import FedMuscle

log = logging.getLogger(__name__)


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


def run_federation(strategy: FedMuscle, grid: Grid) -> None:
    """All rounds: [evaluate at 0], then per round train -> align x k -> evaluate."""
    run = strategy.run
    fed = run.federation
    roster = _roster_names(fed.roster)
    nodes = wait_for_nodes(grid, fed.min_clients, fed.wait_clients_s, roster)
    log.info("%d clients connected; starting %s", len(nodes), strategy.algorithm.name)
    strategy.summary()
    none, cfg = ArrayRecord(), ConfigRecord()

    def exchange(messages: Iterable[Message]) -> list[Message]:
        return send_and_collect(grid, messages, fed.phase_timeout_s, fed.poll_s)

    def evaluate(server_round: int) -> None:
        msgs = strategy.configure_evaluate(server_round, none, cfg, grid)
        row = strategy.aggregate_evaluate(server_round, exchange(msgs))
        log.info("round %d evaluate: %s", server_round, _fmt(dict(row or {})))

    if run.eval.initial:
        evaluate(0)
    for rnd in range(1, run.num_rounds + 1):
        t0 = time.perf_counter()
        msgs = strategy.configure_train(rnd, none, cfg, grid)
        _, metrics = strategy.aggregate_train(rnd, exchange(msgs))
        log.info("round %d train: %s", rnd, _fmt(dict(metrics or {})))
        for step in range(strategy.align_messages_per_round()):
            msgs = strategy.configure_align(rnd, step, grid)
            metrics = strategy.aggregate_align(rnd, step, exchange(msgs))
            log.debug("round %d align step %d: %s", rnd, step, _fmt(dict(metrics)))
        if rnd % run.eval.every == 0 or rnd == run.num_rounds:
            evaluate(rnd)
        log.info("round %d done in %.1f s", rnd, time.perf_counter() - t0)


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
