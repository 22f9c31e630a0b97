"""Schemas of the small records a client sends: its identity and its metrics.

Every reply carries a ``client`` record (who the client is: string values under
:data:`IDENTITY_KEYS`) and a ``metrics`` record (numbers). Both end up as keys and
values of ``metrics.jsonl`` rows, so before anything of a reply is recorded they
are checked here against a schema (no Flower: plain mappings):

* the number of keys per record (``federation.max-reply-keys``) is checked before
  anything is read, the total size (``federation.max-reply-bytes``) before any
  value is converted;
* identity: only the keys of :data:`IDENTITY_KEYS`, string values of at most
  ``federation.max-reply-chars`` characters, printable; ``client-name`` present
  and a safe name (:data:`NAME_PATTERN`, not a reserved row such as ``*``);
* metrics: names of :data:`NAME_PATTERN`, never a reserved row key
  (:data:`RESERVED`: ``round``, ``client``, ``phase``, ``step``, the incident
  keys, the identity keys), finite numbers; per message kind only the keys of
  :data:`PHASE_METRICS` (an evaluation reply may add its task's metrics).

A record that breaks any rule raises :class:`~fedmuscle_flwr.wire.codec.ProtocolError`
(the whole reply is rejected); the message names the check, never echoes more
than :data:`ECHO` characters of what the client sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fedmuscle_flwr.wire.codec import ProtocolError
from fedmuscle_flwr.wire.messages import (
    CLIENT_NAME,
    LABEL_SPACE,
    METRIC_NAME,
    MODEL_NAME,
    NUM_EXAMPLES,
    SOFT_LABELS,
    TASK_KIND,
)

IDENTITY_KEYS = frozenset(
    {CLIENT_NAME, TASK_KIND, MODEL_NAME, METRIC_NAME, LABEL_SPACE, SOFT_LABELS}
)

#: a client name or a metric name: letters, digits, ``.``, ``_``, ``-``; 1-64 long
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: row names a client may never take (``*`` is the server's row; no pattern
#: match anyway, listed for the docs and the tests)
RESERVED_NAMES = frozenset({"*", "server", "node", "?"})
#: keys of a ``metrics.jsonl`` row that the server writes itself
ROW_KEYS = frozenset({"round", "client", "phase", "step", "node"})
INCIDENT_KEYS = frozenset(
    {"rejected", "failed", "refused", "timed-out", "suspect", "score", "reference", "z"}
)
#: names a metric can never have: a row's own keys, incidents, identity keys
RESERVED = ROW_KEYS | INCIDENT_KEYS | IDENTITY_KEYS | {"stale"}
#: the metrics each kind of reply may carry (evaluations: plus open task metrics)
PHASE_METRICS: dict[str, frozenset[str]] = {
    "train": frozenset({"task-loss", "train-seconds", "refit-loss", NUM_EXAMPLES}),
    "align": frozenset(
        {"align-loss", "align-loss-first", "align-seconds", "refit-loss", NUM_EXAMPLES}
    ),
    "evaluate": frozenset({"metric", "test-loss", NUM_EXAMPLES}),
}
OPEN_PHASES = frozenset({"evaluate"})  # task metrics (accuracy, mIoU, ...) allowed
#: characters of client-sent text quoted in an error message
ECHO = 40
_NUMBER_BYTES = 8


@dataclass(frozen=True)
class ReplyLimits:
    """Caps on a reply's small records (``federation.max-reply-*``)."""

    keys: int = 64
    chars: int = 256
    total_bytes: int = 16384


def quote(text: object) -> str:
    """``repr`` of at most :data:`ECHO` characters of client-sent ``text``."""
    s = str(text)
    return repr(s[:ECHO]) + (f"... ({len(s)} chars)" if len(s) > ECHO else "")


def check_name(name: object, what: str = "client name") -> str:
    """A safe row name, or :class:`ProtocolError` saying why not."""
    if not isinstance(name, str):
        raise ProtocolError(f"{what} must be a string, got {type(name).__name__}")
    if name in RESERVED_NAMES or not NAME_PATTERN.fullmatch(name):
        raise ProtocolError(
            f"{what} {quote(name)} is not allowed (reserved, or not 1-64 of "
            "A-Z a-z 0-9 . _ - starting with a letter or digit)"
        )
    return name


def _count(record: Mapping[str, object], what: str, limits: ReplyLimits) -> None:
    if len(record) > limits.keys:
        raise ProtocolError(
            f"{what} record has {len(record)} keys, over federation.max-reply-keys="
            f"{limits.keys}"
        )


def record_bytes(record: Mapping[str, object]) -> int:
    """Approximate bytes of a small record: key and value lengths, 8 per number."""
    total = 0
    for key, value in record.items():
        total += len(str(key))
        if isinstance(value, str | bytes):
            total += len(value)
        elif isinstance(value, list):
            total += _NUMBER_BYTES * len(value)
        else:
            total += _NUMBER_BYTES
    return total


def check_sizes(
    identity: Mapping[str, object], metrics: Mapping[str, object], limits: ReplyLimits
) -> None:
    """Key counts first (O(1)), then the total size, before any value is read."""
    _count(identity, "identity", limits)
    _count(metrics, "metrics", limits)
    size = record_bytes(identity) + record_bytes(metrics)
    if size > limits.total_bytes:
        raise ProtocolError(
            f"identity + metrics records take {size} bytes, over "
            f"federation.max-reply-bytes={limits.total_bytes}"
        )


def validate_identity(
    record: Mapping[str, object], limits: ReplyLimits
) -> dict[str, str]:
    """The identity record as ``{key: str}``; :class:`ProtocolError` on a bad one."""
    _count(record, "identity", limits)
    out: dict[str, str] = {}
    for key, value in record.items():
        if key not in IDENTITY_KEYS:
            raise ProtocolError(
                f"identity key {quote(key)} is not one of {sorted(IDENTITY_KEYS)}"
            )
        if not isinstance(value, str):
            raise ProtocolError(
                f"identity {key!r} must be a string, got {type(value).__name__}"
            )
        if len(value) > limits.chars:
            raise ProtocolError(
                f"identity {key!r} has {len(value)} characters, over "
                f"federation.max-reply-chars={limits.chars}"
            )
        if not value.isprintable():
            raise ProtocolError(f"identity {key!r} has unprintable characters")
        out[key] = value
    if CLIENT_NAME not in out:
        raise ProtocolError(f"identity lacks {CLIENT_NAME!r}")
    check_name(out[CLIENT_NAME])
    return out


def validate_metrics(
    record: Mapping[str, object], phase: str | None, limits: ReplyLimits
) -> dict[str, float]:
    """The metrics record as ``{name: float}`` for a reply of ``phase``.

    ``phase`` None (a reply of unknown kind): the generic rules only.
    """
    _count(record, "metrics", limits)
    allowed = PHASE_METRICS.get(phase or "")
    out: dict[str, float] = {}
    for key, value in record.items():
        if not isinstance(key, str) or not NAME_PATTERN.fullmatch(key):
            raise ProtocolError(f"metric name {quote(key)} is not a safe name")
        if key in RESERVED:
            raise ProtocolError(f"metric name {key!r} is reserved")
        if allowed is not None and key not in allowed and phase not in OPEN_PHASES:
            raise ProtocolError(
                f"metric {key!r} is not one a {phase} reply carries ({sorted(allowed)})"
            )
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ProtocolError(
                f"metric {key!r} must be a number, got {type(value).__name__}"
            )
        number = float(value) if abs(value) < 2**1023 else math.inf
        if not math.isfinite(number):
            raise ProtocolError(f"non-finite metric {key!r}")
        out[key] = number
    return out
