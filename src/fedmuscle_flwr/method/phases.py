"""The three phases of a round, defined once (no Flower).

Every place that names a phase uses :class:`Phase`: the Flower message type
(:attr:`Phase.message_type`), the ``phase`` column of the metrics, the reply
schemas and the seeds. The two seed keys are kept as they were before the enum
existed, so that runs stay bit-identical to the recorded ones:
:attr:`Phase.noise_key` (the privacy noise stream) and :attr:`Phase.torch_key`
(the CRC-32 of the name, for torch's dropout RNG).
"""

from __future__ import annotations

import zlib
from enum import StrEnum


class Phase(StrEnum):
    """train (phase 1), align (phase 2), evaluate."""

    TRAIN = "train"
    ALIGN = "align"
    EVALUATE = "evaluate"

    @property
    def message_type(self) -> str:
        """Flower's message type: ``train``, ``train.align``, ``evaluate``."""
        return _MESSAGE_TYPES[self]

    @property
    def noise_key(self) -> int:
        """The privacy noise stream's key (0 train, 1 evaluate, 2 align)."""
        return _NOISE_KEYS[self]

    @property
    def torch_key(self) -> int:
        """The torch RNG seed's key: CRC-32 of the phase name."""
        return zlib.crc32(self.value.encode())

    @classmethod
    def of_message_type(cls, message_type: str) -> Phase:
        """The phase of a Flower message type; ``ValueError`` if none."""
        for phase, kind in _MESSAGE_TYPES.items():
            if kind == message_type:
                return phase
        raise ValueError(f"unknown message type {message_type!r}")


_MESSAGE_TYPES = {
    Phase.TRAIN: "train",  # Flower's MessageType.TRAIN
    Phase.ALIGN: "train.align",
    Phase.EVALUATE: "evaluate",  # Flower's MessageType.EVALUATE
}
_NOISE_KEYS = {Phase.TRAIN: 0, Phase.EVALUATE: 1, Phase.ALIGN: 2}
