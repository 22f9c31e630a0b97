"""Phase 2 and the client's private head: frozen BatchNorm statistics, head re-fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedmuscle_flwr.clientapp import trainer as training
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.run import MuscleConfig, RunConfig
from fedmuscle_flwr.data.registry import load_public
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import AlignContext
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.tasks.registry import get_task

B, D = 16, 32


def _running_stats(model: torch.nn.Module) -> list[torch.Tensor]:
    return [b.clone() for n, b in model.named_buffers() if "running_" in n]


@pytest.mark.parametrize("freeze", [True, False])
def test_align_keeps_or_moves_batchnorm_statistics(freeze: bool) -> None:
    profile = load_profile("mnist5k-cnn")  # small CNN with BatchNorm
    task = get_task("classification", {})
    model = build_client_model(profile.model, task, 10, D, seed=0)
    public = load_public("digits-public", 300)
    cfg = MuscleConfig(dim=D, batch_size=B, partners=1, freeze_norm_stats=freeze)
    steps = np.arange(3 * B, dtype=np.int64).reshape(3, B)
    gen = torch.Generator().manual_seed(0)
    payloads = [
        {"partners": F.normalize(torch.randn(1, B, D, generator=gen), dim=-1)}
        for _ in range(3)
    ]
    before = _running_stats(model)
    weights = [p.detach().clone() for p in model.representation_parameters()]
    opt = torch.optim.Adam(model.representation_parameters(), lr=1e-2)
    training.align(
        model,
        public,
        steps,
        payloads,
        opt,
        algorithm=get_algorithm("fedmuscle"),
        ctx=AlignContext(cfg, task),
        device=torch.device("cpu"),
    )
    after = _running_stats(model)
    assert before, "the small CNN has BatchNorm layers"
    same = all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert same is freeze
    moved = [
        not torch.equal(a, b)
        for a, b in zip(weights, model.representation_parameters(), strict=True)
    ]
    assert all(moved)  # conv, BatchNorm affine and projector weights all train
    assert training.freeze_norm_statistics(model) == len(before) // 2


def _two_clients(tmp_path: Path, **extra: object) -> list[dict]:
    """One round of two digits clients through the real strategy and ClientApp."""
    from fedmuscle_flwr.clientapp.app import app as client_app
    from fedmuscle_flwr.runs.metrics import RunRecorder
    from fedmuscle_flwr.serverapp.strategy import FedMuscle
    from tests.conftest import tiny_flat
    from tests.loopback import LoopbackGrid

    digits = '"data.dataset" = "digits", "data.partition.scheme" = "whole", '
    digits += '"data.max-train" = 64, "data.max-test" = 40'
    roster = tmp_path / "two.toml"
    roster.write_text(
        f'[[clients]]\nprofile = "mnist5k-mlp"\nset = {{ {digits} }}\n'
        f'[[clients]]\nprofile = "custom-plugin"\nset = {{ {digits} }}\n'
    )
    flat = tiny_flat(roster, tmp_path, **{"num-rounds": 1, "run-name": "refit"})
    flat.update({"public.dataset": "digits-public", "public.size": 300})
    flat.update({"train.head-refit-epochs": 1, "eval.initial": False, **extra})
    recorder = RunRecorder(tmp_path / "refit")
    strategy = FedMuscle(RunConfig.from_flat(flat), recorder)
    strategy.start(grid=LoopbackGrid(client_app, 2))
    return recorder.rows


def test_head_refit_runs_after_the_last_phase2_step_only(
    tmp_path: Path, state_dir: Path
) -> None:
    rows = _two_clients(tmp_path, **{"muscle.sync": "per-step", "muscle.steps": 3})
    align = [r for r in rows if r.get("phase") == "align"]
    assert len(align) == 2 * 3  # two clients, three per-step messages
    refit = [(r["client"], r["step"]) for r in align if "refit-loss" in r]
    assert sorted(refit) == [("custom-plugin", 2), ("mnist5k-mlp", 2)]
    assert all(r["refit-loss"] > 0 for r in align if "refit-loss" in r)
    assert not any("refit-loss" in r for r in rows if r.get("phase") == "train")


def test_local_gets_the_same_head_epochs_after_phase_1(
    tmp_path: Path, state_dir: Path
) -> None:
    rows = _two_clients(tmp_path, algorithm="local")
    train = [r for r in rows if r.get("phase") == "train"]
    assert len(train) == 2 and all(r["refit-loss"] > 0 for r in train)
