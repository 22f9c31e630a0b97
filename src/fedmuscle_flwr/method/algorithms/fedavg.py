"""FedAvg (McMahan et al., AISTATS 2017) within groups of architecture twins.

A reference point, not a heterogeneous method: clients with the same label space
and identical parameter names/shapes upload their model after phase 1 and load
their group's example-weighted mean; a client without a twin trains locally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedmuscle_flwr.config.run import MuscleConfig, RunConfig
from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Payloads,
    Relay,
    RelayRequest,
    State,
    Uploads,
)
from fedmuscle_flwr.models.client_model import ClientModel


def weights_signature(state: Mapping[str, np.ndarray]) -> str:
    """Parameter names, shapes and dtypes as one string (equal = same architecture)."""
    return ";".join(f"{k}:{v.shape}:{v.dtype}" for k, v in sorted(state.items()))


def average_weights(
    states: Sequence[Mapping[str, np.ndarray]], examples: Sequence[float]
) -> dict[str, np.ndarray]:
    """FedAvg: the ``examples``-weighted mean of same-signature ``states``.

    Floating arrays are averaged in float64 and returned as float32; integer
    buffers (BatchNorm's ``num_batches_tracked``) take the maximum.
    """
    if not states or len({weights_signature(s) for s in states}) != 1:
        raise ValueError("average_weights needs states of one architecture")
    w = np.asarray(examples, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(states), 1.0 / len(states))
    out: dict[str, np.ndarray] = {}
    for key, first in states[0].items():
        stack = np.stack([s[key] for s in states])
        if np.issubdtype(first.dtype, np.floating):
            mean = np.tensordot(w, stack.astype(np.float64), axes=1)
            out[key] = mean.astype(np.float32)
        else:
            out[key] = stack.max(axis=0)
    return out


@ALGORITHMS.register("fedavg")
class FedAvg(Algorithm):
    """Weight averaging among twins; one phase-2 message carries the mean."""

    description = (
        "FedAvg (McMahan et al., AISTATS 2017) within each group of clients with "
        "the same label space and an identical architecture (a reference point; "
        "a client without a twin trains locally)"
    )
    wire = (
        "up: the model's state (all parameters and buffers) after phase 1; "
        "down: its group's mean, weighted by training examples"
    )
    space = "weights"

    def payloads(self, muscle: MuscleConfig) -> Payloads:
        """The model up after phase 1; its group's mean model down."""
        return Payloads(upload=None, relay={}, relay_weights=True)

    aligns = False

    def train_upload(self, model: ClientModel) -> State | None:
        """The whole state (parameters and buffers) after phase 1."""
        return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}

    def messages_per_round(self, run: RunConfig) -> int:
        """One message: the group's mean model."""
        return 1

    def groups(self, up: Uploads) -> list[list[int]]:
        """Uploaders of one label space and one architecture (any task)."""
        groups: dict[str, list[int]] = {}
        for node in up.pool:
            if node in up.models:
                key = up.label_spaces.get(node, "") + "|"
                groups.setdefault(key + weights_signature(up.models[node]), []).append(
                    node
                )
        return list(groups.values())

    def relay(self, req: RelayRequest) -> dict[int, Relay]:
        """Every member of a group of two or more gets the group's mean."""
        up, out = req.uploads, dict[int, Relay]()
        for group in self.groups(up):
            if len(group) < 2:
                continue  # no twin: trains locally
            mean = average_weights(
                [up.models[n] for n in group], [up.examples.get(n, 1.0) for n in group]
            )
            out |= dict.fromkeys(group, Relay(weights=mean))
        return out
