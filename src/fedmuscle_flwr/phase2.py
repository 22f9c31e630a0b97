"""Phase 2 on the server: who aligns with whom, and what each client gets (no Flower).

:class:`Phase2Planner` turns what the round's uploads left on the server into one
payload per client, following the algorithm's registry entry (``algorithms.py``):

* ``partners = all | label-space``: M partners sampled (seeded) within the groups
  — everybody, or clients of one label space — and their matrices (S, M, B, D);
* ``partners = server`` (creamfl): the server model's representations of the
  step batches, trained on this round's uploads first (``server_model.py``);
* ``partners = identical`` (fedavg): the example-weighted mean model of each group
  of clients with one label space and one architecture.

A client alone in its group gets nothing and skips phase 2 this round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedmuscle_flwr import aggregation as agg
from fedmuscle_flwr.algorithms import Algorithm
from fedmuscle_flwr.config import RunConfig
from fedmuscle_flwr.server_model import ServerRepresentationModel

#: a model's state as sent over the wire: parameter/buffer name -> array
State = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Uploads:
    """What the clients of the partner pool uploaded this round."""

    pool: Sequence[int]  # nodes in a stable order (quarantined ones left out)
    bank: Mapping[int, np.ndarray]  # node -> (K, B, D) of the step batches
    label_spaces: Mapping[int, str]  # node -> task kind/dataset/classes
    soft_labels: Mapping[int, str]  # node -> softmax | sigmoid | '' (no distribution)
    models: Mapping[int, State] = field(default_factory=dict)  # fedavg only
    examples: Mapping[int, float] = field(default_factory=dict)  # fedavg only


class Phase2Planner:
    """The phase-2 payloads of one run (holds creamfl's server model)."""

    def __init__(self, run: RunConfig, algorithm: Algorithm) -> None:
        self.run = run
        self.algorithm = algorithm
        self.server_model = (
            ServerRepresentationModel(run) if algorithm.partners == "server" else None
        )

    def groups(self, up: Uploads) -> list[list[int]]:
        """The pool split by the algorithm's grouping (each in the pool's order)."""
        if self.algorithm.partners in ("all", "server"):
            return [list(up.pool)]
        groups: dict[str, list[int]] = {}
        for node in up.pool:
            key = up.label_spaces.get(node, "")
            if self.algorithm.partners == "identical":  # fedavg: one model, any task
                if node not in up.models:
                    continue
                key += "|" + agg.weights_signature(up.models[node])
            elif not up.soft_labels.get(node, ""):
                continue  # no per-sample label distribution: no logit partners
            groups.setdefault(key, []).append(node)
        return list(groups.values())

    def partner_matrices(
        self,
        up: Uploads,
        batches: np.ndarray,
        server_round: int,
        step: int,
        span: range,
    ) -> dict[int, np.ndarray]:
        """(S, M, B, D) per node for the step batches ``batches`` (S, B)."""
        groups = self.groups(up)
        if self.server_model is not None:  # creamfl: the global model is the partner
            pool = groups[0]
            if not pool:
                return {}
            reps = self.server_model.fit_and_encode(
                {n: up.bank[n] for n in pool}, batches
            )
            return {n: reps[:, None] for n in pool}
        m, seed = self.run.muscle.partners, self.run.seed
        return agg.partner_matrices(up.bank, groups, m, seed, server_round, step, span)

    def mean_models(self, up: Uploads) -> dict[int, dict[str, np.ndarray]]:
        """FedAvg: every member of a group of two or more gets the group's mean."""
        out: dict[int, dict[str, np.ndarray]] = {}
        for group in self.groups(up):
            if len(group) < 2:
                continue  # no twin: trains locally
            mean = agg.average_weights(
                [up.models[n] for n in group], [up.examples.get(n, 1.0) for n in group]
            )
            out |= dict.fromkeys(group, mean)
        return out
