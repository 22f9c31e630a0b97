import numpy as np
import pytest
import torch

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.method import planner as agg
from fedmuscle_flwr.method.alignment import alignment
from fedmuscle_flwr.method.losses import build_aggregate
from fedmuscle_flwr.wire.npy import npy_join


def unit(*shape, seed=0):
    z = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def test_public_batches_seeded_distinct_and_in_range():
    a = agg.public_batches(1, 3, 5, 32, 100)
    assert a.shape == (5, 32) and a.dtype == np.int64
    assert all(len(set(row)) == 32 for row in a) and a.max() < 100
    np.testing.assert_array_equal(a, agg.public_batches(1, 3, 5, 32, 100))
    assert not np.array_equal(a, agg.public_batches(1, 4, 5, 32, 100))


def test_probe_is_fixed():
    np.testing.assert_array_equal(
        agg.probe_indices(0, 16, 50), agg.probe_indices(0, 16, 50)
    )


def test_sample_partners_excludes_self_and_caps_m():
    clients = [11, 22, 33, 44, 55]
    out = agg.sample_partners(clients, 3, seed=0, server_round=1, step=0)
    for n, chosen in out.items():
        assert n not in chosen and len(chosen) == 3 and len(set(chosen)) == 3
    few = agg.sample_partners([1, 2], 3, seed=0, server_round=1, step=0)
    assert few == {1: [2], 2: [1]}
    assert agg.sample_partners([1], 3, 0, 1, 0) == {1: []}
    assert out == agg.sample_partners(clients, 3, seed=0, server_round=1, step=0)


def test_compact_payload_holds_partner_rows_shuffled():
    bank = {n: unit(2, 4, 8, seed=n) for n in (1, 2, 3)}
    out = agg.compact_payload(bank, [[2, 3], [3, 2]], np.random.default_rng(0))
    assert out.shape == (2, 2, 4, 8)
    for s in range(2):
        got = sorted(map(tuple, out[s].reshape(2, -1).round(6)))
        want = sorted(
            map(tuple, np.stack([bank[2][s], bank[3][s]]).reshape(2, -1).round(6))
        )
        assert got == want


def test_aggregated_payload_matches_loss_module():
    cfg = MuscleConfig(batch_size=4, dim=8, partners=2)
    compact = unit(3, 2, 4, 8)
    s, log_alpha = agg.aggregated_payload(compact, cfg)
    assert s.shape == (3, 16, 8) and log_alpha.shape == (3, 16)
    ref_s, ref_a = build_aggregate(
        torch.from_numpy(compact[1]), cfg.tau, cfg.tau_partners
    )
    np.testing.assert_allclose(s[1], ref_s.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_alpha[1], ref_a.numpy(), rtol=1e-5, atol=1e-6)


def test_alignment_identical_vs_random():
    cfg = MuscleConfig(batch_size=8, dim=16, partners=2)
    same = unit(8, 16)
    aligned = alignment({1: same, 2: same, 3: same}, cfg)
    random = alignment({n: unit(8, 16, seed=n) for n in (1, 2, 3)}, cfg)
    assert aligned is not None and random is not None
    assert abs(aligned.positive_similarity - 1) < 1e-6
    assert aligned.muscle_loss < random.muscle_loss
    assert aligned.mi_lower_bound > random.mi_lower_bound
    assert alignment({1: same}, cfg) is None


def test_average_weights_is_the_example_weighted_mean():
    from fedmuscle_flwr.method.algorithms.fedavg import (
        average_weights,
        weights_signature,
    )

    a = {"w": np.array([1.0, 2.0], np.float32), "n": np.array(3, np.int64)}
    b = {"w": np.array([3.0, 6.0], np.float32), "n": np.array(5, np.int64)}
    mean = average_weights([a, b], [1.0, 3.0])
    np.testing.assert_allclose(mean["w"], [0.25 * 1 + 0.75 * 3, 0.25 * 2 + 0.75 * 6])
    assert mean["w"].dtype == np.float32 and int(mean["n"]) == 5
    assert weights_signature(a) == weights_signature(b)
    other = {"w": np.zeros(3, np.float32), "n": np.array(1, np.int64)}
    assert weights_signature(other) != weights_signature(a)
    with pytest.raises(ValueError, match="one architecture"):
        average_weights([a, other], [1.0, 1.0])


def old_partner_matrices(bank, groups, m, seed, server_round, step, steps):
    """The eager planner before issue 26 (one permutation per node and step)."""
    from fedmuscle_flwr.method.seeds import STREAM_SHUFFLE, rng_for

    sampled = [{} for _ in steps]
    for group in groups:
        for choice, s in zip(sampled, steps, strict=True):
            choice.update(agg.sample_partners(group, m, seed, server_round, s))
    rng = rng_for(seed, STREAM_SHUFFLE, server_round, step)
    out = {}
    for node in (n for group in groups for n in group):
        partners = [choice[node] for choice in sampled]
        if partners[0]:
            rows = []
            for s, chosen in enumerate(partners):
                order = rng.permutation(len(chosen))
                rows.append(np.stack([bank[chosen[int(i)]][s] for i in order]))
            out[node] = np.stack(rows).astype(np.float32)
    return out


@pytest.mark.parametrize(
    "groups",
    [[list(range(40))], [[1, 2], [3], [4, 5, 6, 7, 8, 9]], [list(range(3)), [7, 8]]],
)
def test_lazy_partner_matrices_equal_the_eager_ones(groups):
    # the float16 bank of the wire; the old planner got the same values as float32
    nodes = [n for g in groups for n in g]
    bank = {n: unit(5, 4, 8, seed=n).astype(np.float16) for n in nodes}
    old = old_partner_matrices(
        {n: z.astype(np.float32) for n, z in bank.items()}, groups, 3, 7, 2, 0, range(5)
    )
    new = agg.partner_matrices(bank, groups, 3, 7, 2, 0, range(5))
    assert list(new) == list(old) and len(new) == len(old)
    for node in old:  # looked up in another order than drawn: the same payloads
        got = new[node]
        assert got.dtype == np.float16  # the wire dtype: no cast on the way
        np.testing.assert_array_equal(got.astype(np.float32), old[node])
    if [3] in groups:
        assert 3 not in new  # alone in its group: nothing to relay


def test_shuffled_draws_what_one_permutation_per_step_draws():
    partners = [[5, 6, 7], [7, 8, 9], [1, 2, 3], [4, 5, 6]]
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    want = [[row[i] for i in a.permutation(3)] for row in partners]
    np.testing.assert_array_equal(agg.shuffled(partners, b), want)
    assert a.integers(2**62) == b.integers(2**62)  # the generators agree after


def test_flower_node_ids_above_2_63_are_relayed():
    # A deployment's node ids are unsigned 64-bit: int64 overflowed on them
    # (OverflowError in the first align phase of a real deployment)
    big = [2**64 - 1, 2**63, 2**63 + 5, 7]
    bank = {n: unit(2, 4, 8, seed=i).astype(np.float16) for i, n in enumerate(big)}
    got = agg.partner_matrices(bank, [big], 2, 7, 1, 0, range(2))
    assert sorted(got) == sorted(big)
    for node in big:
        payload = got[node]  # (S, M, B, d): rows of two other nodes per step
        assert payload.shape == (2, 2, 4, 8)
        for s in range(2):
            rows = [next(n for n in big if np.array_equal(bank[n][s], p))
                    for p in payload[s]]  # fmt: skip
            assert node not in rows and len(set(rows)) == 2


def test_gather_mixes_dtypes_as_numpy_stacks_them():
    bank = {1: unit(2, 4, 8).astype(np.float16), 2: unit(2, 4, 8, seed=1)}
    got = agg.gather(bank, np.array([[1, 2], [2, 1]]))
    assert got.dtype == np.float32 and got.shape == (2, 2, 4, 8)
    np.testing.assert_array_equal(got[1, 1], bank[1][1].astype(np.float32))


def test_aggregated_payload_of_a_float16_bank_is_that_of_its_float32_values():
    cfg = MuscleConfig(batch_size=4, dim=8, partners=2)
    compact = unit(2, 2, 4, 8).astype(np.float16)
    s16, a16 = agg.aggregated_payload(compact, cfg)
    s32, a32 = agg.aggregated_payload(compact.astype(np.float32), cfg)
    assert s16.dtype == np.float32
    np.testing.assert_array_equal(s16, s32)
    np.testing.assert_array_equal(a16, a32)


def _per_client_draws(clients, m, seed, server_round, step):
    """The client-by-client draws every run up to now made (the reference)."""
    from fedmuscle_flwr.method.seeds import STREAM_PARTNERS, rng_for

    rng = rng_for(seed, STREAM_PARTNERS, server_round, step)
    k = min(m, len(clients) - 1)
    out = {}
    for pos, n in enumerate(clients):
        picked = rng.choice(len(clients) - 1, size=k, replace=False).tolist()
        out[n] = [clients[i + (i >= pos)] for i in picked]
    return out


@pytest.mark.parametrize("n", [2, 3, 8, agg.BATCHED_ABOVE])
def test_up_to_the_threshold_the_draws_are_those_of_every_earlier_run(n):
    clients = [1000 + 7 * i for i in range(n)]
    for step in range(3):
        assert agg.sample_partners(clients, 3, 5, 2, step) == _per_client_draws(
            clients, 3, 5, 2, step
        )


def test_above_the_threshold_one_batched_draw_gives_distinct_others():
    clients = [2**63 + 11 * i for i in range(agg.BATCHED_ABOVE + 9)]  # uint64 ids
    out = agg.sample_partners(clients, 3, 5, 2, 0)
    assert list(out) == clients
    for n, chosen in out.items():
        assert len(chosen) == 3 and len(set(chosen)) == 3 and n not in chosen
        assert set(chosen) <= set(clients) and all(type(c) is int for c in chosen)
    assert out == agg.sample_partners(clients, 3, 5, 2, 0)  # seeded
    assert out != agg.sample_partners(clients, 3, 5, 2, 1)
    assert out != _per_client_draws(clients, 3, 5, 2, 0)  # the batched path ran
    every = agg.sample_partners(clients, 99, 5, 2, 0)  # M >= N - 1: all the others
    assert all(sorted(v) == sorted(set(clients) - {n}) for n, v in every.items())


def test_draw_others_is_uniform_over_ordered_subsets_of_the_others():
    # n = 5, k = 2: every row has 4 x 3 = 12 equally likely ordered pairs
    rng = np.random.default_rng(0)
    counts = np.zeros((5, 5, 5), dtype=np.int64)
    draws = 6000
    for _ in range(draws):
        picks = agg.draw_others(rng, 5, 2)
        assert picks.shape == (5, 2) and picks.dtype == np.int64
        for i, (a, b) in enumerate(picks.tolist()):
            assert a != i and b != i and a != b and 0 <= min(a, b) and max(a, b) < 5
            counts[i, a, b] += 1
    for i in range(5):
        cells = [counts[i, a, b] for a in range(5) for b in range(5)
                 if len({i, a, b}) == 3]  # fmt: skip
        expected = draws / 12
        chi2 = sum((c - expected) ** 2 / expected for c in cells)
        assert len(cells) == 12 and chi2 < 31.3  # chi-square, 11 dof, p = 0.001


@pytest.mark.parametrize("n, k", [(5, 0), (5, 5), (1, 1)])
def test_draw_others_refuses_impossible_sizes(n, k):
    with pytest.raises(ValueError, match="0 < k < n"):
        agg.draw_others(np.random.default_rng(0), n, k)


def test_step_blocks_are_views_split_once_and_gather_the_same():
    """The relay's per-node split (StepBlocks): same payloads, no copies."""
    bank = {1: unit(3, 4, 8).astype(np.float16), 2: unit(3, 4, 8, seed=1)}
    bank[3] = np.asfortranarray(unit(3, 4, 8, seed=2))  # not C-contiguous
    blocks = agg.StepBlocks(bank)
    assert blocks[1] is blocks[1] and len(blocks[1]) == 3 and len(blocks) == 3
    assert np.shares_memory(blocks[1][2], bank[1])  # a view
    assert all(b.flags.c_contiguous for b in blocks[3])
    ids = np.array([[1, 2, 3], [3, 3, 1], [2, 1, 2]])
    for join in (agg.stack_blocks, npy_join):
        got = agg.gather(blocks, ids, join)
        want = agg.gather(bank, ids, join)
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got[1, 0], bank[3][1])
