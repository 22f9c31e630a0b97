"""A round's state as values: what one phase asked, what the round holds so far.

A phase of the round (train, align step, evaluate) is one :class:`PhaseCall`:
the messages sent, the indices each node was asked to encode and ONE snapshot
of the connected nodes, taken when the phase was configured. The strategy's
``open_*`` methods return it and its ``close_*`` methods take it back with the
replies, so no phase leaves anything behind in the strategy's attributes.
What carries over from phase to phase within a round (the public batches, the
bank of uploads, the byte counts) is one :class:`RoundState`, made at the start
of the round and passed along explicitly. No Flower types but ``Message``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Message

from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.wire.messages import Reply


@dataclass
class PhaseCall:
    """One phase in flight: what was sent to whom, and the nodes seen then.

    The messages are built lazily: :meth:`outbox` yields them one at a time
    (the strategy pushes them in chunks and keeps only ``sent``: message id
    -> node), so a phase never holds every node's encoded payload at once.
    :attr:`messages` builds all that are left into a list (Flower's
    ``configure_*`` loop, tests).
    """

    phase: Phase
    server_round: int
    step: int = 0
    nodes: frozenset[int] = frozenset()  # connected when the phase was configured
    asked: dict[int, np.ndarray] = field(default_factory=dict)  # node -> (K, B)
    bytes_down: int = 0  # instruction array bytes of the messages built
    bytes_up: int = 0  # representation and weight bytes of the valid replies
    sent: dict[str, int] = field(default_factory=dict)  # pushed: message id -> node
    _pending: Iterator[Message] = field(default_factory=lambda: iter(()), repr=False)
    _built: list[Message] | None = field(default=None, repr=False)
    _built_ids: dict[str, int] | None = field(default=None, repr=False)

    def asked_of(self, node: int) -> np.ndarray:
        """The indices ``node`` was asked to encode ((0, 0) if none)."""
        return self.asked.get(node, np.zeros((0, 0), np.int64))

    def lazily(self, messages: Iterable[Message]) -> PhaseCall:
        """Set the phase's messages, built when taken; return the call."""
        self._pending = iter(messages)
        return self

    def outbox(self) -> Iterator[Message]:
        """The messages not yet taken, each built as it is taken."""
        return self._pending

    @property
    def messages(self) -> list[Message]:
        """Every message not pushed through :meth:`outbox`, built now (a list)."""
        if self._built is None:
            self._built = list(self._pending)
        return self._built

    def destination(self, message_id: str) -> int | None:
        """The node a pushed message of this phase went to (None: not one of them).

        Looked up as each reply comes (the replies of a phase stream in while
        its messages are still being pushed): ``sent``, then the messages
        built into :attr:`messages` and pushed by someone else (their ids,
        given at the push, indexed at the first look-up that needs them).
        """
        node = self.sent.get(message_id)
        if node is None and self._built:
            if self._built_ids is None:
                built = self._built
                self._built_ids = {m.metadata.message_id: m.metadata.dst_node_id
                                   for m in built}  # fmt: skip
            node = self._built_ids.get(message_id)
        return node


@dataclass
class RoundState:
    """What one round carries from phase to phase."""

    server_round: int
    batches: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    bank: dict[int, np.ndarray] = field(default_factory=dict)  # node -> (K, B, d)
    models: dict[int, Reply] = field(default_factory=dict)  # node -> train reply
    trained: int = 0  # valid training replies
    bytes_down: int = 0  # instruction bytes sent this round
    bytes_up: int = 0  # reply bytes received this round

    def received(self, call: PhaseCall) -> None:
        """Count a closed phase's bytes (instructions and replies) into the round."""
        self.bytes_down += call.bytes_down
        self.bytes_up += call.bytes_up
