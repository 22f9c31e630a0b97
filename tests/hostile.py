"""A hostile client: tampers with replies at Flower's ClientApp boundary (tests only).

Every attack takes the reply :class:`~flwr.app.Message` a ClientApp produced (our
encoder has run) and changes its records, as a modified client would; nothing
in ``fedmuscle_flwr`` is patched. :func:`hostile` wraps a ClientApp (or any
``(Message, Context) -> Message`` handler) in process; the deployment test
applies the same attacks in real ClientApp processes through
``tests/fault_inject/sitecustomize.py`` (``FEDMUSCLE_TEST_ATTACK``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict

from fedmuscle_flwr.wire import protocol as p

#: the honest client whose name the ``steal-name`` attack claims
VICTIM = "c0"
BIG = 2 * 2**20  # characters of the big identity string (2 MB)
MANY = 20_000  # metric keys of the many-keys attack


def _metric(key: str, value: float = 99.0) -> Callable[[RecordDict], None]:
    def attack(content: RecordDict) -> None:
        content.metric_records[p.METRICS][key] = value

    return attack


def _identity(key: str, value: str) -> Callable[[RecordDict], None]:
    def attack(content: RecordDict) -> None:
        content.config_records[p.CLIENT][key] = value

    return attack


def _unknown_metric(content: RecordDict) -> None:
    """A metric no training or alignment reply has (evaluations: left alone)."""
    if "metric" not in content.metric_records[p.METRICS]:
        content.metric_records[p.METRICS]["accuracy-boost"] = 1.0


def _many_keys(content: RecordDict) -> None:
    content[p.METRICS] = MetricRecord({f"m{i}": float(i) for i in range(MANY)})


def _big_identity(content: RecordDict) -> None:
    content.config_records[p.CLIENT][p.MODEL_NAME] = "x" * BIG


def _not_a_string(content: RecordDict) -> None:
    content[p.CLIENT] = ConfigRecord({**content[p.CLIENT], p.TASK_KIND: 7})


ATTACKS: dict[str, Callable[[RecordDict], None]] = {
    "phase-metric": _metric("phase"),  # crashed the server (TypeError)
    "client-metric": _metric("client"),
    "step-metric": _metric("step"),
    "round-metric": _metric("round", 99.0),  # rewrote the round of its rows
    "phase-identity": _identity("phase", "x"),
    "metric-identity": _identity("metric", "x"),
    "unknown-metric": _unknown_metric,  # not one a train reply has
    "big-identity": _big_identity,
    "many-keys": _many_keys,
    "not-a-string": _not_a_string,
    "steal-name": _identity(p.CLIENT_NAME, VICTIM),
    "star-name": _identity(p.CLIENT_NAME, "*"),
    "path-name": _identity(p.CLIENT_NAME, "../../etc"),
}


def tamper(reply: Message, attack: str) -> Message:
    """Apply ``attack`` to the records of ``reply`` (an error reply is left alone)."""
    if not reply.has_error():
        ATTACKS[attack](reply.content)
    return reply


def hostile(
    handler: Callable[[Message, Context], Message],
    is_attacker: Callable[[Context], bool],
    attacks: Sequence[str],
    start: int = 0,
) -> Callable[[Message, Context], Message]:
    """Wrap ``handler``: the attacker's n-th reply (from ``start``) gets attack n.

    Replies before ``start`` stay honest (so the attacker first binds its own
    name); the attacks are applied in turn, cyclically.
    """
    sent = [0]

    def wrapped(msg: Message, ctx: Context) -> Message:
        reply = handler(msg, ctx)
        if not is_attacker(ctx):
            return reply
        n = sent[0]
        sent[0] += 1
        if n < start:
            return reply
        return tamper(reply, attacks[(n - start) % len(attacks)])

    return wrapped
