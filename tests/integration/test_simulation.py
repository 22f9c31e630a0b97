"""A real Flower simulation (Ray backend): 3 tiny heterogeneous clients, 2 rounds."""

import pytest

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.metrics import SERVER_ROW, read_rows, read_summary
from tests.conftest import tiny_flat

pytestmark = [pytest.mark.integration]


def test_simulation_aligns_heterogeneous_clients(tmp_path, tiny_roster, state_dir):
    from fedmuscle_flwr.launch.simulation import simulate

    # Prepare
    run = RunConfig.from_flat(tiny_flat(tiny_roster, tmp_path, **{"run-name": "sim"}))
    # Execute
    run_dir = simulate(run)
    # Assert: every round evaluated, every client reported, and alignment happened
    rows = [r for r in read_rows(run_dir) if r["client"] == SERVER_ROW]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all(r["clients"] == 3 and r["rejected"] == 0 for r in rows)
    first, last = rows[0], rows[-1]
    trace = {k: (first[k], last[k]) for k in first if k.startswith("probe-")}
    # matching public samples move together relative to non-matching ones ...
    gap = [r["probe-positive-sim"] - r["probe-negative-sim"] for r in (first, last)]
    assert gap[1] > gap[0] + 0.03, trace
    # ... and the Muscle loss on the fixed probe batch drops (MI bound rises)
    assert last["probe-muscle-loss"] < first["probe-muscle-loss"] - 0.02, trace
    assert last["probe-mi-bound"] > first["probe-mi-bound"], trace
    summary = read_summary(run_dir)
    assert sorted(summary["clients"]) == ["fmnist-cnn", "fmnist-vit", "mosaic-mlp"]
    assert {c["task"] for c in summary["clients"].values()} == {
        "classification",
        "multilabel",
    }
    assert rows[-1]["bytes-up"] > 0 and rows[-1]["bytes-down"] > 0
