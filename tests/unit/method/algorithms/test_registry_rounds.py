"""Every registered algorithm runs a round through the real strategy and ClientApp.

Three clients: two digits classifiers (same label space: classification/digits/10)
and a Fashion-MNIST mosaic multi-label client (a label space of its own). Checks
what each algorithm puts on the wire and who gets a phase 2:

* representation-space algorithms align all three clients, (K, B, d) uploads;
* logit-space baselines (fedmd, feddf, cofed) align only the two digits clients
  (partners share the label space) and upload (K, B, C) logits — C = 10 columns,
  not d; the mosaic client is alone in its label space and behaves like ``local``;
* ``local`` has no phase 2 and uploads nothing but the probe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.method import algorithms as algorithms_pkg
from fedmuscle_flwr.method.algorithms import ALGORITHMS
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from fedmuscle_flwr.tasks.registry import get_task
from tests.conftest import tiny_flat
from tests.loopback import LoopbackGrid

SMALL = '"data.max-train" = 96, "data.max-test" = 60'
DIGITS = f'"data.dataset" = "digits", "data.partition.scheme" = "whole", {SMALL}'
ROSTER = (
    f'[[clients]]\nprofile = "custom-plugin"\nset = {{ {DIGITS} }}\n'
    f'[[clients]]\nprofile = "mnist5k-mlp"\nset = {{ {DIGITS} }}\n'
    f'[[clients]]\nprofile = "mosaic-mlp"\nset = {{ {SMALL} }}\n'
)
DIGIT_CLIENTS = ["custom-plugin", "mnist5k-mlp"]


def test_registry_finds_one_class_per_file_with_a_unique_name() -> None:
    folder = Path(algorithms_pkg.__file__).parent
    files = {p.stem for p in folder.glob("*.py")} - {"__init__", "base", "logits"}
    assert {cls.__module__.rsplit(".", 1)[1] for cls in ALGORITHMS.values()} == files
    for name, cls in ALGORITHMS.items():
        assert cls.name == name and cls.description and cls.wire
        assert cls.space in ("representation", "logits", "weights")
    names = {"fedmuscle", "pairwise", "fedhenn", "gramian", "fedmd", "feddf"}
    others = {"cofed", "creamfl", "fedavg", "local", "public-only"}
    assert names | others <= set(ALGORITHMS)
    assert len(ALGORITHMS) == len(files)  # one per file, none missing


def _run(
    tmp_path: Path, algorithm: str, **extra: object
) -> tuple[RunRecorder, RunConfig]:
    roster = tmp_path / "three.toml"
    roster.write_text(ROSTER)
    flat = tiny_flat(
        roster,
        tmp_path,
        **{"num-rounds": 1, "run-name": algorithm, "algorithm": algorithm},
        **{"muscle.steps": 3, "eval.initial": False},
    )
    flat.update({"public.dataset": "digits-public", "public.size": 300, **extra})
    run = RunConfig.from_flat(flat)
    recorder = RunRecorder(tmp_path / algorithm)
    FedMuscle(run, recorder).start(grid=LoopbackGrid(client_app, 3))
    return recorder, run


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_algorithm_runs_a_round(
    tmp_path: Path, state_dir: Path, algorithm: str
) -> None:
    recorder, run = _run(tmp_path, algorithm)
    spec = ALGORITHMS[algorithm]
    finals = recorder.final_metrics()
    assert sorted(finals) == [*DIGIT_CLIENTS, "mosaic-mlp"]
    assert all(0.0 <= f["metric"] <= 1.0 for f in finals.values())
    aligned = {r["client"]: r for r in recorder.rows if r.get("phase") == "align"}
    server = [r for r in recorder.rows if r["client"] == SERVER_ROW][-1]
    assert server["rejected"] == 0 and server["clients"] == 3
    b, steps = run.muscle.batch_size, run.muscle.steps
    if not spec.aligns:
        assert aligned == {}
        return
    assert all(np.isfinite(r["align-loss"]) for r in aligned.values())
    if spec.space == "representation":
        assert sorted(aligned) == [*DIGIT_CLIENTS, "mosaic-mlp"]
        width = run.muscle.dim
        uploaders = 3
    else:
        assert sorted(aligned) == DIGIT_CLIENTS  # the mosaic client is alone
        width = 10  # C of the digits and the mosaic labels
        uploaders = 3
    # train phase uploads the T per-round batches: (T, B, width) fp16 per client
    assert server["bytes-up"] >= uploaders * steps * b * width * 2
    assert server["bytes-up"] < uploaders * steps * b * (width + 16) * 2 + 3 * 8192 + (
        3 * run.eval.probe_size * run.muscle.dim * 2
    )


def test_logit_baselines_refuse_privacy_noise(tmp_path: Path) -> None:
    roster = tmp_path / "three.toml"
    roster.write_text(ROSTER)
    flat = tiny_flat(roster, tmp_path, algorithm="feddf")
    flat.update({"privacy.noise": 0.5})
    run = RunConfig.from_flat(flat)
    with pytest.raises(ConfigError, match="privacy.noise applies to representations"):
        FedMuscle(run, RunRecorder(tmp_path / "x"))


def test_pairwise_with_aggregated_downlink_gets_partner_matrices(
    tmp_path: Path, state_dir: Path
) -> None:
    recorder, _ = _run(tmp_path, "pairwise", **{"muscle.downlink": "aggregated"})
    aligned = {r["client"] for r in recorder.rows if r.get("phase") == "align"}
    assert len(aligned) == 3


def test_fedavg_averages_twins_and_leaves_the_others_local(
    tmp_path: Path, state_dir: Path
) -> None:
    # Two identical MLPs on the same digits (their names get -0/-1) and the plugin CNN
    roster = tmp_path / "twins.toml"
    roster.write_text(
        f'[[clients]]\nprofile = "mnist5k-mlp"\nset = {{ {DIGITS} }}\n'
        f'[[clients]]\nprofile = "mnist5k-mlp"\nset = {{ {DIGITS} }}\n'
        f'[[clients]]\nprofile = "custom-plugin"\nset = {{ {DIGITS} }}\n'
    )
    flat = tiny_flat(roster, tmp_path, **{"num-rounds": 1, "algorithm": "fedavg"})
    flat.update({"public.dataset": "digits-public", "public.size": 300})
    flat.update({"eval.initial": False, "run-name": "fedavg"})
    run = RunConfig.from_flat(flat)
    recorder = RunRecorder(tmp_path / "fedavg")
    FedMuscle(run, recorder).start(grid=LoopbackGrid(client_app, 3))
    finals = recorder.final_metrics()
    twins = sorted(n for n in finals if n.startswith("mnist5k-mlp"))
    assert len(twins) == 2 and "custom-plugin" in finals
    # the twins hold the same (mean) model and the same test set: equal metrics
    assert finals[twins[0]]["metric"] == finals[twins[1]]["metric"]
    assert finals[twins[0]]["test-loss"] == finals[twins[1]]["test-loss"]
    got_mean = {r["client"] for r in recorder.rows if r.get("phase") == "align"}
    assert got_mean == set(twins)  # the plugin client has no twin
    server = [r for r in recorder.rows if r["client"] == SERVER_ROW][-1]
    model = build_client_model(
        load_profile("mnist5k-mlp").model, get_task("classification", {}), 10, 32
    )
    mlp_bytes = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    assert server["bytes-up"] >= 2 * mlp_bytes  # both twins' models went up ...
    assert 2 * mlp_bytes <= server["bytes-down"] < 3 * mlp_bytes  # ... 2 means down
    assert server["rejected"] == 0
