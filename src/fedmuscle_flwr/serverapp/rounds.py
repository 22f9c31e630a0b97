"""The Grid mechanics of a phase: push, poll fast; wait for nodes with a deadline.

Flower's ``Grid.send_and_receive`` polls every 3 s and its built-in node sampling
waits forever; ``FedMuscle.start`` (:mod:`fedmuscle_flwr.serverapp.strategy`)
uses these instead (poll ``federation.poll-s``, deadline ``wait-clients-s``).
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from flwr.app import Message
from flwr.serverapp import Grid

log = logging.getLogger(__name__)

#: message ids the reply poll asks the SuperLink about per second, at most
PULL_IDS_PER_S = 1000.0
#: the longest the reply poll waits between two pulls
MAX_POLL_S = 1.0


def poll_interval(poll: float, pending: int) -> float:
    """Seconds until the next pull of replies: ``poll``, longer while many wait.

    Each pull makes the SuperLink look up every pending message id, so a fixed
    interval costs O(N) per pull and O(N²) per phase (the phase lasts O(N));
    at 100 simulated clients and 0.02 s the driver checked 5,000 ids a second.
    The interval grows to ``pending / PULL_IDS_PER_S`` (capped at
    ``MAX_POLL_S``), and shrinks as replies come in; below 20 pending nodes at
    ``poll`` = 0.02 s (50 at 0.05 s) it is ``poll``.
    """
    return max(poll, min(MAX_POLL_S, pending / PULL_IDS_PER_S))


#: messages pushed per ``Grid.push_messages`` call: a phase's messages are built
#: while pushed, so at most this many encoded payloads exist at once
PUSH_CHUNK = 64


@dataclass(frozen=True)
class Stragglers:
    """When a node far slower than its peers is dropped for the round.

    Once half the nodes of a phase replied, the rest are waited for until
    ``max(min_s, factor x the median reply time)`` after the phase began; a
    node silent then is dropped (a burst of registered but silent nodes cannot
    hold a round for the whole phase timeout). ``factor = 0``: off.
    """

    factor: float = 0.0
    min_s: float = 0.0

    def cutoff(self, started: float, reply_times: list[float], total: int) -> float:
        """The new deadline (monotonic), or ``inf`` while it does not apply."""
        if self.factor <= 0 or 2 * len(reply_times) < total:
            return math.inf
        median = statistics.median(reply_times)
        return started + max(self.min_s, self.factor * median)


def stream_replies(
    grid: Grid,
    messages: Iterable[Message],
    timeout: float,
    poll: float,
    stragglers: Stragglers | None = None,
    sent: dict[str, int] | None = None,
) -> Iterator[Message]:
    """Push ``messages``; yield replies as they are pulled, until all came or timeout.

    ``messages`` are taken and pushed :data:`PUSH_CHUNK` at a time (a lazy
    iterable is built chunk by chunk; a pushed chunk is let go); ``sent``, if
    given, receives message id -> destination node of each as it is pushed.
    Replies are pulled every ``poll`` s once all are pushed, further apart
    with many nodes pending (:func:`poll_interval`); a grid whose nodes answer
    while the messages are pushed (``answers_on_push``: the in-process grid)
    is pulled after each chunk too, so its replies are handled while their
    bytes are fresh in the cache, as a deployment's are right after the pull
    that received them. With ``stragglers``, the deadline moves closer once
    half the nodes replied (:class:`Stragglers`); the nodes still silent then
    are named in the log.
    """
    dst = {} if sent is None else sent
    pending: set[str] = set()
    todo = iter(messages)
    at_push = bool(getattr(grid, "answers_on_push", False))
    while chunk := list(itertools.islice(todo, PUSH_CHUNK)):
        ids = list(grid.push_messages(chunk))  # also sets each message's id
        pending.update(ids)
        dst.update({m.metadata.message_id: m.metadata.dst_node_id for m in chunk})
        if at_push:
            early = list(grid.pull_messages(ids))
            pending -= {m.metadata.reply_to_message_id for m in early}
            yield from early
    if not dst:
        return
    total = len(dst)
    started = time.monotonic()
    deadline, times = started + timeout, [0.0] * (total - len(pending))
    rule = stragglers or Stragglers()
    while pending and time.monotonic() < deadline:
        got = list(grid.pull_messages(pending))
        pending -= {m.metadata.reply_to_message_id for m in got}
        times += [time.monotonic() - started] * len(got)
        deadline = min(deadline, rule.cutoff(started, times, total))
        yield from got
        if pending:
            wait = poll_interval(poll, len(pending))
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
    if pending:
        late = ", ".join(str(n) for n in sorted(dst.get(i, -1) for i in pending))
        if deadline < started + timeout:  # the straggler rule moved it
            log.warning(
                "dropping node(s) %s for the round: no reply after %.0f s, far "
                "slower than their peers (median reply %.1f s)",
                late,
                deadline - started,
                statistics.median(times),
            )
        else:
            log.warning(
                "%d replies missing after %.0f s (timed out)", len(pending), timeout
            )


def wait_for_nodes(
    grid: Grid,
    minimum: int,
    timeout: float,
    expected: Sequence[str] = (),
    keys: Callable[[], Mapping[int, str]] | None = None,
    eligible: Callable[[Iterable[int]], list[int]] = sorted,
) -> list[int]:
    """Block until ``minimum`` nodes are connected; raise ``TimeoutError`` after.

    Only ``eligible(connected ids)`` count (with registered keys: the nodes of
    those keys, :func:`eligible_nodes`).

    Logs "N of M clients connected" when N changes (and once a minute while it
    does not), naming the connected node ids and ``expected`` (client names)
    if given; in a deployment with registered keys (``keys()``: node id -> key
    name) the connected and the missing keys instead.
    """
    deadline, last_log, last_n = time.monotonic() + timeout, 0.0, -1
    roster = f"; roster: {', '.join(expected)}" if expected else ""

    def who(nodes: list[int]) -> str:
        names = dict(keys()) if keys is not None else {}
        if not names:
            return f"connected node ids {nodes}{roster}"
        on = [f"{names.get(n, '?')} (node {n})" for n in nodes]
        off = sorted(name for n, name in names.items() if n not in nodes)
        return (
            f"connected: {', '.join(on) or 'none'}; registered keys not connected: "
            f"{', '.join(off) or 'none'}"
        )

    while len(nodes := eligible(grid.get_node_ids())) < minimum:
        now = time.monotonic()
        missing = minimum - len(nodes)
        if now > deadline:
            raise TimeoutError(
                f"only {len(nodes)} of the {minimum} required clients connected "
                f"after {timeout:.0f} s ({missing} missing; {who(nodes)})"
            )
        if len(nodes) != last_n or now - last_log > 60:
            log.info(
                "waiting for clients: %d of %d connected, %d missing (%s; %.0f s left)",
                len(nodes),
                minimum,
                missing,
                who(nodes),
                deadline - now,
            )
            last_log, last_n = now, len(nodes)
        time.sleep(0.5)
    return nodes


def fmt(values: dict[str, object]) -> str:
    """``k=v`` pairs, floats to 4 significant digits (one log line)."""
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in values.items()
    )


def eligible_nodes(
    connected: Iterable[int], registered: Mapping[int, str], warned: set[int]
) -> list[int]:
    """The connected nodes a round may draw: those of registered keys (if any).

    With SuperNode keys registered at start (``federation.node-keys-file``) a
    node that is not one of them (e.g. registered later through the Control
    API) is never drawn; it is logged once (``warned`` remembers it).
    """
    nodes = sorted(connected)
    if not registered:
        return nodes
    foreign = [n for n in nodes if n not in registered and n not in warned]
    if foreign:
        warned.update(foreign)
        log.warning(
            "node(s) %s connected without a key registered at start: never drawn",
            ", ".join(map(str, foreign)),
        )
    return [n for n in nodes if n in registered]
