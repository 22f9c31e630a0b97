"""Server-side math, free of Flower: public batches, partners, downlinks, alignment.

Every random choice uses a ``numpy.random.Generator`` seeded from
``(run seed, round, step, purpose)``, so a round is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fedmuscle_flwr.config import MuscleConfig
from fedmuscle_flwr.losses import build_aggregate, muscle_loss

# purposes mixed into seeds so that streams never collide
_BATCHES, _PARTNERS, _SHUFFLE, _PROBE = 0xB47C, 0x9A27, 0x5F1E, 0x960B


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """A generator for one (seed, ...) purpose."""
    return np.random.default_rng([seed, *key])


def public_batches(
    seed: int, server_round: int, count: int, batch_size: int, size: int
) -> np.ndarray:
    """``count`` public batches of ``batch_size`` distinct indices < ``size``.

    Returns
    -------
    np.ndarray
        (count, B) int64; every client encodes the same rows.
    """
    rng = rng_for(seed, _BATCHES, server_round)
    rows = [rng.choice(size, batch_size, replace=False) for _ in range(count)]
    return np.asarray(rows, dtype=np.int64).reshape(count, batch_size)


def probe_indices(seed: int, probe_size: int, size: int) -> np.ndarray:
    """The fixed public probe batch (P,) used to measure alignment every round."""
    return np.sort(rng_for(seed, _PROBE).choice(size, probe_size, replace=False))


def sample_partners(
    clients: Sequence[int], num_partners: int, seed: int, server_round: int, step: int
) -> dict[int, list[int]]:
    """U^n for every client n: ``M`` others, or all others when fewer are there.

    ``clients`` must be in a stable order (the strategy sorts by client name).
    """
    rng = rng_for(seed, _PARTNERS, server_round, step)
    out: dict[int, list[int]] = {}
    for n in clients:
        others = [m for m in clients if m != n]
        k = min(num_partners, len(others))
        picked: Sequence[int] = (
            rng.choice(len(others), size=k, replace=False).tolist() if k else []
        )
        out[n] = [others[int(i)] for i in picked]
    return out


def compact_payload(
    bank: Mapping[int, np.ndarray],
    partners: Sequence[Sequence[int]],
    rng: np.random.Generator,
) -> np.ndarray:
    """Partner matrices for S steps, identities hidden, order shuffled per step.

    Parameters
    ----------
    bank
        node -> (S, B, d) representations of the S step batches.
    partners
        U^n per step (S lists of M node ids, same M for every step).

    Returns
    -------
    np.ndarray
        (S, M, B, d) float32.
    """
    steps = []
    for s, chosen in enumerate(partners):
        order = rng.permutation(len(chosen))
        steps.append(np.stack([bank[chosen[int(i)]][s] for i in order]))  # (M, B, d)
    return np.stack(steps)  # (S, M, B, d)


def partner_matrices(
    bank: Mapping[int, np.ndarray],
    groups: Sequence[Sequence[int]],
    num_partners: int,
    seed: int,
    server_round: int,
    step: int,
    steps: range,
) -> dict[int, np.ndarray]:
    """Every grouped node's partner matrices (S, M, B, d) for the steps ``steps``.

    Partners are sampled within each group (:func:`sample_partners`, per step);
    a node alone in its group gets no entry.
    """
    sampled: list[dict[int, list[int]]] = [{} for _ in steps]
    for group in groups:
        for choice, s in zip(sampled, steps, strict=True):
            choice.update(sample_partners(group, num_partners, seed, server_round, s))
    rng = rng_for(seed, _SHUFFLE, server_round, step)
    out: dict[int, np.ndarray] = {}
    for node in (n for group in groups for n in group):
        partners = [choice[node] for choice in sampled]
        if partners[0]:
            out[node] = compact_payload(bank, partners, rng)
    return out


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


def aggregated_payload(
    compact: np.ndarray, cfg: MuscleConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's downlink from the compact one: S^n (S, B^M, d), log α (S, B^M)."""
    outs = [
        build_aggregate(torch.from_numpy(c), cfg.tau, cfg.tau_partners) for c in compact
    ]
    agg = np.stack([s.numpy() for s, _ in outs])  # (S, B^M, d)
    log_alpha = np.stack([a.numpy() for _, a in outs])  # (S, B^M)
    return agg.astype(np.float32), log_alpha.astype(np.float32)


@dataclass(frozen=True)
class Alignment:
    """How aligned the clients' representations of the probe batch are."""

    positive_similarity: float  # mean z_i^n . z_i^m over pairs n != m
    negative_similarity: float  # mean z_i^n . z_j^m, i != j
    muscle_loss: float  # mean over clients, M cyclic partners, first B rows
    mi_lower_bound: float  # M log B - loss (fedmuscle.md §2 theorem)

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
    ``min(M, N-1)`` clients in sorted order as partners, on the first
    ``min(B, P)`` probe rows.
    """
    keys = sorted(probe)
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
