"""How aligned the clients are: probe similarities, the Muscle MI bound (no Flower)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.method.losses import muscle_loss


@dataclass(frozen=True)
class Alignment:
    """How aligned the clients' representations of the probe batch are."""

    positive_similarity: float  # mean z_i^n . z_i^m over pairs n != m
    negative_similarity: float  # mean z_i^n . z_j^m, i != j
    muscle_loss: float  # mean over clients, M cyclic partners, first B rows
    mi_lower_bound: float  # M log B - loss (docs/method.md §2 theorem)
    muscle_loss_se: float | None = None  # standard error when the loss is sampled

    def as_dict(self) -> dict[str, float]:
        """Metric names as recorded per round."""
        return {
            "probe-positive-sim": self.positive_similarity,
            "probe-negative-sim": self.negative_similarity,
            "probe-muscle-loss": self.muscle_loss,
            "probe-mi-bound": self.mi_lower_bound,
        } | (
            {}
            if self.muscle_loss_se is None
            else {"probe-muscle-loss-se": self.muscle_loss_se}
        )


#: up to this many clients the probe metrics are computed exactly as always (all
#: N^2 client pairs, every client's Muscle loss); above, in O(N P d) (below)
EXACT_MAX = 32
#: anchors of the sampled Muscle loss above EXACT_MAX (their standard error is recorded)
LOSS_SAMPLES = 32


def alignment(probe: Mapping[int, np.ndarray], cfg: MuscleConfig) -> Alignment | None:
    """Alignment of the probe representations ``probe`` (node -> (P, d)).

    Needs at least two clients; the Muscle loss uses each client's next
    ``min(M, N-1)`` clients in ``probe``'s order as partners (the strategy orders
    by client name, not by Flower's random node ids), on the first ``min(B, P)``
    probe rows. Up to :data:`EXACT_MAX` clients everything is computed over all
    pairs; above, :func:`scaled_alignment` gives the same similarities exactly
    (sums instead of the N^2 pairs) and samples the Muscle loss.
    """
    keys = list(probe)
    if len(keys) < 2:
        return None
    if len(keys) > EXACT_MAX:
        return scaled_alignment([probe[k] for k in keys], cfg)
    z = torch.from_numpy(np.stack([probe[k] for k in keys])).double()  # (N, P, d)
    n, p, _ = z.shape
    sims = torch.einsum("npd,mqd->nmpq", z, z)  # (N, N, P, P)
    off_client = ~torch.eye(n, dtype=torch.bool)
    diag = torch.eye(p, dtype=torch.bool)
    pos = sims[off_client][:, diag].mean()
    neg = sims[off_client][:, ~diag].mean()
    m, b = min(cfg.partners, n - 1), min(cfg.batch_size, p)
    losses = [_client_loss(z, i, m, b, cfg) for i in range(n)]
    loss = float(np.mean(losses))
    return Alignment(float(pos), float(neg), loss, m * float(np.log(b)) - loss)


class _LazyRows(Sequence[Tensor]):
    """The clients' probe rows as float64 tensors, converted when indexed."""

    def __init__(self, probe: Sequence[np.ndarray]) -> None:
        self.probe = probe

    def __len__(self) -> int:
        return len(self.probe)

    def __getitem__(self, i: int) -> Tensor:  # type: ignore[override]
        return torch.from_numpy(np.asarray(self.probe[i])).double()


def _client_loss(
    z: Sequence[Tensor] | Tensor, i: int, m: int, b: int, cfg: MuscleConfig
) -> float:
    """Client i's Muscle loss against its next m clients, first b probe rows.

    ``z``: the clients' (P, d) float64 probe rows, a list or an (N, P, d) tensor.
    """
    n = len(z)
    partners = torch.stack([z[(i + j) % n][:b] for j in range(1, m + 1)])
    return float(muscle_loss(z[i][:b], partners, cfg.tau, cfg.tau_partners))


def scaled_alignment(probe: Sequence[np.ndarray], cfg: MuscleConfig) -> Alignment:
    """The probe metrics of many clients in O(N P d) time, O(P d + N d) memory.

    ``probe``: each client's (P, d) rows, in the clients' order. With
    S_i = sum_n z_i^n, C^n = sum_i z_i^n and T = sum_n C^n (float64), the sums
    over client pairs n != m are exact identities: sum_i (|S_i|^2 - sum_n
    |z_i^n|^2) for the positives (i = j) and |T|^2 - sum_n |C^n|^2 -
    sum_i |S_i|^2 + sum_{n,i} |z_i^n|^2 for the negatives (equal to the pairwise
    means up to float64 rounding). The Muscle loss is the mean over
    :data:`LOSS_SAMPLES` anchor clients evenly spaced in the clients' order
    (deterministic); ``muscle_loss_se`` is its standard error
    ``std / sqrt(S) * sqrt(1 - S/N)`` (sampling without replacement).
    """
    n, (p, d) = len(probe), probe[0].shape
    s_i, sq_sum, c_sq, total = np.zeros((p, d)), 0.0, 0.0, np.zeros(d)
    for rows in probe:  # one client at a time: no (N, P, d) array
        x = rows.astype(np.float64)
        c = x.sum(0)  # (d,) C^n
        s_i += x
        sq_sum += float((x * x).sum())
        c_sq += float(c @ c)
        total += c
    same_row = float((s_i * s_i).sum()) - sq_sum  # sum_{n != m} sum_i z_i^n . z_i^m
    cross = float(total @ total) - c_sq - float((s_i * s_i).sum()) + sq_sum
    pos = same_row / (n * (n - 1) * p)
    neg = cross / (n * (n - 1) * p * (p - 1)) if p > 1 else float("nan")
    z = _LazyRows(probe)
    m, b = min(cfg.partners, n - 1), min(cfg.batch_size, p)
    anchors = np.unique(np.linspace(0, n - 1, min(LOSS_SAMPLES, n)).round().astype(int))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~25 small ops per loss: threads only add barrier waits
    try:
        losses = np.array([_client_loss(z, int(i), m, b, cfg) for i in anchors])
    finally:
        torch.set_num_threads(threads)
    k = len(losses)
    se = float(losses.std(ddof=1) / np.sqrt(k) * np.sqrt(1 - k / n)) if k > 1 else 0.0
    loss = float(losses.mean())
    return Alignment(pos, neg, loss, m * float(np.log(b)) - loss, se)
