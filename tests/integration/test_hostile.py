"""A hostile client in a real deployment, and honest results equal a clean run's (issue 13).

* ``test_hostile_client_real_deployment_tls_auth`` (slow; CI): ``fedmuscle server``
  (flower-superlink, TLS + SuperNode authentication) and three ``fedmuscle
  client`` processes (flower-supernode) on loopback; the third client's replies
  are tampered with in its real ClientApp processes, at Flower's ClientApp
  boundary (``tests/fault_inject/sitecustomize.py``, ``FEDMUSCLE_TEST_ATTACK``),
  one attack per reply: a metric ``phase``, a metric ``round``, a 2 MB identity
  string, 20,000 metric keys, the honest ``c0``'s name, the name ``*``. Every attacked reply is rejected, named and counted;
  nothing of it reaches ``metrics.jsonl``; the honest clients take part in every
  round; the run ends ``completed`` with exit 0.
* ``test_honest_results_equal_a_clean_run`` (slow; in process, real models):
  the same attacks (every reply of the attacker) leave the honest clients' final
  metrics exactly those of a clean run of the same seed without the attacker.

Figures: docs/reliability.md §1.6.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch.deploy.certs import generate
from fedmuscle_flwr.launch.deploy.processes import free_port
from fedmuscle_flwr.launch.inprocess import InProcessGrid
from fedmuscle_flwr.runs.checkpoint import load_checkpoint
from fedmuscle_flwr.runs.metrics import SERVER_ROW, read_rows, read_summary
from fedmuscle_flwr.serverapp.app import serve
from tests.faulty import ATTACKER, HONEST, write_roster
from tests.hostile import VICTIM, hostile
from tests.integration.test_faults import (  # noqa: F401 (fleet_procs: a fixture)
    ROOT,
    _report,
    fleet_procs,
    wait_for,
)

pytestmark = [pytest.mark.integration]

#: the attacker's replies, in turn
ATTACKS = ["phase-metric", "round-metric", "big-identity", "many-keys",
           "steal-name", "star-name"]  # fmt: skip
REASONS = {
    "phase-metric": "metric name 'phase' is reserved",
    "round-metric": "metric name 'round' is reserved",
    "big-identity": "max-reply-bytes",
    "many-keys": "max-reply-keys",
    "steal-name": f"client name '{VICTIM}' is bound to key 'node-1'",
    "star-name": "client name '*' is not allowed",
}
ROUNDS = 3
SERVER_SET = {
    "num-rounds": ROUNDS,
    "public.size": 100,
    "muscle.steps": 0,  # no alignment exchange: the attacks are on the records
    "muscle.batch-size": 8,
    "muscle.dim": 16,
    "eval.initial": "false",  # the attacker's first reply is already an attack
    "eval.every": 1,
    "eval.probe-size": 8,
    "federation.min-clients": 2,
    "federation.phase-timeout-s": 180,
    "federation.wait-clients-s": 240,
    "run-name": "hostile",
}
SMALL = ["--set", "data.max-train=64", "--set", "data.max-test=64"]
CLIENTS = [
    ("c0", "fmnist-cnn", 0),
    ("c1", "mosaic-mlp", 1),
    ("attacker", "fmnist-cnn", 2),
]


def client_args(tmp: Path, fleet: str, certs: Path, i: int) -> list[str]:
    name, profile, part = CLIENTS[i]
    return ["client", "--server", fleet, "--profile", profile,
            "--state-dir", str(tmp / f"state-{i}"), *SMALL,
            "--tls-ca", str(certs / "ca.crt"),
            "--auth-key", str(certs / "nodes" / f"node-{i + 1}"),
            "--set", f"name={name}", "--set", "data.partition.num-partitions=3",
            "--set", f"data.partition.index={part}"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hostile_client_real_deployment_tls_auth(tmp_path, fleet_procs):  # noqa: F811
    procs, t0 = fleet_procs, time.monotonic()
    certs = tmp_path / "tls"
    generate(certs, nodes=3)
    fleet, control = (f"127.0.0.1:{free_port()}" for _ in range(2))
    run_dir = tmp_path / "runs" / "hostile"
    counter = tmp_path / "attack-counter"
    # Prepare: the attacker first (it retries until the server is up), then
    # the server with TLS + node authentication, then the honest clients
    attack_env = {
        "PYTHONPATH": f"{ROOT / 'tests' / 'fault_inject'}:{ROOT}:{ROOT / 'src'}",
        "FEDMUSCLE_TEST_ATTACK": ",".join(ATTACKS),
        "FEDMUSCLE_TEST_ATTACK_START": "0",
        "FEDMUSCLE_TEST_ATTACK_COUNTER": str(counter),
    }
    procs.start("attacker", client_args(tmp_path, fleet, certs, 2), attack_env)
    sets = [a for k, v in SERVER_SET.items() for a in ("--set", f"{k}={v}")]
    server = procs.start("server", [
        "server", "--preset", "tiny", "--address", fleet, "--control-address",
        control, "--output", str(tmp_path / "runs"), "--workdir",
        str(tmp_path / "srv"), "--timeout", "540", "--tls-dir", str(certs),
        "--auth-keys", str(certs / "authorized-nodes.txt"), *sets])  # fmt: skip
    wait_for(lambda: "SuperLink up" in procs.log("server"), 180, "the SuperLink")
    for i in (0, 1):
        procs.start(f"c{i}", client_args(tmp_path, fleet, certs, i))
    # Execute: the run to its end
    code = server.wait(540)
    wall = time.monotonic() - t0
    # Assert: completed, exit 0; the summary says so
    assert code == 0, procs.log("server")[-4000:]
    summary = read_summary(run_dir)
    assert summary["status"] == "completed", summary
    rows = read_rows(run_dir)
    # Assert: every attack the attacker made was rejected with its reason
    applied = [line.split(": ", 1)[1].strip() for line in
               procs.log("attacker").splitlines() if "ATTACK #" in line]  # fmt: skip
    assert len(applied) >= 4, procs.log("attacker")[-3000:]
    rejected = [r for r in rows if r["client"] != SERVER_ROW and "rejected" in r]
    reasons = [r["rejected"] for r in rejected]
    for attack in set(applied):
        assert any(REASONS[attack] in why for why in reasons), (attack, reasons)
    assert len(rejected) == len(applied)  # one incident per bad reply, no more
    assert sum(h["rejected"] for h in summary["rounds"]) == len(applied)
    # never accepted, so never named: its incidents are under its node id
    assert len({r["client"] for r in rejected}) == 1
    assert rejected[0]["client"].startswith("node-")
    # Assert: nothing of the attacks in metrics.jsonl
    assert all(r["round"] in range(ROUNDS + 1) for r in rows)
    assert [r["round"] for r in rows if r["client"] == SERVER_ROW] == list(
        range(1, ROUNDS + 1)
    )
    assert all("m1" not in r and len(str(r.get("model", ""))) < 100 for r in rows)
    assert (run_dir / "metrics.jsonl").stat().st_size < 200_000
    # Assert: the honest clients were evaluated in every round, never rejected
    for name in ("c0", "c1"):
        evals = {r["round"] for r in rows if r["client"] == name and "metric" in r}
        assert evals == set(range(1, ROUNDS + 1)), (name, evals)
        assert not summary["clients"][name]["stale"]
    assert set(summary["clients"]) == {"c0", "c1"}
    # Assert: the names are bound to the registered SuperNode keys, checkpointed
    names = load_checkpoint(run_dir).names
    assert (names["c0"]["key"], names["c1"]["key"]) == ("node-1", "node-2")
    _report(tmp_path, {
        "wall-s": round(wall, 1),
        "attacks": applied,
        "reasons": [why[-70:] for why in reasons],
        "history": summary["rounds"],
        "finals": {c: [r["round"], r["metric"], r["stale"]]
                   for c, r in summary["clients"].items()},
        "metrics-bytes": (run_dir / "metrics.jsonl").stat().st_size,
    })  # fmt: skip


# ------------------------------------------------- honest = clean (in process)
def federate(tmp: Path, name: str, entries, attack: bool) -> dict:
    flat = {
        "num-rounds": 2,
        "public.size": 200,
        "train.batch-size": 32,
        "muscle.steps": 2,
        "muscle.batch-size": 16,
        "muscle.dim": 16,
        "muscle.partners": 2,
        "eval.probe-size": 16,
        "federation.roster": str(write_roster(tmp / f"{name}.toml", entries)),
        "federation.min-clients": len(HONEST),
        "federation.poll-s": 0.01,
        "output-dir": str(tmp),
        "run-name": name,
        "device": "cpu",
        "seed": 3,
    }
    handler = client_app
    if attack:  # the last node attacks in every reply, all attacks in turn
        last = len(entries) - 1
        handler = hostile(
            client_app,
            lambda ctx: ctx.node_config["partition-id"] == last,
            [a for a in ATTACKS if a != "steal-name"]  # c0: no honest name here
            + ["client-metric", "metric-identity", "unknown-metric", "path-name"],
        )
    grid = InProcessGrid(handler, len(entries), first_id=101)
    run_dir = serve(grid, RunConfig.from_flat(flat))
    return read_summary(run_dir)


@pytest.mark.slow
def test_honest_results_equal_a_clean_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDMUSCLE_STATE_DIR", str(tmp_path / "client-state"))
    clean = federate(tmp_path, "clean", HONEST, attack=False)
    attacked = federate(tmp_path, "attacked", [*HONEST, ATTACKER], attack=True)
    assert attacked["status"] == clean["status"] == "completed"
    names = set(clean["clients"])
    assert set(attacked["clients"]) == names  # the attacker: never accepted
    for name in names:
        a, c = attacked["clients"][name], clean["clients"][name]
        assert (a["round"], a["metric"]) == (c["round"], c["metric"]), name
    # every reply of the attacker: initial evaluation + 2 x (train, evaluate)
    assert sum(h["rejected"] for h in attacked["rounds"]) == 1 + 2 * 2
    _report(tmp_path, {c: [r["metric"], attacked["clients"][c]["metric"]]
                       for c, r in clean["clients"].items()})  # fmt: skip
