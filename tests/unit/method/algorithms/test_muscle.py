"""FedMuscle as an algorithm: its loss on either downlink, its relay hook."""

from __future__ import annotations

import numpy as np
import torch

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import (
    AGGREGATE,
    LOG_ALPHA,
    PARTNERS,
    AlignContext,
    RelayRequest,
    Uploads,
)
from fedmuscle_flwr.method.losses import muscle_loss
from fedmuscle_flwr.tasks.registry import get_task
from tests.unit.method.test_losses import reference_muscle


def _unit(*shape: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def _run(downlink: str) -> RunConfig:
    return RunConfig.from_flat(
        {
            "device": "cpu",
            "muscle.batch-size": 4,
            "muscle.dim": 8,
            "muscle.partners": 2,
            "muscle.downlink": downlink,
        }
    )


def test_both_downlinks_give_the_loop_reference() -> None:
    # Prepare: 3 clients' (S=1, B, d) uploads; client 1's relay on each downlink
    bank = {n: _unit(1, 4, 8, seed=n) for n in (1, 2, 3)}
    up = Uploads([1, 2, 3], bank, {}, {})
    batches = np.zeros((1, 4), np.int64)
    algo = get_algorithm("fedmuscle")
    anchor = torch.from_numpy(bank[1][0]).double()
    losses = {}
    for downlink in ("compact", "aggregated"):
        run = _run(downlink)
        relay = algo.relay(RelayRequest(run, up, batches, 1, 0, range(0, 1)))[1]
        assert set(relay.arrays) == (
            {PARTNERS} if downlink == "compact" else {AGGREGATE, LOG_ALPHA}
        )
        payload = {k: torch.from_numpy(v[0]).double() for k, v in relay.arrays.items()}
        ctx = AlignContext(run.muscle, get_task("classification", {}))
        losses[downlink] = float(algo.align_loss(anchor, payload, ctx))
    # Assert: the same loss either way, equal to the brute-force tuple loop
    run = _run("compact")
    partners = algo.relay(RelayRequest(run, up, batches, 1, 0, range(0, 1)))[1].arrays[
        PARTNERS
    ][0]
    want = reference_muscle(
        anchor,
        torch.from_numpy(partners).double(),
        run.muscle.tau,
        run.muscle.tau_partners,
    )
    assert abs(losses["compact"] - float(want)) < 1e-9
    assert abs(losses["aggregated"] - losses["compact"]) < 1e-4
    assert (
        abs(
            float(
                muscle_loss(
                    anchor,
                    torch.from_numpy(partners).double(),
                    run.muscle.tau,
                    run.muscle.tau_partners,
                )
            )
            - losses["compact"]
        )
        < 1e-12
    )


def test_the_registry_name_fedmuscle_is_the_muscle_module_class() -> None:
    from fedmuscle_flwr.method.algorithms import muscle as muscle_module

    # Assert: the name builds muscle.py's class; it declares the relayed
    # arrays per downlink (compact: the default partners; aggregated: S^n and
    # log α with a leading step axis)
    algo = get_algorithm("fedmuscle")
    assert type(algo) is muscle_module.FedMuscle
    compact = algo.payloads(_run("compact").muscle)
    aggregated = algo.payloads(_run("aggregated").muscle)
    assert AGGREGATE not in compact.relay
    assert aggregated.relay[AGGREGATE].axes == ("S", "B^M", "d")
    assert aggregated.relay[LOG_ALPHA].axes == ("S", "B^M")
