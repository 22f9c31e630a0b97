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

from dataclasses import dataclass, field

import numpy as np
from flwr.app import Message

from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.wire.messages import Reply


@dataclass
class PhaseCall:
    """One phase in flight: what was sent to whom, and the nodes seen then."""

    phase: Phase
    server_round: int
    step: int = 0
    nodes: frozenset[int] = frozenset()  # connected when the phase was configured
    messages: list[Message] = field(default_factory=list)
    asked: dict[int, np.ndarray] = field(default_factory=dict)  # node -> (K, B)
    bytes_down: int = 0  # instruction array bytes of the messages
    bytes_up: int = 0  # representation and weight bytes of the valid replies

    def asked_of(self, node: int) -> np.ndarray:
        """The indices ``node`` was asked to encode ((0, 0) if none)."""
        return self.asked.get(node, np.zeros((0, 0), np.int64))


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

    def sent(self, call: PhaseCall) -> PhaseCall:
        """Count a configured phase's bytes into the round; return it."""
        self.bytes_down += call.bytes_down
        return call

    def received(self, call: PhaseCall) -> None:
        """Count a closed phase's reply bytes into the round."""
        self.bytes_up += call.bytes_up
