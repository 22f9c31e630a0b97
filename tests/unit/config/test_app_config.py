"""``[tool.flwr.app.config]`` (what ``flwr run .`` may override) stays in sync."""

from __future__ import annotations

import tomllib
from pathlib import Path

from fedmuscle_flwr.config.files import app_config, load_preset, resolve_run_config
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import flatten
from fedmuscle_flwr.launch.deploy.processes import toml_value

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _declared() -> dict:
    doc = tomllib.loads(PYPROJECT.read_text())
    return flatten(doc["tool"]["flwr"]["app"]["config"])


def test_pyproject_declares_the_generated_app_config() -> None:
    expected = app_config()
    block = "\n".join(f"{k} = {toml_value(v)}" for k, v in expected.items())
    assert _declared() == expected, (
        f"regenerate [tool.flwr.app.config] in pyproject.toml:\n{block}"
    )


def test_flowers_full_run_config_resolves_to_the_preset_plus_overrides() -> None:
    # Prepare: what Flower hands the ServerApp: every declared key, some overridden
    declared = _declared()
    # Execute
    plain = resolve_run_config(declared)
    changed = resolve_run_config({**declared, "num-rounds": 3, "muscle.partners": 2})
    tiny = resolve_run_config({**declared, "preset": "tiny"})
    # Assert: no override = the default preset; overrides apply; another preset wins
    assert plain == RunConfig.from_mapping(load_preset("default"))
    assert (changed.num_rounds, changed.muscle.partners) == (3, 2)
    assert changed.muscle.dim == plain.muscle.dim
    assert tiny == RunConfig.from_mapping(load_preset("tiny"))


def test_fewer_nodes_than_roster_clients_is_warned(caplog) -> None:
    from fedmuscle_flwr.serverapp.app import check_node_count

    run = RunConfig.from_mapping(load_preset("default"))  # roster: 4 clients
    with caplog.at_level("WARNING", logger="fedmuscle_flwr"):
        check_node_count(4, run)
        assert not caplog.records
        check_node_count(2, run)
    (record,) = caplog.records
    assert "2 nodes connected" in record.message
    assert 'num-supernodes=4"' in record.message
