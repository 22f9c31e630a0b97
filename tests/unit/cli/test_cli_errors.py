"""Every mistyped input: one or two lines naming it and what is accepted, exit 2,
nothing started, no run folder (the console-script entry point, in-process)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fedmuscle_flwr.cli import main


def _roster(tmp_path: Path, **overrides: str) -> str:
    sets = ", ".join(f'"{k}" = "{v}"' for k, v in overrides.items())
    path = tmp_path / f"roster-{len(list(tmp_path.glob('roster-*')))}.toml"
    path.write_text(f'[[clients]]\nprofile = "fmnist-cnn"\nset = {{ {sets} }}\n')
    return str(path)


def _cases(tmp: Path) -> list[tuple[list[str], list[str]]]:
    """(arguments, fragments the message must hold)."""
    bad_toml = tmp / "bad.toml"
    bad_toml.write_text("num-rounds = = 3\n")
    run = ["run", "--output", str(tmp / "runs")]
    client = ["client", "--server", "127.0.0.1:1", "--insecure"]
    return [
        ([*run, "--algorithm", "nope"], ["'nope'", "fedmuscle", "pairwise"]),
        ([*run, "--algorithm", " , "], ["--algorithm", "fedmuscle"]),
        ([*run, "--set", "num-rounds"], ["num-rounds", "key=value"]),
        ([*run, "--set", "muscle.partners=0"], ["muscle.partners", "0"]),
        ([*run, "--set", "muscle.colour=2"], ["muscle.colour"]),
        ([*run, "--config", str(tmp / "missing.toml")], ["missing.toml", "no such"]),
        ([*run, "--config", str(bad_toml)], ["bad.toml"]),
        ([*run, "--preset", "nope"], ["'nope'", "default", "tiny"]),
        ([*run, "--engine", "warp"], ["'warp'", "inprocess", "simulation"]),
        ([*run, "--rounds", "abc"], ["--rounds", "abc"]),
        ([*run, "--rounds", "0"], ["num-rounds", "0"]),
        ([*run, "--nope"], ["--nope"]),
        ([*run, "--resume", str(tmp / "gone")], ["--resume", "gone"]),
        ([*run, "--set", "federation.roster=nope"], ["'nope'", "default"]),
        (
            [*run, "--set", f"federation.roster={_roster(tmp, **{'model.backbone': 'nope'})}"],
            ["model.backbone", "'nope'", "small-cnn"],
        ),
        (
            [*run, "--set", f"federation.roster={_roster(tmp, **{'data.dataset': 'nope'})}"],
            ["'nope'", "fashion-mnist"],
        ),
        (
            [*run, "--set", f"federation.roster={_roster(tmp, **{'task.kind': 'nope'})}"],
            ["'nope'", "classification"],
        ),
        (
            [*run, "--algorithm", "fedmd", "--set", "privacy.noise=1"],
            ["privacy.noise", "fedmd"],
        ),
        (["list", "nope"], ["'nope'", "models", "presets"]),
        (["report", str(tmp / "gone")], ["gone", "no such folder"]),
        (["experiment", "nope", "--output", str(tmp / "runs")], ["'nope'", "default"]),
        ([*client, "--profile", "nope"], ["'nope'", "fmnist-cnn"]),
        (
            [*client, "--profile", "fmnist-cnn", "--set", "model.backbone=tv:nope"],
            ["tv:nope", "resnet18"],
        ),
        (["server", "--preset", "nope", "--insecure"], ["'nope'", "default"]),
        (["nope"], ["nope"]),
    ]  # fmt: skip


def test_each_bad_input_is_answered_in_one_or_two_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args, fragments in _cases(tmp_path):
        # Execute
        monkeypatch.setattr(sys, "argv", ["fedmuscle", *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        out = capsys.readouterr()
        text = out.out + out.err
        lines = [ln for ln in text.splitlines() if ln.strip()]
        # Assert: exit 2, short, named, no traceback, nothing left behind
        assert exit_.value.code == 2, (args, text)
        assert 1 <= len(lines) <= 2, (args, text)
        for fragment in fragments:
            assert fragment in text, (args, fragment, text)
        assert "Traceback" not in text, (args, text)
        assert not (tmp_path / "runs").exists(), args


def test_help_and_version(monkeypatch, capsys):
    for args in (["-h"], ["run", "-h"]):
        monkeypatch.setattr(sys, "argv", ["fedmuscle", *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for choice in ("inprocess", "simulation", "pairwise", "tiny", "--live-csv"):
        assert choice in text, choice
    monkeypatch.setattr(sys, "argv", ["fedmuscle", "--version"])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "fedmuscle-flwr" in out and "1.39.0" in out
