"""Who aligns with whom, on which public rows: the server's planning (no Flower).

The round's public batches, the fixed probe batch, M partners per client and
step (sampled within the groups an algorithm forms), the compact partner
matrices and the paper's aggregated downlink. Every random choice uses a
``numpy.random.Generator`` from :mod:`fedmuscle_flwr.method.seeds`, so a round
is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.method.lazy import LazyMapping
from fedmuscle_flwr.method.losses import build_aggregate
from fedmuscle_flwr.method.seeds import (
    STREAM_BATCHES,
    STREAM_PARTNERS,
    STREAM_PROBE,
    STREAM_SHUFFLE,
    rng_for,
)


def public_batches(
    seed: int, server_round: int, count: int, batch_size: int, size: int
) -> np.ndarray:
    """``count`` public batches of ``batch_size`` distinct indices < ``size``.

    Returns
    -------
    np.ndarray
        (count, B) int64; every client encodes the same rows.
    """
    rng = rng_for(seed, STREAM_BATCHES, server_round)
    rows = [rng.choice(size, batch_size, replace=False) for _ in range(count)]
    return np.asarray(rows, dtype=np.int64).reshape(count, batch_size)


def probe_indices(seed: int, probe_size: int, size: int) -> np.ndarray:
    """The fixed public probe batch (P,) used to measure alignment every round."""
    return np.sort(rng_for(seed, STREAM_PROBE).choice(size, probe_size, replace=False))


#: groups larger than this draw their partners in one batch (:func:`draw_others`);
#: groups up to it draw client by client, as every run before did
BATCHED_ABOVE = 32


def sample_partners(
    clients: Sequence[int], num_partners: int, seed: int, server_round: int, step: int
) -> dict[int, list[int]]:
    """U^n for every client n: ``M`` others, or all others when fewer are there.

    ``clients`` must be in a stable order (the strategy sorts by client name).
    Every client's partners are a uniform draw of ``M`` distinct others in a random
    order. Up to :data:`BATCHED_ABOVE` clients one ``rng.choice`` per client (the
    draws of every run so far, the default federation's included); above it one
    batched draw for all (:func:`draw_others`: the same distribution, other
    draws, ~20x less time at 1,000 clients).
    """
    rng = rng_for(seed, STREAM_PARTNERS, server_round, step)
    clients = list(clients)
    k = min(num_partners, len(clients) - 1)
    if len(clients) > BATCHED_ABOVE and k > 0:
        picked = draw_others(rng, len(clients), k)
        ids = np.asarray(clients, dtype=object)[picked].tolist()
        return dict(zip(clients, ids, strict=True))
    out: dict[int, list[int]] = {}
    for pos, n in enumerate(clients):  # draw among the others: indices skip pos
        drawn: list[int] = (
            rng.choice(len(clients) - 1, size=k, replace=False).tolist()
            if k > 0
            else []
        )
        out[n] = [clients[i + (i >= pos)] for i in drawn]
    return out


def draw_others(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n, k) positions: row i holds ``k`` distinct positions other than i.

    Each row is a uniform draw of a ``k``-subset of the other ``n - 1`` positions,
    in a uniformly random order: Floyd's algorithm run for all rows at once (``k``
    vector draws), then one ``rng.permuted`` per row, then positions at or after
    the row's own shifted by one to skip it.
    """
    if not 0 < k < n:
        raise ValueError(f"need 0 < k < n, got k={k}, n={n}")
    picks = np.empty((n, k), dtype=np.int64)
    for t, j in enumerate(range(n - 1 - k, n - 1)):  # Floyd over [0, n - 1)
        v = rng.integers(0, j + 1, size=n)
        taken = (picks[:, :t] == v[:, None]).any(axis=1)
        picks[:, t] = np.where(taken, j, v)
    picks = rng.permuted(picks, axis=1)
    return picks + (picks >= np.arange(n)[:, None])


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
        (S, M, B, d) in the bank's dtype (float32 if the partners' differ).
    """
    return gather(bank, shuffled(partners, rng))


def shuffled(partners: Sequence[Sequence[int]], rng: np.random.Generator) -> np.ndarray:
    """(S, M) node ids: each step's partners in a random order.

    One ``rng.permuted`` call over the (S, M) positions: the same draws, in the
    same order, as ``rng.permutation(M)`` once per step (checked in the tests).
    Node ids are Flower's unsigned 64-bit integers (often above 2**63).
    """
    ids = np.asarray(partners, dtype=np.uint64).reshape(len(partners), -1)
    order = rng.permuted(np.broadcast_to(np.arange(ids.shape[1]), ids.shape), axis=1)
    return np.take_along_axis(ids, order, axis=1)


#: lays blocks out as one C-order array of a shape: (blocks, shape) -> array
Join = Callable[[list[np.ndarray], tuple[int, ...]], np.ndarray]


def stack_blocks(blocks: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``blocks`` (one dtype) concatenated into a new array of ``shape``."""
    out = np.empty(shape, dtype=blocks[0].dtype)
    np.concatenate(blocks, axis=0, out=out.reshape(-1, *blocks[0].shape[1:]))
    return out


class StepBlocks(Mapping[int, list[np.ndarray]]):
    """Each node's bank entry (S', B, d) as its S' step blocks, split once.

    The relay takes ~60 blocks per node, each from a node that many others
    also drew: made once per node, a block is a list look-up, not a fresh
    numpy view (60,000 of them per round at 1,000 clients). The blocks are
    views (no copy) of a C-contiguous entry.
    """

    def __init__(self, bank: Mapping[int, np.ndarray]) -> None:
        self._bank = bank
        self._made: dict[int, list[np.ndarray]] = {}

    def __getitem__(self, node: int) -> list[np.ndarray]:
        blocks = self._made.get(node)
        if blocks is None:
            blocks = self._made[node] = list(np.ascontiguousarray(self._bank[node]))
        return blocks

    def __iter__(self) -> Iterator[int]:
        return iter(self._bank)

    def __len__(self) -> int:
        return len(self._bank)


def gather(
    bank: Mapping[int, np.ndarray] | StepBlocks,
    ids: np.ndarray,
    join: Join = stack_blocks,
) -> np.ndarray:
    """(S, M, B, d): step s of each node ``ids[s, j]``'s bank entry, one copy.

    Kept in the bank's dtype (the wire's float16: no cast; exact; mixed dtypes
    as numpy stacks them). ``join`` lays the blocks out (the server: straight
    into the bytes that will carry them, :func:`fedmuscle_flwr.wire.npy.npy_join`).
    """
    steps, m = ids.shape
    blocks = [bank[n][s] for s, row in enumerate(ids.tolist()) for n in row]
    dtype = np.result_type(*{b.dtype for b in blocks})
    if any(b.dtype != dtype or not b.flags.c_contiguous for b in blocks):
        blocks = [np.ascontiguousarray(b, dtype=dtype) for b in blocks]
    return join(blocks, (steps, m, *blocks[0].shape))


def partner_matrices(
    bank: Mapping[int, np.ndarray],
    groups: Sequence[Sequence[int]],
    num_partners: int,
    seed: int,
    server_round: int,
    step: int,
    steps: range,
    join: Join = stack_blocks,
) -> Mapping[int, np.ndarray]:
    """Every grouped node's partner matrices (S, M, B, d) for the steps ``steps``.

    Partners are sampled within each group (:func:`sample_partners`, per step);
    a node alone in its group gets no entry. Every random choice is drawn here;
    a node's matrices are gathered when looked up and not kept
    (:class:`~fedmuscle_flwr.method.lazy.LazyMapping`): one node's payload in
    memory at a time, not all N.
    """
    sampled: list[dict[int, list[int]]] = [{} for _ in steps]
    for group in groups:
        for choice, s in zip(sampled, steps, strict=True):
            choice.update(sample_partners(group, num_partners, seed, server_round, s))
    rng = rng_for(seed, STREAM_SHUFFLE, server_round, step)
    chosen: dict[int, np.ndarray] = {}
    for node in (n for group in groups for n in group):
        partners = [choice[node] for choice in sampled]
        if partners[0]:
            chosen[node] = shuffled(partners, rng)
    blocks = StepBlocks(bank)
    return LazyMapping(chosen, lambda node: gather(blocks, chosen[node], join))


def aggregated_payload(
    compact: np.ndarray, cfg: MuscleConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's downlink from the compact one: S^n (S, B^M, d), log α (S, B^M)."""
    compact = np.array(compact, dtype=np.float32)  # writable; float16: exact
    outs = [
        build_aggregate(torch.from_numpy(c), cfg.tau, cfg.tau_partners) for c in compact
    ]
    agg = np.stack([s.numpy() for s, _ in outs])  # (S, B^M, d)
    log_alpha = np.stack([a.numpy() for _, a in outs])  # (S, B^M)
    return agg.astype(np.float32), log_alpha.astype(np.float32)
