"""Phase 2 and evaluation: BatchNorm statistics (issue 16) and the head re-fit."""

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
from fedmuscle_flwr.models.batchnorm import recompute_running_stats, trainable_norms
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.tasks.registry import get_task

B, D = 16, 32


def _running_stats(model: torch.nn.Module) -> list[torch.Tensor]:
    return [b.clone() for n, b in model.named_buffers() if "running_" in n]


def _setup(freeze: bool = False):  # type: ignore[no-untyped-def]
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
    return model, task, public, cfg, steps, payloads


@pytest.mark.parametrize("freeze", [True, False])
def test_align_leaves_no_public_statistics(freeze: bool) -> None:
    """Phase 2 trains every weight of w^n but keeps the private running statistics."""
    model, task, public, cfg, steps, payloads = _setup(freeze)
    model.train()
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
    assert len(before) == 2 * len(trainable_norms(model)) > 0
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    moved = [
        not torch.equal(a, b)
        for a, b in zip(weights, model.representation_parameters(), strict=True)
    ]
    assert all(moved)  # conv, BatchNorm affine and projector weights all train
    assert model.training  # the caller's mode is restored
    assert all(m.track_running_stats for m in trainable_norms(model))


@pytest.mark.parametrize("freeze", [True, False])
def test_anchor_is_encoded_like_the_upload(freeze: bool) -> None:
    """The Muscle anchor of a step equals what encode_public uploads of that batch."""
    model, task, public, cfg, steps, payloads = _setup(freeze)
    with torch.no_grad():  # distinct running statistics: eval mode would differ
        for m in trainable_norms(model):
            m.running_mean.add_(0.5)  # type: ignore[operator]
            m.running_var.mul_(3.0)  # type: ignore[operator]
    upload = training.encode_public(
        model, public, steps[:1], torch.device("cpu"), batch_stats=not freeze
    )[0]
    anchors: list[torch.Tensor] = []
    muscle = get_algorithm("fedmuscle")

    class Spy(type(muscle)):  # type: ignore[misc]
        def align_loss(self, anchor, payload, ctx):  # type: ignore[no-untyped-def]
            anchors.append(anchor.detach().clone())
            return super().align_loss(anchor, payload, ctx)

    opt = torch.optim.SGD(model.representation_parameters(), lr=0.0)
    training.align(
        model,
        public,
        steps[:1],
        payloads[:1],
        opt,
        algorithm=Spy(),
        ctx=AlignContext(cfg, task),
        device=torch.device("cpu"),
    )
    np.testing.assert_allclose(anchors[0].numpy(), upload, rtol=0, atol=1e-6)


def test_recompute_running_statistics_is_the_exact_batch_mean() -> None:
    """Re-estimation: the mean of the batches' statistics, weights and modes unchanged."""
    norm = torch.nn.BatchNorm1d(3, momentum=0.1)
    model = torch.nn.Sequential(norm, torch.nn.Dropout(0.5))
    model.train()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 3, generator=gen) * 2 + 5 for _ in range(4)]
    weight = norm.weight.detach().clone()
    seen = recompute_running_stats(model, batches, model)
    assert seen == 4
    data = torch.cat(batches)
    mean_var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(norm.running_mean, data.mean(0))
    torch.testing.assert_close(norm.running_var, mean_var)
    assert torch.equal(norm.weight, weight) and norm.momentum == 0.1
    assert model.training and norm.training
    assert recompute_running_stats(torch.nn.Linear(3, 3), batches, model) == 0


def test_frozen_encoder_keeps_its_statistics() -> None:
    """A frozen (pretrained) encoder's BatchNorm layers are left alone."""
    model, *_ = _setup()
    model.frozen_encoder = True
    assert all(
        not any(m is n for n in model.encoder.modules()) for m in trainable_norms(model)
    )


def test_client_evaluates_with_recomputed_statistics(
    tmp_path: Path, state_dir: Path
) -> None:
    """Evaluation re-estimates BatchNorm statistics; the running-average metric is kept."""
    rows = _two_clients(tmp_path, algorithm="local", **{"train.head-refit-epochs": 0})
    ev = [r for r in rows if r.get("phase") == "evaluate"]
    with_bn = [r for r in ev if r["client"] == "custom-plugin"]
    assert with_bn and all("metric-running-stats" in r for r in with_bn)
    assert not any("metric-running-stats" in r for r in ev if r not in with_bn)


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
