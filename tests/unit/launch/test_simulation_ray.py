"""The simulation engine's Ray arguments: a Ray of this machine, or a running cluster."""

from __future__ import annotations

import os

import pytest

from fedmuscle_flwr.launch.simulation import ray_init_args


def test_without_ray_address_ray_starts_here_with_this_machines_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = ray_init_args()
    assert args["num_cpus"] == (os.cpu_count() or 1)
    assert args["include_dashboard"] is False


def test_with_ray_address_the_cluster_keeps_its_own_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ray.init refuses num_cpus/num_gpus when it joins an existing cluster
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    args = ray_init_args()
    assert "num_cpus" not in args and "num_gpus" not in args
    assert "address" not in args  # ray.init reads RAY_ADDRESS itself
