import tomllib
from pathlib import Path

import pytest

from fedmuscle_flwr.config.files import (
    load_preset,
    load_profile,
    load_roster,
    resolve_profile,
    resolve_run_config,
)
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError, flatten, unflatten

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_are_the_paper_defaults():
    run = RunConfig()
    assert (run.muscle.batch_size, run.muscle.dim, run.muscle.partners) == (32, 256, 3)
    assert (run.muscle.tau, run.muscle.tau_partners) == (0.2, 0.15)
    assert run.muscle.downlink == "compact"


def test_flat_keys_round_trip():
    # Prepare
    nested = {"muscle": {"tau": 0.3, "partners": 2}, "num-rounds": 4}
    # Execute
    flat = flatten(nested)
    # Assert
    assert flat == {"muscle.tau": 0.3, "muscle.partners": 2, "num-rounds": 4}
    assert unflatten(flat) == nested
    run = RunConfig.from_flat(flat)
    assert run.muscle.tau == 0.3 and run.num_rounds == 4


@pytest.mark.parametrize(
    ("flat", "needle"),
    [
        ({"muscle.tau": -1.0}, "muscle.tau"),
        ({"muscle.tau": 0.1, "muscle.tau-partners": 0.2}, "tau-partners=0.2"),
        ({"muscle.downlink": "zip"}, "muscle.downlink"),
        ({"muscle.sync": "never"}, "muscle.sync"),
        ({"muscle.unknown": 1}, "muscle.unknown"),
        ({"typo-rounds": 3}, "typo-rounds"),
        ({"num-rounds": 0}, "num-rounds"),
        ({"device": "tpu"}, "device"),
        ({"eval.probe-size": 10_000}, "probe-size"),
        ({"muscle.batch-size": 1}, "muscle.batch-size"),
    ],
)
def test_bad_values_name_the_key(flat, needle):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_flat(flat)
    assert needle in str(err.value)


def test_bad_value_error_shows_the_value():
    with pytest.raises(ConfigError, match=r"got -1\.0"):
        RunConfig.from_flat({"muscle.tau": -1.0})


def test_presets_and_roster_validate():
    run = resolve_run_config({"preset": "default", "num-rounds": 2})
    assert run.num_rounds == 2
    profiles = load_roster(run.federation.roster)
    assert len(profiles) >= 4
    assert len({p.name for p in profiles}) == len(profiles)
    assert len({p.model.backbone for p in profiles}) >= 3
    assert len({p.task.kind for p in profiles}) >= 2


def test_pyproject_flower_config_names_a_preset():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    preset = cfg["config"]["preset"]
    assert load_preset(preset)


def test_profile_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[model]\nbackbone = "mlp"\nprojectr = "mlp"\n'
        '[task]\nkind = "classification"\n[data]\ndataset = "digits"\n'
    )
    with pytest.raises(ConfigError, match="model.projectr"):
        load_profile(str(bad))
    with pytest.raises(ConfigError, match="index"):
        load_profile("fmnist-cnn", {"data.partition.index": 99})
    with pytest.raises(ConfigError, match="known"):
        load_profile("no-such-profile")


def test_resolve_profile_deployment_and_simulation():
    p = resolve_profile({"profile": "fmnist-cnn", "data.max-train": 7}, "default")
    assert isinstance(p, ClientProfile) and p.data.max_train == 7
    q = resolve_profile({"partition-id": 1, "num-partitions": 4}, "default")
    assert q == load_roster("default")[1]
    with pytest.raises(ConfigError, match="partition-id"):
        resolve_profile({"partition-id": 99}, "default")
    with pytest.raises(ConfigError, match="profile"):
        resolve_profile({}, "default")


def test_eval_due_every_k_and_the_last_rounds() -> None:
    from fedmuscle_flwr.config.run import EvalConfig

    due = [r for r in range(1, 21) if EvalConfig(every=5, last=3).due(r, 20)]
    assert due == [5, 10, 15, 18, 19, 20]
    assert [r for r in range(1, 8) if EvalConfig(every=3).due(r, 7)] == [3, 6, 7]


def test_provenance_is_recorded_and_bounded() -> None:
    """`provenance` (issue 25: pre-registration hash, code revision) is kept as given."""
    text = "prereg-sha256:" + "ab" * 32 + ",code:27bb46618e09"
    assert RunConfig.from_flat({"provenance": text}).provenance == text
    assert RunConfig.from_flat({}).provenance == ""
    with pytest.raises(ConfigError, match="provenance"):
        RunConfig.from_flat({"provenance": "x" * 513})
