"""`fedmuscle run` end to end through the CLI, on the in-process engine (no Ray)."""

import csv
import json

import pytest
from typer.testing import CliRunner

from fedmuscle_flwr.cli import cli
from fedmuscle_flwr.runs.metrics import SERVER_ROW, read_rows

pytestmark = [pytest.mark.integration]


def test_run_inprocess_writes_runs_and_delta_table(tmp_path, tiny_roster, state_dir):
    # Prepare
    args = [
        "run",
        "--preset",
        "tiny",
        "--engine",
        "inprocess",
        "--rounds",
        "1",
        "--output",
        str(tmp_path / "runs"),
        "--set",
        f"federation.roster={tiny_roster}",
        "--set",
        "public.size=200",
        "--live-csv",
    ]
    # Execute
    result = CliRunner().invoke(cli, args)
    # Assert: both algorithms ran every client, the Δ table was printed and saved
    assert result.exit_code == 0, result.output
    (session,) = (tmp_path / "runs").iterdir()
    for algorithm in ("fedmuscle", "local"):
        rows = read_rows(session / algorithm)
        clients = {r["client"] for r in rows if r["client"] != SERVER_ROW}
        assert clients == {"fmnist-cnn", "fmnist-vit", "mosaic-mlp"}
        config = json.loads((session / algorithm / "config.json").read_text())
        assert config["algorithm"] == algorithm
        with (session / algorithm / "rounds.csv").open() as fh:
            lines = list(csv.DictReader(fh))
        assert [line["round"] for line in lines] == ["0", "1"]
        assert float(lines[1]["metric:fmnist-vit"]) > 0
    report = (session / "report.md").read_text()
    assert "Δ fedmuscle %" in report and "fmnist-vit" in report
    # the same report as `fedmuscle report`: table and plots
    for png in ("metric-per-round", "delta", "alignment", "bytes-per-round"):
        assert (session / "plots" / f"{png}.png").is_file(), png
        assert f"plots/{png}.png" in report
    # a calm console: one line per round, each client's model named once per run
    out = result.output
    assert out.count("round 1/1 |") == 2 and out.count("round 0/1 |") == 2, out
    assert "round 1 train" not in out and "round 1 evaluate" not in out
    assert out.count("client fmnist-vit: model vit-tiny") == 2
    assert "params (" not in out  # the per-message model summary is DEBUG
    # not a terminal (a log file): the table as whole markdown lines, never cut
    table = [ln for ln in result.output.splitlines() if ln.startswith("| ")]
    assert table[0].endswith("| Δ fedmuscle % |"), table
    assert any(ln.startswith("| fmnist-vit |") for ln in table)
    assert any(ln.startswith("| **mean Δ** |") for ln in table)


def test_unknown_engine_is_refused_before_running(tmp_path):
    result = CliRunner().invoke(
        cli, ["run", "--engine", "warp", "--output", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "warp" in result.output and "inprocess" in result.output
    assert not any(tmp_path.iterdir())
