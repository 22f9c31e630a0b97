"""``fedmuscle server --compare``: the session's runs, and what a client does with them."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from fedmuscle_flwr.cli.common import build_run_config
from fedmuscle_flwr.clientapp.state import remove_runs_since
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.launch.deploy.session import compare_session
from fedmuscle_flwr.launch.deploy.supernode_log import SuperNodeLog
from fedmuscle_flwr.runs.checkpoint import ResumeError
from fedmuscle_flwr.serverapp.app import check_node_count


def build(overrides):
    return build_run_config("tiny", None, dict(overrides))


def test_the_main_run_then_its_baselines_each_in_its_folder(tmp_path: Path) -> None:
    session, runs = compare_session(build, ["local"], tmp_path / "s", resume=False)
    assert session == (tmp_path / "s").resolve()
    assert [r.algorithm for r in runs] == ["fedmuscle", "local"]
    assert [r.run_name for r in runs] == ["fedmuscle", "local"]
    assert {r.output_dir for r in runs} == {str(session)}
    # the clients stay for the Local run and leave after it
    assert [r.federation.runs_after for r in runs] == [1, 0]
    # the rest of the configuration is the preset's, the same for both
    assert runs[0].num_rounds == runs[1].num_rounds == build({}).num_rounds


def test_bad_comparisons_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="twice"):
        compare_session(build, ["local", "local"], tmp_path / "a", resume=False)
    with pytest.raises(ConfigError, match="twice"):
        compare_session(build, ["fedmuscle"], tmp_path / "b", resume=False)
    with pytest.raises(ConfigError, match="no such session folder"):
        compare_session(build, ["local"], tmp_path / "missing", resume=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"algorithm": "fedmuscle"}))
    with pytest.raises(ConfigError, match="is a run folder"):
        compare_session(build, ["local"], run_dir, resume=True)


def test_a_fresh_session_in_a_folder_with_a_checkpoint_is_refused(
    tmp_path: Path,
) -> None:
    session = tmp_path / "s"
    (session / "local").mkdir(parents=True)
    ckpt = {"format": 1, "round": 2}
    (session / "local" / "checkpoint.json").write_text(json.dumps(ckpt))
    with pytest.raises((ResumeError, ConfigError)):
        compare_session(build, ["local"], session, resume=False)


def test_deployments_get_no_roster_advice(caplog: pytest.LogCaptureFixture) -> None:
    run = build({})  # roster tiny: 3 clients
    deployed = build({"federation.deployed": True})
    with caplog.at_level("WARNING", logger="fedmuscle_flwr"):
        check_node_count(4, deployed)
        assert not caplog.records
        check_node_count(4, run)
    assert "num-supernodes=3" in caplog.text


def test_finished_runs_state_is_removed_older_runs_stay(tmp_path: Path) -> None:
    old, new = tmp_path / "old-run-abc", tmp_path / "fedmuscle-def"
    for folder in (old, new):
        folder.mkdir()
        (folder / "node-1.pt").write_bytes(b"x" * 1000)
    past = time.time() - 3600
    os.utime(old / "node-1.pt", (past, past))
    folders, size = remove_runs_since(tmp_path, time.time() - 60)
    assert (folders, size) == (1, 1000)
    assert old.is_dir() and not new.exists()  # an interrupted run's state stays
    assert remove_runs_since(tmp_path / "absent", 0.0) == (0, 0)


JOINED = "INFO 2026-12-06 20:45:55,1:      SuperNode ID: 42"


def feed_supernode_log(caplog: pytest.LogCaptureFixture, lines: list[str]) -> None:
    """Flower's SuperNode lines through a client's SuperNodeLog, its log at DEBUG."""
    out = SuperNodeLog("superlink:9092")
    with caplog.at_level(
        logging.DEBUG, logger="fedmuscle_flwr.launch.deploy.supernode_log"
    ):
        for line in lines:
            out(line)


def test_supernode_retries_are_one_info_line(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    retry = (
        "WARNING 2026-12-06 20:45:54,1:   Connection attempt failed, retrying in 1 s"
    )
    feed_supernode_log(caplog, [retry] * 5 + [JOINED, retry])
    printed = capsys.readouterr().out
    assert "Connection attempt failed" not in printed and "SuperNode ID: 42" in printed
    said = [r.message for r in caplog.records if "does not answer" in r.message]
    assert said == ["the server superlink:9092 does not answer; retrying"] * 2
    retries = [r for r in caplog.records if "Connection attempt" in r.message]
    assert {r.levelno for r in retries} == {logging.DEBUG} and len(retries) == 6


def test_flowers_insecure_warning_is_debug_only(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # fedmuscle client says in one INFO line that TLS is off and how to turn it on
    insecure = (
        "WARNING 2026-12-06 20:47:53,880:   Option `--insecure` was set. "
        "Starting insecure channel to superlink:9092."
    )
    feed_supernode_log(caplog, [insecure, JOINED])
    printed = capsys.readouterr().out
    assert "--insecure" not in printed and "SuperNode ID: 42" in printed
    said = [r.levelno for r in caplog.records if "--insecure" in r.message]
    assert said == [logging.DEBUG]
