"""Phase 2 keeps the private data's BatchNorm statistics (``muscle.freeze-norm-stats``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedmuscle_flwr import training
from fedmuscle_flwr.config import MuscleConfig
from fedmuscle_flwr.data.registry import load_public
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.profiles import load_profile
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
        loss_fn=training.ALIGN_LOSSES["muscle"],
        ctx=training.AlignContext(cfg, task),
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
