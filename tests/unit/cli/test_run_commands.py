"""Tests of fedmuscle_flwr.cli.run: its commands registered on a fresh typer app."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fedmuscle_flwr.cli import run as run_commands


@pytest.fixture
def app() -> typer.Typer:
    cli, data_cli = typer.Typer(), typer.Typer()
    run_commands.register(cli, data_cli)
    cli.add_typer(data_cli, name="data")
    return cli


def test_register_adds_the_five_commands(app: typer.Typer) -> None:
    names = {
        c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands
    }
    assert names == {"run", "list", "experiment", "report"}
    data = app.registered_groups[0].typer_instance
    assert data is not None and [c.name for c in data.registered_commands] == [
        "prepare"
    ]


def test_help_texts_name_the_registered_choices() -> None:
    assert "fedmuscle" in run_commands._names("algorithms").split(", ")
    assert "inprocess" in run_commands._names("engines")
    assert "default" in run_commands._names("presets")


def test_list_prints_a_registry_and_refuses_an_unknown_one(app: typer.Typer) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["list", "algorithms"])
    assert ok.exit_code == 0 and "pairwise" in ok.output
    bad = runner.invoke(app, ["list", "colours"])
    assert bad.exit_code == 2 and "unknown list 'colours'" in bad.output


def test_report_and_experiment_refuse_bad_input_before_running(
    app: typer.Typer, tmp_path: Path
) -> None:
    runner = CliRunner()
    gone = runner.invoke(app, ["report", str(tmp_path / "gone")])
    assert gone.exit_code == 2 and "no such folder" in gone.output
    empty = runner.invoke(
        app, ["experiment", "tiny", "--algorithms", " , ", "--output", str(tmp_path)]
    )
    assert empty.exit_code == 2 and "--algorithms: none given" in empty.output
    assert list(tmp_path.iterdir()) == []
