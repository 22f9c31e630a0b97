"""`fedmuscle experiment` end to end (in-process engine, no Ray), then resumed."""

import json

import pytest
from typer.testing import CliRunner

from fedmuscle_flwr.cli import cli

pytestmark = [pytest.mark.integration]


def test_experiment_runs_every_algorithm_and_seed_then_resumes(
    tmp_path, tiny_roster, state_dir
):
    # Prepare: 2 algorithms x 2 seeds of the tiny preset, one round, small data
    common = [
        "--algorithms",
        "fedmuscle,local",
        "--seeds",
        "2",
        "--rounds",
        "1",
        "--engine",
        "inprocess",
        "--set",
        f"federation.roster={tiny_roster}",
        "--set",
        "public.size=200",
        "--set",
        "muscle.steps=2",
    ]
    # Execute
    first = CliRunner().invoke(
        cli, ["experiment", "tiny", *common, "--output", str(tmp_path / "runs")]
    )
    # Assert: one folder, seed-<s>/<algorithm>/ each with its seed, the report
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.endswith("-tiny-experiment")
    for seed in (0, 1):
        for algorithm in ("fedmuscle", "local"):
            run = folder / f"seed-{seed}" / algorithm
            config = json.loads((run / "config.json").read_text())
            assert (config["seed"], config["algorithm"]) == (seed, algorithm)
            assert (run / "summary.json").is_file()
    report = (folder / "report.md").read_text()
    assert "Δ fedmuscle %" in report and "seeds 0, 1" in report
    assert "fmnist-vit" in report and "Missing" not in report
    assert len(list((folder / "plots").glob("*.png"))) == 4
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("seed-*/*/summary.json")}

    # Execute: resume the finished experiment
    again = CliRunner().invoke(
        cli, ["experiment", "tiny", *common, "--resume", str(folder)]
    )
    # Assert: nothing ran again, the report was rewritten
    assert again.exit_code == 0, again.output
    assert again.output.count("skipped") == 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (folder / "report.md").is_file()


def test_resume_of_missing_folder_is_refused(tmp_path):
    result = CliRunner().invoke(
        cli, ["experiment", "tiny", "--resume", str(tmp_path / "nope")]
    )
    assert result.exit_code == 2
    assert "no such experiment folder" in " ".join(result.output.split())
