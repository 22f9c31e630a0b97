"""A user backbone named by import path (``package.module:build``) runs a round.

The shipped example profile ``clients/custom-plugin.toml`` (its backbone is
``fedmuscle_flwr.examples.custom_model:build``, registered nowhere) trains,
aligns and reports its metric next to a built-in client, through the real
ClientApp and strategy. Both use scikit-learn's bundled digits: no skip.
"""

from __future__ import annotations

from pathlib import Path

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch.preflight import check_federation
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from tests.conftest import tiny_flat
from tests.loopback import LoopbackGrid

PLUGIN = "fedmuscle_flwr.examples.custom_model:build"
DIGITS = (
    '"data.dataset" = "digits", "data.partition.scheme" = "whole", '
    '"data.max-train" = 96, "data.max-test" = 60'
)


def test_shipped_plugin_profile_names_an_unregistered_backbone() -> None:
    from fedmuscle_flwr.models.registry import ENCODERS

    profile = load_profile("custom-plugin")
    assert profile.model.backbone == PLUGIN and PLUGIN not in ENCODERS


def test_user_plugin_runs_a_round(tmp_path: Path, state_dir: Path) -> None:
    # Prepare: the plugin client and a built-in MLP client, on digits
    roster = tmp_path / "plugin.toml"
    roster.write_text(
        f'[[clients]]\nprofile = "custom-plugin"\nset = {{ {DIGITS} }}\n'
        f'[[clients]]\nprofile = "mnist5k-mlp"\nset = {{ {DIGITS} }}\n'
    )
    flat = tiny_flat(roster, tmp_path, **{"num-rounds": 1, "run-name": "plugin"})
    flat.update({"public.dataset": "digits-public", "public.size": 300})
    run = RunConfig.from_flat(flat)
    check_federation(run)
    recorder = RunRecorder(tmp_path / "plugin")
    # Execute
    FedMuscle(run, recorder).start(grid=LoopbackGrid(client_app, 2))
    # Assert: both clients trained, aligned and reported their metric
    finals = recorder.final_metrics()
    assert sorted(finals) == ["custom-plugin", "mnist5k-mlp"]
    assert finals["custom-plugin"]["round"] == 1
    assert 0.0 <= finals["custom-plugin"]["metric"] <= 1.0
    aligned = [
        r
        for r in recorder.rows
        if r["client"] == "custom-plugin" and r.get("phase") == "align"
    ]
    assert aligned and aligned[-1]["align-loss"] > 0
    server = [r for r in recorder.rows if r["client"] == SERVER_ROW]
    assert [r["round"] for r in server] == [0, 1]
    assert all(r["clients"] == 2 and r["rejected"] == 0 for r in server)
