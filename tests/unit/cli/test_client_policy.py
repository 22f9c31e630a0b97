"""``fedmuscle client``'s policy options (issue 23): ``--no-warm`` refused without
``--trust-server-code``, a bad ``--policy`` file named, ``--prune`` without a server
(the console-script entry point, in process; nothing is started)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from fedmuscle_flwr.cli import main
from fedmuscle_flwr.cli.client_policy import NO_WARM_REFUSED, stock_allowed
from fedmuscle_flwr.clientapp.retention import run_folders
from fedmuscle_flwr.clientapp.state import ClientStateStore


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["fedmuscle", "client", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out + out.err


def test_no_warm_needs_trust_server_code(monkeypatch, capsys):
    code, text = run_cli(monkeypatch, capsys, "--server", "127.0.0.1:1", "--insecure",
                         "--profile", "fmnist-cnn", "--no-warm")  # fmt: skip
    assert code == 2 and NO_WARM_REFUSED in " ".join(text.split())
    assert "Traceback" not in text
    assert stock_allowed(True, False) and stock_allowed(False, True)
    assert not stock_allowed(False, False)


def test_bad_policy_file_and_missing_server(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "policy.toml"
    bad.write_text('[policy]\nuploads = ["gradients"]\n')
    code, text = run_cli(monkeypatch, capsys, "--server", "127.0.0.1:1", "--insecure",
                         "--profile", "fmnist-cnn", "--policy", str(bad))  # fmt: skip
    assert code == 2 and "uploads" in text and "policy.toml" in text
    code, text = run_cli(monkeypatch, capsys, "--insecure", "--profile", "fmnist-cnn")
    assert code == 2 and "--server HOST:PORT is required" in text


def test_prune_keeps_the_policy_s_last_runs(tmp_path, monkeypatch, capsys):
    state = tmp_path / "state"
    store = ClientStateStore(state)
    for i in range(5):
        store.save(f"run-{i}", 1, {"w": torch.zeros(4)})
        os.utime(store.path(f"run-{i}", 1), ns=(10**18 + i, 10**18 + i))
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy.caps]\nkeep-runs = 2\n")
    code, text = run_cli(monkeypatch, capsys, "--profile", "fmnist-cnn", "--prune",
                         "--policy", str(policy), "--state-dir", str(state))  # fmt: skip
    assert code == 0, text
    assert "pruned 3 old run folder(s)" in text
    assert sorted(r.path.name for r in run_folders(state)) == ["run-3", "run-4"]
