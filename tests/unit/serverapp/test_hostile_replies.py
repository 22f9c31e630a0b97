"""A hostile client against the real strategy and round loop, in process (issue 13).

The attacker is node 104 of four scripted clients (tests/faulty.py
``Structured``); its replies are tampered with after encoding, at the
``(Message, Context) -> Message`` boundary of the ClientApp (tests/hostile.py).
Every finding of the issue has a test here that failed before the fix:

1. a metric named ``phase``/``client``/``step``/``round`` or an identity key
   ``phase``/``metric`` crashed the server: now the reply is rejected, as one
   incident, nothing of it in ``metrics.jsonl``, and the run goes on;
2. a metric ``round`` rewrote the round of the sender's rows;
3. oversized identity and metric records were recorded;
4. a later claimant of a bound name, or the name ``*``, got rows;
6. a run whose final evaluation had no valid reply ended ``completed``.

The same attacks against real processes: tests/integration/test_hostile.py.
"""

import json

import pytest

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.checkpoint import load_checkpoint
from fedmuscle_flwr.runs.metrics import (
    COMPLETED,
    INCOMPLETE,
    SERVER_ROW,
    IncompleteRun,
    read_rows,
    read_summary,
)
from fedmuscle_flwr.serverapp.app import serve
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from fedmuscle_flwr.wire import protocol as p
from tests.faulty import Structured
from tests.hostile import ATTACKS, VICTIM, hostile
from tests.unit.serverapp.test_strategy_faults import BASE, Grid

ATTACKER = 104
RECORD_ATTACKS = [a for a in ATTACKS if not a.endswith("-name")]
RECORD_ATTACKS.remove("unknown-metric")  # evaluations may add task metrics
NAME_ATTACKS = [a for a in ATTACKS if a.endswith("-name")]


def is_attacker(ctx) -> bool:
    return ctx.node_id == ATTACKER


def run_config(tmp_path, name: str, **flat) -> RunConfig:
    return RunConfig.from_flat(
        {**BASE, "output-dir": str(tmp_path), "run-name": name, **flat}
    )


def serve_scripted(tmp_path, name, attacks=(), start=0, nodes=4, **flat):
    """``serve`` (checkpoint, summary) with scripted clients; node 104 attacks."""
    client = Structured()
    handler = hostile(client, is_attacker, attacks, start) if attacks else client
    grid = Grid(handler, nodes)
    client.register(grid.contexts)
    run_dir = serve(grid, run_config(tmp_path, name, **flat))
    return run_dir, read_rows(run_dir)


def honest_rows(rows):
    """The honest clients' own rows (no incidents, no server rows), sorted."""
    own = [r for r in rows if r["client"] in {"c0", "c1", "c2"} and "rejected" not in r]
    return sorted(own, key=lambda r: json.dumps(r, sort_keys=True))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The same federation without the attacker's node."""
    tmp = tmp_path_factory.mktemp("clean")
    return serve_scripted(tmp, "clean", nodes=3)


@pytest.mark.parametrize("attack", RECORD_ATTACKS)
def test_bad_record_rejected_whole_nothing_recorded_run_goes_on(
    tmp_path, clean, attack
):
    # Execute: every reply of node 104 carries the attack
    run_dir, rows = serve_scripted(tmp_path, attack, [attack])
    # Assert: the run completed every round; each bad reply is one incident
    summary = read_summary(run_dir)
    assert summary["status"] == COMPLETED
    server = [r for r in rows if r["client"] == SERVER_ROW]
    assert [r["round"] for r in server] == [0, 1, 2, 3]
    mine = [r for r in rows if r.get("node") == ATTACKER]
    assert mine and all(set(r) == {"round", "client", "node", "phase", "rejected"}
                        for r in mine), mine  # fmt: skip
    assert all("schema" in r["rejected"] for r in mine)
    assert all(len(r["rejected"]) < 400 for r in mine)  # never echoes the payload
    # 4 rounds x (train [+ align] + evaluate) replies, one incident each
    assert len(mine) == sum(h["rejected"] for h in summary["rounds"])
    # Assert: nothing of the attack reached metrics.jsonl
    assert all(r["round"] in (0, 1, 2, 3) for r in rows)
    assert not any("accuracy-boost" in r or "m1" in r for r in rows)
    assert (run_dir / "metrics.jsonl").stat().st_size < 100_000
    assert set(summary["clients"]) == {"c0", "c1", "c2"}
    # Assert: the honest clients' rows are those of a clean run
    assert honest_rows(rows) == honest_rows(clean[1])


def test_metric_outside_the_schema_of_its_kind_rejected(tmp_path):
    run_dir, rows = serve_scripted(tmp_path, "unknown", ["unknown-metric"])
    mine = [r for r in rows if r.get("node") == ATTACKER]
    assert {r["phase"] for r in mine} == {"train"}  # its evaluations are valid
    assert all("not one a train reply carries" in r["rejected"] for r in mine)
    assert not any("accuracy-boost" in r for r in rows)


def test_stolen_name_rejected_victim_keeps_every_round(tmp_path, clean):
    # Prepare: node 104 answers honestly once (round 0: binds "c3"), then
    # claims the victim's name c0, then "*", then a path
    run_dir, rows = serve_scripted(tmp_path, "steal", NAME_ATTACKS, start=1)
    # Assert: the victim reported every round, always from its own node
    victim = [r for r in rows if r["client"] == VICTIM]
    evaluated = {r["round"] for r in victim if "metric" in r}
    assert evaluated == {0, 1, 2, 3}
    assert not any("rejected" in r for r in victim)
    # Assert: every later claim was rejected, under the attacker's own name
    claims = [r for r in rows if r.get("node") == ATTACKER]
    assert claims and all(r["client"] == "c3" for r in claims)
    assert any("claims 'c0' (name change refused)" in r["rejected"] for r in claims)
    assert any("'*' is not allowed" in r["rejected"] for r in claims)
    # Assert: exactly one server row per round; no client row named '*'
    stars = [r for r in rows if r["client"] == SERVER_ROW]
    assert len(stars) == 4 and all(r["phase"] == "round" for r in stars)
    # Assert: the bindings are in the checkpoint (kept across --resume)
    names = load_checkpoint(run_dir).names
    assert names["c0"]["node"] == 101 and names["c3"]["node"] == ATTACKER
    assert honest_rows(rows) == honest_rows(clean[1])


def test_bindings_restored_on_resume_refuse_a_new_claimant(tmp_path):
    # Prepare: a finished run's checkpoint; a strategy resumed from it
    run_dir, _ = serve_scripted(tmp_path, "bound", **{"num-rounds": 1})
    ckpt = load_checkpoint(run_dir)
    strategy = FedMuscle(run_config(tmp_path, "bound"), _Recorder())
    strategy.restore_names(ckpt.names)
    nodes = {101, 102, 103, 104, 105}  # the phase's snapshot: 101 still connected
    # Execute + Assert: node 105 claiming c0 is refused; 101 keeps it
    with pytest.raises(p.ProtocolError, match="bound to node 101"):
        strategy.book.claim(105, "c0", connected=nodes)
    strategy.book.claim(101, "c0", connected=nodes)


class _Recorder:
    def __init__(self):
        self.rows = []

    def record(self, *args, **kwargs):
        self.rows.append((args, kwargs))


def test_final_evaluation_without_valid_replies_is_incomplete(tmp_path):
    # Prepare: every client's evaluation replies of the last round are bad
    client = Structured()

    def handler(msg, ctx):
        reply = client(msg, ctx)
        if msg.metadata.message_type == p.EVALUATE and _round(msg) == 2:
            reply.content.metric_records[p.METRICS]["phase"] = 1.0
        return reply

    grid = Grid(handler, 3)
    client.register(grid.contexts)
    run = run_config(tmp_path, "incomplete", **{"num-rounds": 2})
    # Execute
    run_dir = serve(grid, run)
    # Assert: incomplete, with the reason; each final metric names its round
    summary = read_summary(run_dir)
    assert summary["status"] == INCOMPLETE
    assert summary["last-evaluation"] == {"round": 2, "valid-replies": 0}
    assert "fewer than federation.min-clients=2" in summary["reason"]
    finals = summary["clients"]
    assert {c: (r["round"], r["stale"]) for c, r in finals.items()} == {
        "c0": (1, True),
        "c1": (1, True),
        "c2": (1, True),
    }
    # Assert: `fedmuscle run`'s runner raises IncompleteRun (exit status 4)
    from rich.console import Console

    from fedmuscle_flwr.launch.session import run_and_report

    again = run.model_copy(update={"run_name": "incomplete-2"})
    with pytest.raises(IncompleteRun, match="incomplete-2"):
        run_and_report(
            {"incomplete-2": again},
            tmp_path,
            Console(file=open(tmp_path / "console.txt", "w")),
            execute=lambda r: serve(_fresh_grid(handler, client), r),
        )


def _fresh_grid(handler, client):
    grid = Grid(handler, 3)
    client.register(grid.contexts)
    return grid


def _round(msg) -> int:
    return int(str(msg.content.config_records[p.CONFIG][p.SERVER_ROUND]))


def test_complete_run_says_completed(tmp_path):
    run_dir, _ = serve_scripted(tmp_path, "ok", nodes=3, **{"num-rounds": 1})
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == COMPLETED and summary["reason"] == ""
    assert all(r["round"] == 1 and not r["stale"] for r in summary["clients"].values())


def test_error_reply_text_is_capped(tmp_path):
    from flwr.app import Error, Message

    client = Structured()

    def handler(msg, ctx):
        if ctx.node_id == ATTACKER:
            return Message(Error(code=2, reason="x" * 10**6), reply_to=msg)
        return client(msg, ctx)

    grid = Grid(handler, 4)
    client.register(grid.contexts)
    run_dir = serve(grid, run_config(tmp_path, "error", **{"num-rounds": 1}))
    failed = [r for r in read_rows(run_dir) if isinstance(r.get("failed"), str)]
    assert failed and all(len(r["failed"]) <= 220 for r in failed)
