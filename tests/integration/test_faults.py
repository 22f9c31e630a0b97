"""Fault tests with real models and real processes (issue 6).

* ``test_real_processes_ci_...`` (slow; CI, ~3 min on 2 cores): ``fedmuscle
  server`` + 10 ``fedmuscle client`` processes on loopback, one federation for
  every fault: 3 clients SIGKILLed mid-round 1; 2 clients break every reply
  (oversized, garbage bytes, NaN, wrong shape); the server is SIGKILLed
  mid-round 2 and restarted with ``--resume``, and the clients relaunch their
  SuperNodes by themselves. The run completes; every round is in the metrics
  exactly once; the bad replies are rejected and counted.
* ``test_real_processes_kill_clients_...`` (slow, long: not in CI, 6-20 min):
  the thorough variant: late joiners, a kill in the alignment phase, the
  surviving clients stopped and restarted by hand after the server crash.
* ``test_poisoning_client_...`` (in process, real models): random, permuted,
  collapsed and scaled attackers are excluded from round 1 on, and the honest
  clients' mean Δ equals a clean run's with the same seed;
  ``test_negated_client_...``: a negating client is excluded from round 2 on.

The same properties with scripted clients (no models, seconds) are in
``tests/unit/serverapp/test_strategy_faults.py``, ``tests/unit/runs/test_checkpoint.py``
and ``tests/unit/cli/test_run_resume.py`` (``fedmuscle run --resume``).
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

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch.deploy.processes import descendants, free_port
from fedmuscle_flwr.launch.inprocess import InProcessGrid
from fedmuscle_flwr.runs.checkpoint import load_checkpoint
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder, delta_rows, mean_delta
from fedmuscle_flwr.runs.metrics import read_rows as read_metric_rows
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from tests.faulty import ATTACKER, HONEST, poisoning, write_roster
from tests.integration.test_deployment import FM

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
CHEAP = ["fmnist-cnn", "mosaic-mlp"]  # the two cheapest models (no ViT)
SMALL = ["--set", "data.max-train=64", "--set", "data.max-test=64"]
RECEIVED = "Received successfully"  # a SuperNode's log line per message


def assert_mid_round_2(run_dir: Path) -> None:
    """The server was killed during round 2, not after it (the test's premise)."""
    done = load_checkpoint(run_dir).round
    assert done == 1, f"the server was killed after round {done}, not mid-round 2"


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


def server_cmd(
    tmp: Path, fleet: str, control: str, *extra: str, settings=SERVER_SET
) -> list[str]:
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
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

    def client(self, fleet: str, i: int, tag: str = "", *, faults: str = "", sets=()):
        env = {}
        if faults:  # a faulty client: test-only fault injection (sitecustomize)
            env = {
                "PYTHONPATH": f"{ROOT / 'tests' / 'fault_inject'}:{ROOT}",
                "FEDMUSCLE_TEST_FAULT": faults,
                "FEDMUSCLE_TEST_FAULT_COUNTER": str(self.tmp / f"fault-counter-{i}"),
            }
        args = [*client_cmd(self.tmp, fleet, i), *sets]
        return self.start(f"c{i}{tag}", args, env)

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


def addresses(tmp: Path) -> tuple[str, str, Path]:
    """Free Fleet and Control addresses on loopback, and the run's folder."""
    fleet, control = (f"127.0.0.1:{free_port()}" for _ in range(2))
    return fleet, control, tmp / "runs" / "faults"


def completed_once(procs: Fleet, code: int, run_dir: Path, status: str = "completed"):
    """Assert: the resumed server ran rounds 1 and 2, each exactly once.

    ``status`` is how the run must say it ended (summary.json; exit 0 for
    ``completed``, 4 for ``incomplete``). Returns the checkpoint, the metric
    rows and the clients with a valid training reply per round.
    """
    assert code == (0 if status == "completed" else 4), procs.log("server-resumed")[
        -4000:
    ]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == status
    assert "resuming" in procs.log("server-resumed")
    ckpt = load_checkpoint(run_dir)
    assert ckpt.round == 2 and ckpt.segments == 2
    assert [h["round"] for h in ckpt.history] == [1, 2]
    rows = read_metric_rows(run_dir)
    trains = [(r["round"], r["client"]) for r in rows if r.get("phase") == "train"
              and "task-loss" in r]  # fmt: skip
    assert len(trains) == len(set(trains))  # no round of any client twice
    return ckpt, rows, {r: {c for rr, c in trains if rr == r} for r in (1, 2)}


# The CI variant: one federation of 10 clients for every fault, sized for the
# CI budget (all 10 from round 1, 2 rounds, 1 align exchange per round, evaluate
# once, 64 training samples; the clients relaunch their own SuperNodes).
CI_SET = {
    **SERVER_SET,
    "public.size": 100,
    "eval.probe-size": 8,
    "federation.min-clients": 5,
    "federation.phase-timeout-s": 150,
    "federation.wait-clients-s": 240,
}
#: two faulty clients, two faults each: any two replies in a row show both
CI_FAULTS = {0: "oversize,garbage", 9: "nan,shape"}
REASONS = {
    "oversize": "(oversized)",
    "garbage": "undecodable payload",
    "nan": "non-finite values",
    "shape": "!= expected",
}


def ci_server_cmd(tmp: Path, fleet: str, control: str, *extra: str) -> list[str]:
    return server_cmd(tmp, fleet, control, *extra, settings=CI_SET)


def received(procs: Fleet, i: int) -> int:
    return procs.log(f"c{i}").count(RECEIVED)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_processes_ci_kill_3_of_10_bad_replies_server_crash_resume(
    tmp_path, fleet_procs
):
    procs, t_start = fleet_procs, time.monotonic()
    fleet, control, run_dir = addresses(tmp_path)
    # Prepare: the server (starts at 5 connected clients), then 10 clients
    server = procs.start("server", ci_server_cmd(tmp_path, fleet, control))
    wait_for(lambda: "SuperLink up" in procs.log("server"), 120, "the SuperLink")
    for i in range(10):
        procs.client(fleet, i, faults=CI_FAULTS.get(i, ""))
    honest = [i for i in range(10) if i not in CI_FAULTS]
    # Execute 1: SIGKILL (whole tree, wrapper included) the first 3 honest
    # clients whose SuperNodes pulled their round-1 training message
    killed: list[int] = []

    def kill_three() -> bool:
        for i in honest:
            if i not in killed and len(killed) < 3 and received(procs, i) >= 1:
                kill_tree(procs.procs[f"c{i}"])
                killed.append(i)
        return len(killed) == 3

    wait_for(kill_three, 300, "round-1 training messages", poll=0.1)
    t_killed = time.monotonic()
    survivors = [i for i in range(10) if i not in killed]
    # Execute 2: round 1 completes; SIGKILL the server once round 2's training
    # messages are being pulled (mid-round 2)
    wait_for(lambda: "round 1 done" in procs.log("server"), 300, "round 1 done")
    t_round1 = time.monotonic()
    before = {i: received(procs, i) for i in survivors}
    wait_for(lambda: any(received(procs, i) > before[i] for i in survivors), 120,
             "a round-2 training message", poll=0.05)  # fmt: skip
    kill_tree(server)  # at once: warm clients finish a tiny round in about 2 s
    assert_mid_round_2(run_dir)
    t_crash = time.monotonic()
    partial = read_metric_rows(run_dir)
    states_before = {i: state_files(tmp_path / f"state-{i}") for i in survivors}
    # Execute 3: the same server command with --resume; the clients are left
    # alone (their SuperNodes exit when the new SuperLink does not know them,
    # and `fedmuscle client` relaunches them). min-clients (a waiting knob,
    # outside the config hash) = the 7 survivors, so that round 2 waits for
    # every relaunched node; with 5 valid replies its alignment is skipped, and
    # the run says truthfully that it ended incomplete (5 valid < 7, exit 4)
    resume = ["--resume", str(run_dir), "--set", "federation.min-clients=7"]
    resumed = procs.start("server-resumed", ci_server_cmd(tmp_path, fleet, control,
                                                          *resume))  # fmt: skip
    code = resumed.wait(420)
    wall = time.monotonic() - t_start
    # Assert: resumed, every round exactly once, ended incomplete (not completed)
    ckpt, rows, by_round = completed_once(procs, code, run_dir, "incomplete")
    honest_left = {f"c{i}" for i in honest if i not in killed}
    assert by_round[2] == honest_left  # the faulty clients' replies: rejected
    assert by_round[1] <= honest_left
    # Assert: the killed clients failed in round 1 and were not asked again
    r1, r2 = ckpt.history
    assert r1["failed"] + r1["timed-out"] == 3
    assert r2["failed"] + r2["timed-out"] == 0 and r2["clients"] == len(honest_left)
    # Assert: every bad reply rejected, named and counted; all 4 kinds seen
    rejected = [r for r in rows if "rejected" in r and r["client"] != SERVER_ROW]
    assert r2["rejected"] == 4  # 2 faulty clients x (train + evaluate)
    assert r1["rejected"] == sum(1 for r in rejected if r["round"] == 1)
    for fault, text in REASONS.items():
        assert any(text in r["rejected"] for r in rejected), (fault, rejected)
    # Assert: every survivor's SuperNode was relaunched by `fedmuscle client`
    relaunched = [i for i in survivors if "relaunch 1/" in procs.log(f"c{i}")]
    assert relaunched == survivors
    for i in honest:
        if i not in killed:  # one state file, kept across the relaunch
            assert len(state_files(tmp_path / f"state-{i}")) == 1
    _report(tmp_path, {
        "wall-s": round(wall, 1),
        "killed": [f"c{i}" for i in killed],
        "killed-at-s": round(t_killed - t_start, 1),
        "round-1-done-s": round(t_round1 - t_start, 1),
        "server-killed-at-s": round(t_crash - t_start, 1),
        "partial-rows-dropped": max(len(partial) - ckpt.rows, 0),
        "faulty-replies": {i: int((tmp_path / f"fault-counter-{i}").read_text())
                           for i in CI_FAULTS},
        "rejected-reasons": [r["rejected"][-50:] for r in rejected],
        "history": ckpt.history,
        "states-before": {i: len(v) for i, v in states_before.items()},
        "alignment-skipped": [line[-90:] for line in procs.log("server").splitlines()
                              + procs.log("server-resumed").splitlines()
                              if "alignment skipped" in line],
    })  # fmt: skip


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.timeout(1500)
def test_real_processes_kill_clients_bad_client_server_restart(tmp_path, fleet_procs):
    procs, t_start = fleet_procs, time.monotonic()
    fleet, control, run_dir = addresses(tmp_path)
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

    wait_for(kill_on_second_message, 900, "the alignment messages", poll=0.02)
    t_killed = time.monotonic()
    for i in late:
        procs.client(fleet, i, faults=FAULTS if i == 0 else "")
    # Execute 2: round 1 completes; SIGKILL the server while round 2 trains
    wait_for(lambda: "round 1 done" in procs.log("server"), 600, "round 1 done")
    t_round1 = time.monotonic()
    wait_for(lambda: all(RECEIVED in procs.log(f"c{i}") for i in late), 300,
             "round 2 training messages at the late joiners", poll=0.05)  # fmt: skip
    kill_tree(server)  # at once: warm clients finish a tiny round in about 2 s
    assert_mid_round_2(run_dir)
    partial = read_metric_rows(run_dir)
    survivors = sorted(set(first + late) - set(killed))
    for i in survivors:  # their SuperNodes lost their SuperLink: restart them
        procs.procs[f"c{i}"].send_signal(signal.SIGTERM)
    for i in survivors:
        procs.procs[f"c{i}"].wait(60)
    states_before = {i: state_files(tmp_path / f"state-{i}") for i in survivors}
    # Execute 3: the server resumes the run; the survivors come back.
    # min-clients (a waiting knob, outside the config hash) = the 7 survivors, so
    # that round 2 waits for every relaunched node, c0 included (its fault-injected
    # SuperNode starts slowest: with 6 the round could start, and even end, before
    # it joined). c0's training reply is rejected, so 6 valid < 7: round 2 skips its
    # alignment and the run says truthfully that it ended incomplete (exit 4)
    resume = ["--resume", str(run_dir), "--set", "federation.min-clients=7"]
    resumed = procs.start(
        "server-resumed", server_cmd(tmp_path, fleet, control, *resume)
    )
    wait_for(lambda: "SuperLink up" in procs.log("server-resumed"), 300, "SuperLink")
    for i in survivors:
        procs.client(fleet, i, "-again", faults=FAULTS if i == 0 else "")
    code = resumed.wait(900)
    wall = time.monotonic() - t_start
    # Assert: every round once, ended incomplete; faults rejected and counted
    ckpt, rows, by_round = completed_once(procs, code, run_dir, "incomplete")
    assert by_round[1] == {f"c{i}" for i in first}
    assert by_round[2] == {f"c{i}" for i in survivors if i}  # c0: rejected
    rejected = [r for r in rows if "rejected" in r and r["client"] != SERVER_ROW]
    assert rejected and {r["round"] for r in rejected} == {2}
    r1, r2 = ckpt.history
    # a killed client fails once, at the first message of round 1 it can no longer
    # answer; a warm client may answer its alignment message in the moment between
    # its SuperNode's log line and the SIGKILL and then has nothing more to fail
    assert r1["clients"] == 6 and r1["failed"] + r1["timed-out"] <= len(killed)
    # c0 replies garbage to both messages it gets in round 2: train and evaluate
    assert procs.log("c0-again").count(RECEIVED) == 2
    assert r2["clients"] == 6 and r2["rejected"] == 2
    assert "alignment skipped" in procs.log("server-resumed")
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
        "faulty-replies": int((tmp_path / "fault-counter-0").read_text()),
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
    strategy = FedMuscle(run, rec, on_round=lambda r, s, _: history.update({r: s}))
    strategy.start(grid=grid)
    return {"final": rec.final_metrics(), "history": history, "rows": rec.rows}


def honest_delta(res: dict, local: dict) -> float:
    """The honest clients' mean Δ (%) of a run against the local reference."""
    final = {c: r for c, r in res["final"].items() if c in local["final"]}
    return mean_delta(delta_rows(final, local["final"]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Local and clean runs of the honest clients (seed 0), shared by the tests."""
    tmp = tmp_path_factory.mktemp("poison")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDMUSCLE_STATE_DIR", str(tmp / "client-state"))
        local = federate(tmp, "local", HONEST, algorithm="local")
        clean = federate(tmp, "clean", HONEST)
    return local, honest_delta(clean, local)


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["random", "permuted", "collapsed", "scaled"])
def test_poisoning_client_excluded_honest_delta_within_1_point(
    tmp_path, state_dir, reference, attack
):
    # Prepare + Execute: three honest clients and an attacker, seed 0
    local, clean = reference
    t0 = time.monotonic()
    # (a rejected reply is not a valid one: 3 of 4 must do to align)
    run = federate(tmp_path, attack, [*HONEST, ATTACKER], poison=attack,
                   **{"federation.min-clients": 3})  # fmt: skip
    delta = honest_delta(run, local)
    # Assert: excluded in every round, from round 1 on (never anyone's partner):
    # quarantined by the screen, or (scaled rows) rejected by the codec
    kind = "rejected" if attack == "scaled" else "quarantined"
    assert all(h[kind] >= 1 for h in run["history"].values()), run["history"]
    flagged = {r["client"] for r in run["rows"] if r["client"] != SERVER_ROW
               and ("suspect" in r or "rejected" in r)}  # fmt: skip
    assert len(flagged) == 1 and ("attacker" in flagged or attack == "scaled")
    # Assert: the honest clients' mean Δ is that of the clean run
    assert abs(delta - clean) <= 1.0, (delta, clean)
    _report(tmp_path, {"attack": attack, "delta": delta, "clean": clean,
                       "wall-s": round(time.monotonic() - t0, 1)})  # fmt: skip


NEGATION_SEEDS = (0, 1, 2)


@pytest.mark.slow
def test_negated_client_excluded_from_round_2_screen_keeps_honest_delta(
    tmp_path, state_dir
):
    """A sign flip is invisible before alignment (G^{-Z} = G^Z, every c ≈ 0):
    the negating client is a partner in round 1 and excluded from round 2 on.
    The 1-point criterion cannot hold (round 1 differs); asserted instead: the
    screen beats no screen, on average over 3 seeds (10-seed figures in
    docs/reliability.md: round-1 participation costs +1.9 ± 5.5 points, i.e.
    nothing measurable; keeping it in costs −14.9 ± 4.8).
    """
    t0 = time.monotonic()
    on, off, clean = [], [], []
    for seed in NEGATION_SEEDS:
        # Prepare + Execute: local, clean, attacked with and without the screen
        def run(name, entries, seed=seed, **flat):
            return federate(tmp_path, f"{name}-{seed}", entries, seed=seed, **flat)

        local = run("local", HONEST, algorithm="local")
        clean.append(honest_delta(run("clean", HONEST), local))
        mixed = [*HONEST, ATTACKER]
        screened = run("negated", mixed, poison="negated")
        on.append(honest_delta(screened, local))
        plain = run("negated-off", mixed, poison="negated", **{"robust.enabled": False})
        off.append(honest_delta(plain, local))
        # Assert: not seen in round 1, excluded (by `alignment`) in round 2
        flags = [h["quarantined"] for h in screened["history"].values()]
        assert flags == [0, 1], (
            f"seed {seed}: negating client flagged in rounds {flags}, expected [0, 1]; "
            "`alignment` needs honest clients aligned after round 1 and an attacker "
            "whose own model aligned (docs/reliability.md §2.3)"
        )
        suspects = {(r["client"], r["suspect"]) for r in screened["rows"]
                    if "suspect" in r}  # fmt: skip
        assert {name for name, _ in suspects} == {"attacker"}
        assert all("alignment" in why for _, why in suspects)
    # Assert: with the screen the honest clients do better than without it
    assert sum(on) / len(on) > sum(off) / len(off), (on, off)
    _report(tmp_path, {"on": on, "off": off, "clean": clean,
                       "wall-s": round(time.monotonic() - t0, 1)})  # fmt: skip
