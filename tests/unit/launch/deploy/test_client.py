"""``fedmuscle client``'s SuperNode loop (launch/deploy/client.py, supervision.py,
supernode_log.py), with a stand-in command.

The real SuperNode is exercised end to end in tests/integration (test_faults.py:
relaunch after a server crash; test_deployment.py: refusal of an unknown key).
"""

import logging
import sys
import time

import pytest

from fedmuscle_flwr.launch.deploy import client as client_node
from fedmuscle_flwr.launch.deploy import supernode_log, supervision
from fedmuscle_flwr.launch.deploy.client import (
    EXIT_NODE_REFUSED,
    EXIT_TLS_FAILED,
    ClientOptions,
    run_client,
)
from fedmuscle_flwr.launch.deploy.control import RefusalWatcher
from fedmuscle_flwr.runs.logs import RUN_FINISHED_MARK


def stand_in(monkeypatch, tmp_path, script: str) -> "list[str]":
    """Replace ``flower-supernode`` by ``script``; each launch appends a line."""
    launches = tmp_path / "launches"
    code = f"open({str(launches)!r}, 'a').write('x\\n')\n{script}"
    monkeypatch.setattr(
        client_node,
        "supernode_command",
        lambda opts, port: [sys.executable, "-c", code],
    )
    monkeypatch.setattr(supervision, "_BACKOFF_S", 0.01)
    monkeypatch.setattr(supervision, "_RELAUNCH_S", 0.01)
    return launches


def test_node_exiting_on_its_own_is_relaunched_with_backoff(
    monkeypatch, tmp_path, caplog
):
    # Prepare: a "SuperNode" that exits at once, as 1.39's does when a restarted
    # SuperLink does not know its node id
    launches = stand_in(monkeypatch, tmp_path, "raise SystemExit(0)")
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn", relaunches=3)
    # Execute
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy"):
        code = run_client(opts, home=tmp_path / "home")
    # Assert: 1 launch + 3 relaunches with doubling waits, then its status
    assert code == 0
    assert launches.read_text().count("x") == 4
    waits = [r.getMessage() for r in caplog.records if "relaunch" in r.getMessage()]
    assert [w.split("relaunch ")[1][:3] for w in waits[:3]] == ["1/3", "2/3", "3/3"]
    assert "in 0 s" in waits[0] and "not relaunched" in caplog.text


def test_relaunch_zero_exits_with_the_node(monkeypatch, tmp_path):
    launches = stand_in(monkeypatch, tmp_path, "raise SystemExit(7)")
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn", relaunches=0)
    assert run_client(opts, home=tmp_path / "home") == 7
    assert launches.read_text().count("x") == 1


@pytest.mark.parametrize("retries", [0, 2])
def test_refused_node_retries_within_its_budget(monkeypatch, tmp_path, retries):
    # Flower logs "Exit Code: 305" when the SuperLink refuses the node's key
    refuse = "print('Exit Code: 305', flush=True); raise SystemExit(1)"
    launches = stand_in(monkeypatch, tmp_path, refuse)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn",
                         max_retries=retries)  # fmt: skip
    assert run_client(opts, home=tmp_path / "home") == EXIT_NODE_REFUSED
    assert launches.read_text().count("x") == retries + 1


def test_node_hanging_after_its_termination_is_stopped_and_relaunched(
    monkeypatch, tmp_path, caplog
):
    # Flower 1.39 race: "SuperNode terminated gracefully", then no exit
    hang = "print('SuperNode terminated gracefully.', flush=True)\nimport time\n"
    launches = stand_in(monkeypatch, tmp_path, hang + "time.sleep(60)")
    monkeypatch.setattr(supervision, "_EXIT_GRACE_S", 0.5)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn", relaunches=1)
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy"):
        run_client(opts, home=tmp_path / "home")
    assert launches.read_text().count("x") == 2
    assert caplog.text.count("still runs; stopping it") == 2


def test_exit_after_run_stops_the_node_once_the_last_reply_was_sent(
    monkeypatch, tmp_path, caplog
):
    # Prepare: a "SuperNode" whose ClientApp logs the run's end, then the reply
    # is sent; it would keep polling for the next run forever
    finished = (
        f"print('x {RUN_FINISHED_MARK} (run, round 3)', flush=True)\n"
        "print('Sent successfully', flush=True)\n"
        "print('Connection attempt failed, retrying in 2 s', flush=True)\n"
        "import time\ntime.sleep(60)"
    )
    launches = stand_in(monkeypatch, tmp_path, finished)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn",
                         exit_after_run=True)  # fmt: skip
    # Execute
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy"):
        code = run_client(opts, home=tmp_path / "home")
    # Assert: exit 0 well before the stand-in's 60 s, one launch, said so
    assert code == 0 and time.monotonic() - t0 < 30
    assert launches.read_text().count("x") == 1
    assert "run finished" in caplog.text


def test_exit_after_run_stays_online_until_the_server_took_the_reply(
    monkeypatch, tmp_path
):
    # The reply was sent but the server still runs: a SuperNode stopped now
    # would make Flower's SuperLink answer "Node Unavailable" instead of it
    sent = (
        f"print({RUN_FINISHED_MARK!r}, flush=True)\n"
        "print('Sent successfully', flush=True)\nimport time\ntime.sleep(60)"
    )
    stand_in(monkeypatch, tmp_path, sent)
    monkeypatch.setattr(supernode_log, "_FINAL_GRACE_S", 2.0)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn",
                         exit_after_run=True, warm=False)  # fmt: skip
    t0 = time.monotonic()
    assert run_client(opts, home=tmp_path / "home") == 0
    assert 2.0 <= time.monotonic() - t0 < 30


def test_exit_after_run_waits_for_the_send_then_gives_up(monkeypatch, tmp_path):
    # The run's end logged but no reply seen sent: stopped after _FINAL_SEND_S
    finished = f"print({RUN_FINISHED_MARK!r}, flush=True)\nimport time\ntime.sleep(60)"
    stand_in(monkeypatch, tmp_path, finished)
    monkeypatch.setattr(supernode_log, "_FINAL_SEND_S", 1.0)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn",
                         exit_after_run=True)  # fmt: skip
    t0 = time.monotonic()
    assert run_client(opts, home=tmp_path / "home") == 0
    assert 1.0 <= time.monotonic() - t0 < 30


def test_without_exit_after_run_a_finished_run_is_not_the_end(monkeypatch, tmp_path):
    # The SuperNode exiting on its own after a finished run is relaunched
    finished = f"print({RUN_FINISHED_MARK!r}, flush=True)"
    launches = stand_in(monkeypatch, tmp_path, finished)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn", relaunches=1)
    run_client(opts, home=tmp_path / "home")
    assert launches.read_text().count("x") == 2


def test_a_wrong_ca_is_a_tls_failure_not_a_refusal(monkeypatch, tmp_path, caplog):
    # What a 1.39 SuperNode prints when the server's certificate is not trusted
    tls = (
        "print('Handshake failed with error SSL_ERROR_SSL: certificate signature "
        "failure', flush=True)\nprint('SSL/TLS handshake error detected.')\n"
        "print('Exit Code: 305', flush=True)\nraise SystemExit(1)"
    )
    launches = stand_in(monkeypatch, tmp_path, tls)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn",
                         tls_ca=tmp_path / "ca.crt")  # fmt: skip
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy"):
        code = run_client(opts, home=tmp_path / "home")
    assert code == EXIT_TLS_FAILED
    assert launches.read_text().count("x") == 1  # not retried
    assert "TLS FAILED" in caplog.text and str(tmp_path / "ca.crt") in caplog.text
    assert "public key registered" not in caplog.text


def test_refusals_before_registration_are_not_alarms(caplog):
    line = "ERROR: No SuperNode found with the given public key b'...'"
    watcher = RefusalWatcher()
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy.control"):
        watcher(line)
        assert "not yet registered" in caplog.text and "REFUSED" not in caplog.text
        watcher.registered = True
        watcher(line)
    assert "REFUSED a SuperNode" in caplog.text
    assert watcher.refused == ["an unknown key"]


def test_refusals_after_the_superlink_registered_the_keys_are_alarms(caplog, tmp_path):
    # the SuperLink writes the node ids before its Fleet API accepts nodes
    line = "ERROR: No SuperNode found with the given public key b'...'"
    ids = tmp_path / "registered-node-ids.json"
    watcher = RefusalWatcher(registered_file=ids)
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy.control"):
        watcher(line)
        assert "not yet registered" in caplog.text
        ids.write_text("[1]")
        watcher(line)
    assert "REFUSED a SuperNode" in caplog.text and watcher.registered
