"""A real Flower simulation (Ray backend): 3 tiny heterogeneous clients, 2 rounds."""

import pytest

from fedmuscle_flwr.config import RunConfig
from fedmuscle_flwr.metrics import SERVER_ROW, read_rows, read_summary
from tests.conftest import tiny_flat

pytestmark = [pytest.mark.integration]


def test_simulation_aligns_heterogeneous_clients(tmp_path, tiny_roster, state_dir):
    from fedmuscle_flwr.simulation import simulate

    # Prepare
    run = RunConfig.from_flat(tiny_flat(tiny_roster, tmp_path, **{"run-name": "sim"}))
    # Execute
    run_dir = simulate(run)
    # Assert: every round evaluated, every client reported, and alignment happened
    rows = [r for r in read_rows(run_dir) if r["client"] == SERVER_ROW]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all(r["clients"] == 3 and r["rejected"] == 0 for r in rows)
    assert rows[-1]["probe-positive-sim"] > rows[0]["probe-positive-sim"] + 0.1
    assert rows[-1]["probe-muscle-loss"] < rows[0]["probe-muscle-loss"]
    assert rows[-1]["probe-mi-bound"] > rows[0]["probe-mi-bound"]
    summary = read_summary(run_dir)
    assert sorted(summary["clients"]) == ["fmnist-cnn", "fmnist-vit", "mosaic-mlp"]
    assert {c["task"] for c in summary["clients"].values()} == {
        "classification",
        "multilabel",
    }
    assert rows[-1]["bytes-up"] > 0 and rows[-1]["bytes-down"] > 0
