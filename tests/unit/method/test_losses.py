"""Tests of fedmuscle_flwr.method.losses against a slow loop written from docs/method.md §2."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.method.losses import (
    MuscleLoss,
    PairwiseInfoNCE,
    build_aggregate,
    muscle_loss,
    muscle_loss_from_aggregate,
    mutual_information_bound,
    pairwise_infonce,
    unbiased_sampled_muscle_loss,
)

TOL = 1e-10  # float64 agreement asked by docs/method.md §2, identity 3
# (M, B, D): M = 1..4, with small B for M = 4 so that the loop reference stays fast
CASES = [(1, 5, 4), (2, 4, 6), (3, 4, 5), (3, 3, 8), (4, 3, 4), (4, 4, 3)]
TAUS = [(0.2, 0.15), (0.5, 0.1), (0.1, 0.1), (1.0, 0.3)]


def unit(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Random L2-normalised rows (last dim), reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=gen, dtype=dtype), dim=-1)


def inputs(m: int, b: int, d: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Anchor (B, D) that requires grad and partners (M, B, D)."""
    return unit(b, d, seed=seed).requires_grad_(), unit(m, b, d, seed=seed + 1)


def reference_muscle(
    anchor: Tensor, partners: Tensor, tau: float, tau_p: float
) -> Tensor:
    """docs/method.md §2 verbatim: a Python loop over all B^M tuples j, per anchor i."""
    num_m, b, _ = partners.shape
    gamma = 1.0 / tau_p - 1.0 / tau
    tuples = list(itertools.product(range(b), repeat=num_m))
    zero = torch.zeros((), dtype=anchor.dtype)
    losses = []
    for i in range(b):
        logits = []
        for j in tuples:
            sims = (anchor[i] @ partners[m, j[m]] for m in range(num_m))
            sim = sum(sims, start=zero) / tau
            log_alpha = -gamma * sum(
                (
                    partners[m, j[m]] @ partners[n, j[n]]
                    for m, n in itertools.combinations(range(num_m), 2)
                ),
                start=zero,
            )
            logits.append(sim + log_alpha)
        log_p = torch.log_softmax(torch.stack(logits), dim=0)
        losses.append(-log_p[tuples.index((i,) * num_m)])
    return torch.stack(losses).mean()


def reference_infonce(anchor: Tensor, partner: Tensor, tau: float) -> Tensor:
    """One-directional InfoNCE, -log softmax_j(z_i . z_j / tau) at j = i, by loop."""
    b = anchor.shape[0]
    losses = []
    for i in range(b):
        sims = torch.stack([anchor[i] @ partner[j] / tau for j in range(b)])
        losses.append(torch.logsumexp(sims, 0) - sims[i])
    return torch.stack(losses).mean()


def used_streaming(loss: Tensor) -> bool:
    """Whether the autograd graph of ``loss`` went through the chunked function."""
    stack, seen = [loss.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "Streamed" in type(fn).__name__:
            return True
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return False


# ---- identity 3: brute force == vectorised; identity 5: gradient parity


@pytest.mark.parametrize(("m", "b", "d"), CASES)
@pytest.mark.parametrize(("tau", "tau_p"), TAUS)
def test_matches_bruteforce_reference(
    m: int, b: int, d: int, tau: float, tau_p: float
) -> None:
    # Prepare
    anchor, partners = inputs(m, b, d, seed=m * 10 + b)
    # Execute
    expected = reference_muscle(anchor, partners, tau, tau_p)
    got = muscle_loss(anchor, partners, tau, tau_p)
    # Assert
    assert got.dtype == torch.float64
    assert abs(got.item() - expected.item()) < TOL


@pytest.mark.parametrize(("m", "b", "d"), CASES)
def test_anchor_gradient_matches_bruteforce(m: int, b: int, d: int) -> None:
    # Prepare
    anchor, partners = inputs(m, b, d, seed=7 + m)
    (expected,) = torch.autograd.grad(
        reference_muscle(anchor, partners, 0.3, 0.2), anchor
    )
    # Execute
    (got,) = torch.autograd.grad(muscle_loss(anchor, partners, 0.3, 0.2), anchor)
    # Assert
    assert expected.abs().max() > 1e-3  # a real gradient, not a vacuous match
    torch.testing.assert_close(got, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda a, p: muscle_loss(a, p),
        lambda a, p: muscle_loss(a, p, max_tuples=4),
        lambda a, p: MuscleLoss()(a, p),
        lambda a, p: pairwise_infonce(a, p),
        lambda a, p: muscle_loss_from_aggregate(a, *build_aggregate(p)),
        lambda a, p: unbiased_sampled_muscle_loss(a, p, num_samples=16),
    ],
    ids=["muscle", "streamed", "module", "pairwise", "aggregate", "sampled"],
)
def test_gradients_flow_into_anchor_only(loss_fn: object) -> None:
    # Prepare: partners that would collect a gradient if they were not detached
    anchor, partners = inputs(3, 3, 4, seed=3)
    partners.requires_grad_()
    # Execute
    loss_fn(anchor, partners).backward()  # type: ignore[operator]
    # Assert
    assert partners.grad is None
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0


# ---- identities 1, 2 and 4


@pytest.mark.parametrize(("m", "b", "d"), [(2, 5, 4), (3, 4, 6), (4, 3, 5)])
def test_gamma_zero_equals_sum_of_infonce(m: int, b: int, d: int) -> None:
    # Prepare: tau_partners == tau makes gamma = 0
    anchor, partners = inputs(m, b, d, seed=11)
    expected = torch.stack(
        [reference_infonce(anchor, partners[k], 0.25) for k in range(m)]
    ).sum()
    # Execute
    got = muscle_loss(anchor, partners, 0.25, 0.25)
    # Assert
    assert abs(got.item() - expected.item()) < TOL
    assert abs(pairwise_infonce(anchor, partners, 0.25).item() - expected.item()) < TOL


def test_gamma_positive_differs_from_sum_of_infonce() -> None:
    # Prepare
    anchor, partners = inputs(3, 4, 6, seed=12)
    # Execute
    muscle = muscle_loss(anchor, partners, 0.2, 0.15).item()
    pairwise = pairwise_infonce(anchor, partners, 0.2).item()
    # Assert: alpha matters once gamma > 0 and M >= 2
    assert abs(muscle - pairwise) > 1e-3


@pytest.mark.parametrize("tau_p", [0.05, 0.15, 0.2])
def test_single_partner_is_infonce(tau_p: float) -> None:
    # Prepare
    anchor, partners = inputs(1, 6, 5, seed=21)
    # Execute
    got = muscle_loss(anchor, partners, 0.2, tau_p)
    # Assert: no partner pairs, so tau_partners plays no role
    expected = reference_infonce(anchor, partners[0], 0.2)
    assert abs(got.item() - expected.item()) < TOL


def test_permuting_partners_leaves_loss_unchanged() -> None:
    # Prepare
    anchor, partners = inputs(3, 4, 5, seed=31)
    base = muscle_loss(anchor, partners).item()
    # Execute
    permuted = [
        muscle_loss(anchor, partners[list(order)]).item()
        for order in itertools.permutations(range(3))
    ]
    # Assert
    assert max(abs(v - base) for v in permuted) < TOL


# ---- streamed (chunked) path == one-shot path


@pytest.mark.parametrize("method", ["grid", "factorised"])
@pytest.mark.parametrize(("m", "b", "d"), CASES)
def test_streamed_equals_unchunked(m: int, b: int, d: int, method: str) -> None:
    # Prepare: caps that fix 0, 1, ... M leading tuple indices, with 1 or more rows;
    # the grid holds B^(M+1) cells, the factorised weights W hold B^M entries
    if method == "factorised" and m == 1:
        pytest.skip("M = 1 is InfoNCE (one logsumexp): no tuples to stream")
    anchor, partners = inputs(m, b, d, seed=41 + m)
    full = muscle_loss(anchor, partners, 0.2, 0.1, method=method)
    (full_grad,) = torch.autograd.grad(full, anchor)
    size = b ** (m + 1) if method == "grid" else b**m
    caps = {size - 1, size // b, 2 * size // b**2, size // b**2, size // b**3, 1}
    for cap in sorted(c for c in caps if c >= 1):
        # Execute
        streamed = muscle_loss(
            anchor, partners, 0.2, 0.1, max_tuples=cap, method=method
        )
        (grad,) = torch.autograd.grad(streamed, anchor)
        # Assert
        assert used_streaming(streamed) and not used_streaming(full)
        assert abs(streamed.item() - full.item()) < TOL, cap
        torch.testing.assert_close(grad, full_grad, rtol=0, atol=TOL)


# ---- aggregated (paper) downlink == compact downlink


@pytest.mark.parametrize(
    ("m", "b", "d"), [(1, 4, 3), (2, 5, 4), (3, 4, 6), (4, 3, 4), (3, 2, 5), (2, 1, 3)]
)
@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float64, TOL), (torch.float32, 1e-5)]
)
def test_aggregated_equals_compact(
    m: int, b: int, d: int, dtype: torch.dtype, tol: float
) -> None:
    # Prepare
    anchor = unit(b, d, seed=51, dtype=dtype).requires_grad_()
    partners = unit(m, b, d, seed=52, dtype=dtype)
    compact = muscle_loss(anchor, partners, 0.2, 0.15)
    (compact_grad,) = torch.autograd.grad(compact, anchor)
    # Execute
    s, log_alpha = build_aggregate(partners, 0.2, 0.15)
    aggregated = muscle_loss_from_aggregate(anchor, s, log_alpha)
    (agg_grad,) = torch.autograd.grad(aggregated, anchor)
    # Assert
    assert s.shape == (b**m, d) and log_alpha.shape == (b**m,)
    assert abs(aggregated.item() - compact.item()) < tol
    torch.testing.assert_close(agg_grad, compact_grad, rtol=0, atol=tol)


def test_build_aggregate_rows_are_row_major_tuples() -> None:
    # Prepare
    partners = unit(3, 3, 4, seed=61)
    tau, tau_p = 0.2, 0.1
    gamma = 1 / tau_p - 1 / tau
    # Execute
    s, log_alpha = build_aggregate(partners, tau, tau_p)
    # Assert: row t is the tuple (j_1, j_2, j_3) in itertools.product order
    for t, j in enumerate(itertools.product(range(3), repeat=3)):
        zs = [partners[m, j[m]] for m in range(3)]
        torch.testing.assert_close(s[t], sum(zs) / tau, rtol=0, atol=TOL)
        pairs = sum(zs[m] @ zs[n] for m, n in itertools.combinations(range(3), 2))
        assert abs(log_alpha[t].item() + gamma * float(pairs)) < TOL


@pytest.mark.parametrize(("b", "rows"), [(3, 10), (3, 1), (4, 8), (2, 0)])
def test_aggregate_with_rows_not_a_power_of_b_is_rejected(b: int, rows: int) -> None:
    # Prepare
    anchor, s, log_alpha = unit(b, 4, seed=1), unit(rows, 4, seed=2), torch.zeros(rows)
    # Execute / Assert
    with pytest.raises(ValueError, match=r"not B\^M"):
        muscle_loss_from_aggregate(anchor, s, log_alpha)


def test_aggregate_rejects_mismatched_shapes() -> None:
    # Prepare
    anchor, s = unit(3, 4, seed=1), unit(9, 5, seed=2)
    # Execute / Assert
    with pytest.raises(ValueError, match="S"):
        muscle_loss_from_aggregate(anchor, s, torch.zeros(9))
    with pytest.raises(ValueError, match="log_alpha"):
        muscle_loss_from_aggregate(anchor, unit(9, 4, seed=2), torch.zeros(8))


# ---- analytic cases


def test_identical_representations_beat_random_ones() -> None:
    # Prepare: every partner sees exactly the anchor's representations
    anchor = unit(8, 16, seed=71)
    aligned = anchor.expand(3, 8, 16).clone()
    random = unit(3, 8, 16, seed=72)
    # Execute
    aligned_loss = muscle_loss(anchor, aligned).item()
    random_loss = muscle_loss(anchor, random).item()
    # Assert
    assert aligned_loss < random_loss - 1.0
    assert aligned_loss < 3 * math.log(8)  # better than chance


@pytest.mark.parametrize(("m", "b"), [(1, 16), (2, 8), (3, 6)])
def test_random_vectors_give_m_log_b_at_large_tau(m: int, b: int) -> None:
    # Prepare: logits are O(M / tau), so the softmax is nearly uniform over B^M
    anchor, partners = inputs(m, b, 32, seed=81)
    # Execute
    out = MuscleLoss(tau=200.0, tau_partners=150.0)(anchor, partners, output_dict=True)
    # Assert
    assert abs(out["muscle_loss"].item() - m * math.log(b)) < 0.05
    assert abs(out["mi_lower_bound"].item()) < 0.05


def test_output_dict_reports_detached_mi_bound() -> None:
    # Prepare
    anchor, partners = inputs(3, 5, 8, seed=91)
    # Execute
    out = MuscleLoss(0.2, 0.15)(anchor, partners, output_dict=True)
    plain = MuscleLoss(0.2, 0.15)(anchor, partners)
    # Assert
    assert set(out) == {"muscle_loss", "mi_lower_bound"}
    assert out["muscle_loss"].requires_grad and not out["mi_lower_bound"].requires_grad
    assert abs(out["muscle_loss"].item() - plain.item()) < TOL
    expected = mutual_information_bound(plain.item(), num_partners=3, batch_size=5)
    assert abs(out["mi_lower_bound"].item() - expected) < TOL
    assert abs(expected - (3 * math.log(5) - plain.item())) < TOL


def test_pairwise_module_matches_reference() -> None:
    # Prepare
    anchor, partners = inputs(2, 6, 5, seed=95)
    expected = torch.stack(
        [reference_infonce(anchor, partners[k], 0.3) for k in range(2)]
    ).sum()
    # Execute
    got = PairwiseInfoNCE(tau=0.3)(anchor, partners)
    # Assert
    assert abs(got.item() - expected.item()) < TOL


# ---- low precision and autocast


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    # Prepare
    anchor, partners = (
        unit(6, 8, seed=101, dtype=dtype),
        unit(3, 6, 8, seed=102, dtype=dtype),
    )
    exact = muscle_loss(anchor.double(), partners.double())
    # Execute
    got = muscle_loss(anchor, partners)
    # Assert: the same inputs, only the arithmetic is float32
    assert got.dtype == torch.float32
    assert abs(got.item() - exact.item()) < 1e-4


def test_autocast_does_not_lower_the_logit_math() -> None:
    # Prepare
    anchor, partners = (
        unit(8, 16, seed=111, dtype=torch.float32),
        unit(3, 8, 16, seed=112, dtype=torch.float32),
    )
    expected = muscle_loss(anchor.double(), partners.double()).item()
    # Execute
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = muscle_loss(anchor, partners)
        s, log_alpha = build_aggregate(partners)
        agg = muscle_loss_from_aggregate(anchor, s, log_alpha)
    # Assert: bfloat16 matmuls would be off by ~1e-2
    assert got.dtype == agg.dtype == torch.float32
    assert abs(got.item() - expected) < 1e-5 and abs(agg.item() - expected) < 1e-5


# ---- sampled estimator


def test_sampled_estimator_mean_approaches_exact_loss() -> None:
    # Prepare: B = 3, M = 2 has only 9 tuples, so the exact loss is cheap
    anchor, partners = inputs(2, 3, 4, seed=121)
    exact = muscle_loss(anchor, partners, 0.3, 0.2).item()
    gen = torch.Generator().manual_seed(0)
    # Execute
    draws = torch.stack(
        [
            unbiased_sampled_muscle_loss(anchor, partners, 0.3, 0.2, 64, gen).detach()
            for _ in range(400)
        ]
    )
    # Assert: within the Monte-Carlo error, and biased low (Jensen), not high
    stderr = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - exact) < 4 * stderr + 5e-3
    assert draws.mean().item() < exact + 2 * stderr


def test_sampled_estimator_is_consistent() -> None:
    # Prepare
    anchor, partners = inputs(3, 4, 5, seed=131)
    exact = muscle_loss(anchor, partners).item()
    gen = torch.Generator().manual_seed(1)
    # Execute
    few = unbiased_sampled_muscle_loss(anchor, partners, num_samples=8, generator=gen)
    many = unbiased_sampled_muscle_loss(
        anchor, partners, num_samples=200_000, generator=gen
    )
    # Assert: error shrinks with K; the estimate never drops below 0
    assert abs(many.item() - exact) < 0.01
    assert abs(many.item() - exact) < abs(few.item() - exact)
    assert few.item() >= 0.0


# ---- validation


@pytest.mark.parametrize(
    ("anchor_shape", "partners_shape", "kwargs", "match"),
    [
        ((4,), (2, 4, 3), {}, "anchor must be 2-D"),
        ((4, 3), (4, 3), {}, "partners must be 3-D"),
        ((4, 3), (0, 4, 3), {}, "M >= 1"),
        ((4, 3), (2, 5, 3), {}, "do not match"),
        ((4, 3), (2, 4, 2), {}, "do not match"),
        ((4, 3), (2, 4, 3), {"tau": 0.0}, "tau must be > 0"),
        ((4, 3), (2, 4, 3), {"tau": -1.0}, "tau must be > 0"),
        ((4, 3), (2, 4, 3), {"tau_partners": 0.0}, "tau_partners must be > 0"),
        ((4, 3), (2, 4, 3), {"tau": 0.1, "tau_partners": 0.2}, "gamma"),
        ((4, 3), (2, 4, 3), {"max_tuples": 0}, "max_tuples"),
    ],
)
def test_bad_inputs_raise(
    anchor_shape: tuple[int, ...],
    partners_shape: tuple[int, ...],
    kwargs: dict[str, Any],
    match: str,
) -> None:
    # Prepare
    anchor, partners = torch.zeros(anchor_shape), torch.zeros(partners_shape)
    # Execute / Assert
    with pytest.raises(ValueError, match=match):
        muscle_loss(anchor, partners, **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MuscleLoss(tau=-0.1),
        lambda: MuscleLoss(tau=0.1, tau_partners=0.2),
        lambda: MuscleLoss(tau_partners=float("nan")),
        lambda: MuscleLoss(max_tuples=0),
        lambda: PairwiseInfoNCE(tau=0.0),
        lambda: build_aggregate(torch.zeros(2, 3, 4), tau=0.1, tau_partners=0.3),
        lambda: build_aggregate(torch.zeros(3, 4)),
        lambda: unbiased_sampled_muscle_loss(
            torch.zeros(3, 4), torch.zeros(2, 3, 4), num_samples=0
        ),
        lambda: mutual_information_bound(1.0, num_partners=0, batch_size=4),
    ],
)
def test_constructors_and_helpers_validate_eagerly(make: object) -> None:
    # Execute / Assert
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
