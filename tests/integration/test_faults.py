"""Fault tests with real models and real processes (issue 6).

* ``test_real_processes_...`` (slow): ``fedmuscle server`` + 10 ``fedmuscle
  client`` processes on loopback; one client breaks every reply (garbage bytes,
  NaN, wrong shape, oversized, in turn); 3 clients are SIGKILLed mid-round 1;
  the server is SIGKILLed mid-round 2 and restarted with ``--resume`` (the
  surviving clients are restarted too: a 1.39 SuperNode exits when a new
  SuperLink does not know its node id). The run completes; every round is in
  the metrics exactly once; the bad replies are rejected and counted.
* ``test_poisoning_client_...``: in process, real models: a client uploading
  random representations is excluded from partners every round, and the honest
  clients' mean Δ equals a clean run's with the same seed.

The same properties with scripted clients (no models, seconds) are in
``tests/unit/test_strategy_faults.py``, ``tests/unit/test_checkpoint.py`` and
``tests/unit/test_cli_resume.py`` (``fedmuscle run --resume``).
Measured figures: docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedmuscle_flwr.checkpoint import load_checkpoint
from fedmuscle_flwr.client_app import app as client_app
from fedmuscle_flwr.config import RunConfig
from fedmuscle_flwr.driver import run_federation
from fedmuscle_flwr.inprocess import InProcessGrid
from fedmuscle_flwr.metrics import SERVER_ROW, RunRecorder, delta_rows, mean_delta
from fedmuscle_flwr.metrics import read_rows as read_metric_rows
from fedmuscle_flwr.processes import descendants, free_port
from fedmuscle_flwr.strategy import FedMuscle
from tests.faulty import ATTACKER, HONEST, poisoning, write_roster
from tests.integration.test_deployment import FM

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
CHEAP = ["fmnist-cnn", "mosaic-mlp"]  # the two cheapest models (no ViT)
SMALL = ["--set", "data.max-train=64", "--set", "data.max-test=64"]
RECEIVED = "Received successfully"  # a SuperNode's log line per message


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a wrapper and everything below it (a machine losing power)."""
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


def state_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("node-*.pt"))


# ---------------------------------------------------------------- real processes
SERVER_SET = {
    "num-rounds": 2,
    "public.size": 200,
    "muscle.steps": 2,
    "muscle.batch-size": 8,
    "muscle.dim": 16,
    "eval.initial": "false",
    "eval.every": 2,
    "eval.probe-size": 8,
    "federation.min-clients": 6,
    "federation.phase-timeout-s": 240,
    "federation.wait-clients-s": 300,
}
FAULTS = "oversize,garbage,nan,shape"  # the faulty client's replies, in turn


def server_cmd(tmp: Path, fleet: str, control: str, *extra: str) -> list[str]:
    sets = [a for k, v in SERVER_SET.items() for a in ("--set", f"{k}={v}")]
    return ["server", "--preset", "tiny", "--insecure", "--address", fleet,
            "--control-address", control, "--output", str(tmp / "runs"),
            "--workdir", str(tmp / "srv"), "--timeout", "900", *sets,
            "--set", "run-name=faults", *extra]  # fmt: skip


def client_cmd(tmp: Path, fleet: str, i: int) -> list[str]:
    return ["client", "--server", fleet, "--profile", CHEAP[i % 2], "--insecure",
            "--state-dir", str(tmp / f"state-{i}"), *SMALL,
            "--set", f"name=c{i}", "--set", "data.partition.num-partitions=10",
            "--set", f"data.partition.index={i}"]  # fmt: skip


class Fleet:
    """Started wrappers (own sessions, logs in tmp); teardown kills every tree."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None):
        log = (self.tmp / f"{name}.log").open("w")
        full = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
        self.procs[name] = subprocess.Popen(
            [*FM, *args], stdout=log, stderr=subprocess.STDOUT, env=full,
            start_new_session=True, cwd=self.tmp,
        )  # fmt: skip
        return self.procs[name]

    def client(self, fleet: str, i: int, tag: str = ""):
        env = {}
        if i == 0:  # the faulty client: test-only fault injection (sitecustomize)
            env = {
                "PYTHONPATH": f"{ROOT / 'tests' / 'fault_inject'}:{ROOT}",
                "FEDMUSCLE_TEST_FAULT": FAULTS,
                "FEDMUSCLE_TEST_FAULT_COUNTER": str(self.tmp / "fault-counter"),
            }
        return self.start(f"c{i}{tag}", client_cmd(self.tmp, fleet, i), env)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                kill_tree(proc)


@pytest.fixture
def fleet_procs(tmp_path: Path):
    started = Fleet(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.timeout(1500)
def test_real_processes_kill_clients_bad_client_server_restart(tmp_path, fleet_procs):
    procs, t_start = fleet_procs, time.monotonic()
    fleet = f"127.0.0.1:{free_port()}"
    control = f"127.0.0.1:{free_port()}"
    run_dir = tmp_path / "runs" / "faults"
    # Prepare: the server, then the 6 clients of round 1 (min-clients = 6)
    server = procs.start("server", server_cmd(tmp_path, fleet, control))
    wait_for(lambda: "SuperLink up" in procs.log("server"), 300, "the SuperLink")
    first, killed, late = [1, 2, 3, 4, 5, 6], [4, 5, 6], [0, 7, 8, 9]
    for i in first:
        procs.client(fleet, i)
    # Execute 1: SIGKILL 3 of them mid-round 1, each as soon as its SuperNode has
    # received its alignment message (its 2nd message); 4 more clients join late
    to_kill = set(killed)

    def kill_on_second_message() -> bool:
        for i in sorted(to_kill):
            if procs.log(f"c{i}").count(RECEIVED) >= 2:
                kill_tree(procs.procs[f"c{i}"])
                to_kill.discard(i)
        return not to_kill

    wait_for(kill_on_second_message, 900, "the alignment messages", poll=0.2)
    t_killed = time.monotonic()
    for i in late:
        procs.client(fleet, i)
    # Execute 2: round 1 completes; SIGKILL the server while round 2 trains
    wait_for(lambda: "round 1 done" in procs.log("server"), 600, "round 1 done")
    t_round1 = time.monotonic()
    wait_for(lambda: all(RECEIVED in procs.log(f"c{i}") for i in late), 300,
             "round 2 training messages at the late joiners")  # fmt: skip
    time.sleep(3)
    kill_tree(server)
    partial = read_metric_rows(run_dir)
    survivors = sorted(set(first + late) - set(killed))
    for i in survivors:  # their SuperNodes lost their SuperLink: restart them
        procs.procs[f"c{i}"].send_signal(signal.SIGTERM)
    for i in survivors:
        procs.procs[f"c{i}"].wait(60)
    states_before = {i: state_files(tmp_path / f"state-{i}") for i in survivors}
    # Execute 3: the server resumes the run; the survivors come back
    resumed = procs.start(
        "server-resumed", server_cmd(tmp_path, fleet, control, "--resume", str(run_dir))
    )
    wait_for(lambda: "SuperLink up" in procs.log("server-resumed"), 300, "SuperLink")
    for i in survivors:
        procs.client(fleet, i, "-again")
    code = resumed.wait(900)
    wall = time.monotonic() - t_start
    # Assert: completed; every round once; faults rejected and counted
    assert code == 0, procs.log("server-resumed")[-4000:]
    assert "resuming" in procs.log("server-resumed")
    ckpt = load_checkpoint(run_dir)
    assert ckpt.round == 2 and ckpt.segments == 2
    assert [h["round"] for h in ckpt.history] == [1, 2]
    rows = read_metric_rows(run_dir)
    trains = [(r["round"], r["client"]) for r in rows if r.get("phase") == "train"
              and "task-loss" in r]  # fmt: skip
    assert len(trains) == len(set(trains))  # no round of any client twice
    by_round = {r: {c for rr, c in trains if rr == r} for r in (1, 2)}
    assert by_round[1] == {f"c{i}" for i in first}
    assert by_round[2] == {f"c{i}" for i in survivors if i}  # c0: rejected
    rejected = [r for r in rows if "rejected" in r and r["client"] != SERVER_ROW]
    assert rejected and {r["round"] for r in rejected} == {2}
    r1, r2 = ckpt.history
    assert r1["clients"] == 6 and r1["failed"] + r1["timed-out"] == 3
    assert r2["clients"] == 6 and r2["rejected"] >= 2  # c0's train + evaluate
    assert r2["failed"] + r2["timed-out"] == 0
    server_rows = [r for r in rows if r["client"] == SERVER_ROW]
    assert [r["round"] for r in server_rows] == [2]
    assert server_rows[0]["clients"] == 6 and server_rows[0]["rejected"] >= 1
    assert json.loads((run_dir / "summary.json").read_text())["segments"] == 2
    # the restarted clients continued from their saved state (same key, no new
    # file); the late joiners had not finished a message before the crash
    assert all(states_before[i] for i in (1, 2, 3))
    for i in survivors[1:]:
        after = state_files(tmp_path / f"state-{i}")
        assert len(after) == 1 and after == (states_before[i] or after)
    _report(tmp_path, {
        "wall-s": round(wall, 1),
        "killed-at-s": round(t_killed - t_start, 1),
        "round-1-done-s": round(t_round1 - t_start, 1),
        "partial-rows-dropped": max(len(partial) - ckpt.rows, 0),
        "faulty-replies": int((tmp_path / "fault-counter").read_text()),
        "rejected-reasons": [r["rejected"][-60:] for r in rejected],
        "history": ckpt.history,
    })  # fmt: skip


def _report(tmp: Path, figures: dict) -> None:
    """Print measured figures (shown with -s; copied to docs/reliability.md)."""
    text = json.dumps(figures)
    (tmp / "figures.json").write_text(text)
    sys.stdout.write(f"\nFIGURES {text}\n")


# ------------------------------------------------------------- poisoning (models)
def federate(tmp: Path, name: str, entries, poison: str = "", **flat) -> dict:
    base = {
        "num-rounds": 2,
        "public.size": 300,
        "train.batch-size": 32,
        "muscle.steps": 6,
        "muscle.batch-size": 16,
        "muscle.dim": 32,
        "muscle.partners": 2,
        "muscle.lr": 3e-3,
        "eval.probe-size": 16,
        "eval.initial": False,
        "eval.every": 2,
        "federation.roster": str(write_roster(tmp / f"{name}.toml", entries)),
        "federation.min-clients": len(entries),
        "federation.poll-s": 0.01,
        "robust.enabled": True,
        "output-dir": str(tmp),
        "run-name": name,
        "device": "cpu",
    }
    run = RunConfig.from_flat({**base, **flat})
    handler = client_app
    if poison:
        handler = poisoning(client_app, len(entries) - 1, poison)
    grid = InProcessGrid(handler, len(entries), first_id=101)
    rec = RunRecorder(tmp / name)
    history: dict[int, dict] = {}
    strategy = FedMuscle(run, rec)
    run_federation(strategy, grid, on_round=lambda r, s, _: history.update({r: s}))
    return {"final": rec.final_metrics(), "history": history, "rows": rec.rows}


@pytest.mark.slow
def test_poisoning_client_excluded_honest_delta_within_1_point(tmp_path, state_dir):
    t0 = time.monotonic()
    local = federate(tmp_path, "local", HONEST, algorithm="local")
    clean = federate(tmp_path, "clean", HONEST)
    attacked = federate(tmp_path, "attacked", [*HONEST, ATTACKER], poison="random")
    honest = {name for name in clean["final"]}
    delta = {
        run: mean_delta(delta_rows(
            {c: r for c, r in res["final"].items() if c in honest}, local["final"]))
        for run, res in (("clean", clean), ("attacked", attacked))
    }  # fmt: skip
    # Assert: excluded every round (never anyone's partner), honest Δ unchanged
    assert all(h["quarantined"] == 1 for h in attacked["history"].values())
    suspects = {r["client"] for r in attacked["rows"] if "suspect" in r}
    assert suspects == {"attacker"}
    assert abs(delta["attacked"] - delta["clean"]) <= 1.0, delta
    _report(tmp_path, {"delta": delta, "wall-s": round(time.monotonic() - t0, 1)})
