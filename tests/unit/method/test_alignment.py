"""Probe alignment metrics: the O(N P d) path equals the all-pairs one; sampled loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.method import alignment as al


def probes(n: int, p: int, d: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Unit rows, correlated across clients (a shared signal plus noise)."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((p, d))
    out = {}
    for k in range(n):
        z = shared + 1.5 * rng.standard_normal((p, d))
        out[1000 + k] = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(
            np.float32
        )
    return out


@pytest.mark.parametrize(("n", "p"), [(2, 5), (7, 16), (40, 8)])
def test_scaled_similarities_equal_the_pairwise_means(
    n: int, p: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    cfg = MuscleConfig(partners=3, batch_size=8)
    z = probes(n, p, 12, seed=n)
    monkeypatch.setattr(al, "EXACT_MAX", 10**6)
    exact = al.alignment(z, cfg)
    monkeypatch.setattr(al, "EXACT_MAX", 1)
    monkeypatch.setattr(al, "LOSS_SAMPLES", 10**6)  # every anchor: the same mean
    # Execute
    scaled = al.alignment(z, cfg)
    # Assert
    assert exact is not None and scaled is not None
    assert scaled.positive_similarity == pytest.approx(
        exact.positive_similarity, abs=1e-12
    )
    assert scaled.negative_similarity == pytest.approx(
        exact.negative_similarity, abs=1e-12
    )
    assert scaled.muscle_loss == pytest.approx(exact.muscle_loss, abs=1e-12)
    assert scaled.muscle_loss_se == pytest.approx(
        0.0, abs=1e-12
    )  # the whole population


def test_small_federations_keep_the_exact_metrics_and_keys() -> None:
    row = al.alignment(probes(4, 16, 12), MuscleConfig(partners=3, batch_size=8))
    assert row is not None and "probe-muscle-loss-se" not in row.as_dict()


def test_sampled_loss_is_within_its_standard_error() -> None:
    # Prepare: 200 clients, the loss of 32 evenly spaced anchors vs all 200
    cfg = MuscleConfig(partners=3, batch_size=16)
    z = probes(200, 16, 12, seed=7)
    # Execute
    sampled = al.alignment(z, cfg)
    assert sampled is not None and sampled.muscle_loss_se is not None
    every = np.mean([al._client_loss(al_tensor(z), i, 3, 16, cfg) for i in range(200)])
    # Assert: a deterministic sample, within 4 standard errors of the full mean
    assert abs(sampled.muscle_loss - every) <= 4 * sampled.muscle_loss_se + 1e-12
    assert sampled.muscle_loss_se > 0
    assert "probe-muscle-loss-se" in sampled.as_dict()


def al_tensor(z: dict[int, np.ndarray]) -> torch.Tensor:
    """The (N, P, d) float64 stack the metrics take."""
    return torch.from_numpy(np.stack(list(z.values()))).double()
