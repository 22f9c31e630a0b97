"""What travels between server and client, as plain data (no Flower).

The record keys (kebab-case, defined once), the message types and the two
dataclasses every phase exchanges: :class:`Instruction` (server -> client) and
:class:`Reply` (client -> server). :mod:`fedmuscle_flwr.wire.protocol` is the only
translation to and from Flower's records; the client runtime uses this module
alone, so it never imports Flower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import (
    AGGREGATE,
    LOG_ALPHA,
    PARTNERS,
    Algorithm,
)
from fedmuscle_flwr.method.phases import Phase

# ---- message types (one definition: the Phase enum)
TRAIN = Phase.TRAIN.message_type  # Flower's MessageType.TRAIN
ALIGN = Phase.ALIGN.message_type  # "train.align"
EVALUATE = Phase.EVALUATE.message_type  # Flower's MessageType.EVALUATE

# ---- record keys (kebab-case, defined once)
CONFIG = "config"
ARRAYS = "arrays"
REPS = "reps"
METRICS = "metrics"
CLIENT = "client"
WEIGHTS = "weights"  # model state (fedavg): up after phase 1, the group mean down
RUN_CONFIG = "run-config"
SERVER_ROUND = "server-round"
STEP = "step"
PUBLIC_FINGERPRINT = "public-fingerprint"  # the server's public set, "" = none
NUM_EXAMPLES = "num-examples"
# arrays
ENCODE_INDICES = "encode-indices"  # (K, B) int64: batches to encode and return
STEP_INDICES = "step-indices"  # (S, B) int64: batches to take Muscle steps on
# PARTNERS (S, M, B, d): compact downlink; AGGREGATE (S, B^M, d): the paper's S^n;
# LOG_ALPHA (S, B^M): the algorithms' relay keys, imported above
PROBE_INDICES = "probe-indices"  # (P,) int64
Z = "z"  # (K, B, d) representations, or (K, B, C) logits (logit-space algorithms)
INDICES = "indices"  # (K, B) echo of the encoded indices
# client identity
CLIENT_NAME = "client-name"
TASK_KIND = "task"
MODEL_NAME = "model"
METRIC_NAME = "metric-name"
LABEL_SPACE = "label-space"  # task kind/dataset/classes
SOFT_LABELS = "soft-labels"  # softmax | sigmoid | '' (no (B, C) label distribution)

#: widest logits (C) a logit-space reply may carry
MAX_LOGITS = 4096
#: bytes a reply may carry beyond its expected arrays (metadata, small records)
REPLY_SLACK_BYTES = 64 * 1024

_INDEX = ("int64",)
_FLOAT = ("float16", "float32")
_WEIGHT_DTYPES = ("float16", "float32", "int64")  # parameters, buffers, counters


@dataclass(frozen=True)
class Instruction:
    """A server -> client instruction (any of the three types)."""

    run: RunConfig
    server_round: int
    step: int = 0
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    weights: Mapping[str, np.ndarray] | None = None  # fedavg: the group's mean model
    #: the run's algorithm: looked up once per message (or passed by the server's
    #: strategy, which holds one per run) and shared by the message's whole flow
    algorithm: Algorithm = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    #: the content hash of the server's public set (data.fingerprint), announced
    #: with every instruction so that a client joining late is checked too
    public_fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.algorithm is None:
            object.__setattr__(self, "algorithm", get_algorithm(self.run.algorithm))


@dataclass(frozen=True)
class Reply:
    """A client -> server reply."""

    metrics: Mapping[str, float]
    identity: Mapping[str, str]
    z: np.ndarray | None = None  # (K, B, d) decoded: in its wire float dtype
    indices: np.ndarray | None = None  # (K, B)
    weights: Mapping[str, np.ndarray] | None = None  # fedavg: the model after phase 1


__all__ = [
    "AGGREGATE",
    "ALIGN",
    "ARRAYS",
    "CLIENT",
    "CLIENT_NAME",
    "CONFIG",
    "ENCODE_INDICES",
    "EVALUATE",
    "INDICES",
    "LABEL_SPACE",
    "LOG_ALPHA",
    "MAX_LOGITS",
    "METRICS",
    "METRIC_NAME",
    "MODEL_NAME",
    "NUM_EXAMPLES",
    "PARTNERS",
    "PROBE_INDICES",
    "PUBLIC_FINGERPRINT",
    "REPLY_SLACK_BYTES",
    "REPS",
    "RUN_CONFIG",
    "SERVER_ROUND",
    "SOFT_LABELS",
    "STEP",
    "STEP_INDICES",
    "TASK_KIND",
    "TRAIN",
    "WEIGHTS",
    "Instruction",
    "Reply",
    "Z",
]
