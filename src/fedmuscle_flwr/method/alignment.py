"""How aligned the clients are: probe similarities, the Muscle MI bound (no Flower)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.method.losses import muscle_loss


@dataclass(frozen=True)
class Alignment:
    """How aligned the clients' representations of the probe batch are."""

    positive_similarity: float  # mean z_i^n . z_i^m over pairs n != m
    negative_similarity: float  # mean z_i^n . z_j^m, i != j
    muscle_loss: float  # mean over clients, M cyclic partners, first B rows
    mi_lower_bound: float  # M log B - loss (docs/method.md §2 theorem)

    def as_dict(self) -> dict[str, float]:
        """Metric names as recorded per round."""
        return {
            "probe-positive-sim": self.positive_similarity,
            "probe-negative-sim": self.negative_similarity,
            "probe-muscle-loss": self.muscle_loss,
            "probe-mi-bound": self.mi_lower_bound,
        }


def alignment(probe: Mapping[int, np.ndarray], cfg: MuscleConfig) -> Alignment | None:
    """Alignment of the probe representations ``probe`` (node -> (P, d)).

    Needs at least two clients; the Muscle loss uses each client's next
    ``min(M, N-1)`` clients in ``probe``'s order as partners (the strategy orders
    by client name, not by Flower's random node ids), on the first ``min(B, P)``
    probe rows.
    """
    keys = list(probe)
    if len(keys) < 2:
        return None
    z = torch.from_numpy(np.stack([probe[k] for k in keys])).double()  # (N, P, d)
    n, p, _ = z.shape
    sims = torch.einsum("npd,mqd->nmpq", z, z)  # (N, N, P, P)
    off_client = ~torch.eye(n, dtype=torch.bool)
    diag = torch.eye(p, dtype=torch.bool)
    pos = sims[off_client][:, diag].mean()
    neg = sims[off_client][:, ~diag].mean()
    m, b = min(cfg.partners, n - 1), min(cfg.batch_size, p)
    losses = []
    for i in range(n):
        partners = torch.stack([z[(i + j) % n, :b] for j in range(1, m + 1)])
        losses.append(float(muscle_loss(z[i, :b], partners, cfg.tau, cfg.tau_partners)))
    loss = float(np.mean(losses))
    return Alignment(float(pos), float(neg), loss, m * float(np.log(b)) - loss)
