"""The creamfl baseline's server representation model (server_model.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.method.algorithms.creamfl import ServerRepresentationModel
from fedmuscle_flwr.method.losses import pairwise_infonce
from fedmuscle_flwr.runs.metrics import RunRecorder
from fedmuscle_flwr.serverapp.strategy import FedMuscle

B, D, S = 16, 32, 3


def _run(**extra: object) -> RunConfig:
    flat = {
        "algorithm": "creamfl",
        "device": "cpu",
        "public.dataset": "digits-public",
        "public.size": 300,
        "muscle.batch-size": B,
        "muscle.dim": D,
        "eval.probe-size": 32,
        "server-model.lr": 3e-3,
        **extra,
    }
    return RunConfig.from_flat(flat)


def _bank(seed: int) -> dict[int, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    return {
        n: F.normalize(torch.randn(S, B, D, generator=gen), dim=-1).numpy()
        for n in (3, 5)
    }


def test_fit_and_encode_learns_the_clients_ensemble() -> None:
    server = ServerRepresentationModel(_run())
    bank = _bank(0)
    batches = np.arange(S * B, dtype=np.int64).reshape(S, B)
    ensemble = F.normalize(torch.from_numpy(np.mean([bank[3], bank[5]], 0)), dim=-1)

    def loss(reps: np.ndarray) -> float:
        g = torch.from_numpy(reps)
        return float(
            np.mean([pairwise_infonce(g[s], ensemble[s][None]) for s in range(S)])
        )

    first = server.fit_and_encode(bank, batches)
    assert first.shape == (S, B, D) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=-1), 1.0, atol=1e-5)
    for _ in range(15):
        last = server.fit_and_encode(bank, batches)
    assert loss(last) < loss(first) - 0.5  # it learns the ensemble's structure


def test_same_run_same_server_model() -> None:
    batches = np.arange(S * B, dtype=np.int64).reshape(S, B)
    a = ServerRepresentationModel(_run()).fit_and_encode(_bank(1), batches)
    b = ServerRepresentationModel(_run()).fit_and_encode(_bank(1), batches)
    np.testing.assert_array_equal(a, b)


def test_unknown_server_backbone_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server-model.backbone='nope'"):
        FedMuscle(_run(**{"server-model.backbone": "nope"}), RunRecorder(tmp_path))


def test_creamfl_builds_its_server_model_at_setup_and_others_none(
    tmp_path: Path,
) -> None:
    creamfl = FedMuscle(_run(algorithm="creamfl"), RunRecorder(tmp_path / "c"))
    assert isinstance(creamfl.algorithm.server_model, ServerRepresentationModel)
    other = FedMuscle(_run(algorithm="fedmuscle"), RunRecorder(tmp_path / "f"))
    assert getattr(other.algorithm, "server_model", None) is None
