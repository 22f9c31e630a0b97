"""Pairwise InfoNCE as an algorithm: Σ_m InfoNCE against the loop reference."""

from __future__ import annotations

import torch

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import PARTNERS, AlignContext
from fedmuscle_flwr.tasks.registry import get_task
from tests.unit.method.test_losses import inputs, reference_infonce


def test_pairwise_is_the_sum_of_infonce_over_partners() -> None:
    run = RunConfig.from_flat({"device": "cpu"})
    anchor, partners = inputs(3, 5, 6, seed=4)
    ctx = AlignContext(run.muscle, get_task("classification", {}))
    algo = get_algorithm("pairwise")
    got = float(algo.align_loss(anchor, {PARTNERS: partners}, ctx).detach())
    want = sum(
        float(reference_infonce(anchor, p, run.muscle.tau).detach()) for p in partners
    )
    assert abs(got - want) < 1e-9
    assert algo.downlink(run.muscle) == "compact"


def test_pairwise_gradient_reaches_the_anchor_only() -> None:
    run = RunConfig.from_flat({"device": "cpu"})
    anchor, partners = inputs(2, 4, 6, seed=1)
    anchor.requires_grad_()
    partners.requires_grad_()
    ctx = AlignContext(run.muscle, get_task("classification", {}))
    get_algorithm("pairwise").align_loss(anchor, {PARTNERS: partners}, ctx).backward()
    assert anchor.grad is not None and torch.count_nonzero(anchor.grad) > 0
    assert partners.grad is None or torch.count_nonzero(partners.grad) == 0


def test_the_registry_name_pairwise_is_the_pairwise_module_class() -> None:
    from fedmuscle_flwr.method.algorithms import pairwise as pairwise_module

    # Assert: the name builds pairwise.py's class, which keeps the default
    # (representation) payloads and cannot take the paper's aggregated downlink
    run = RunConfig.from_flat({"device": "cpu", "muscle.downlink": "aggregated"})
    algo = get_algorithm("pairwise")
    assert type(algo) is pairwise_module.Pairwise
    assert algo.downlink(run.muscle) == "compact"
