"""Faults against the real strategy and round loop, scripted clients, in process.

Bad replies are rejected (logged with node id and name, counted per round), dead
and late nodes, fewer than M partners, min-clients per round, poisoning clients
quarantined. Models are not involved: see tests/integration/test_faults.py.
"""

import logging
import re

import numpy as np
import pytest

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch.inprocess import InProcessGrid
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from fedmuscle_flwr.wire import protocol as p
from tests.faulty import MALFORM, Structured

BASE = {
    "num-rounds": 3,
    "muscle.batch-size": 16,
    "muscle.dim": 16,
    "muscle.steps": 2,
    "muscle.partners": 2,
    "public.size": 400,
    "eval.probe-size": 16,
    "federation.min-clients": 2,
    "federation.poll-s": 0.001,
    "federation.phase-timeout-s": 0.2,
    "robust.enabled": True,
    "run-name": "t",
}


class Grid(InProcessGrid):
    """Node ids 101.. ; ``hidden`` nodes are not connected (yet / any more)."""

    def __init__(self, handler, n):
        super().__init__(handler, n, first_id=101)
        self.hidden: set[int] = set()

    def get_node_ids(self):
        return [n for n in self.contexts if n not in self.hidden]


def federate(tmp_path, client, nodes=4, grid=None, **flat):
    run = RunConfig.from_flat({**BASE, "output-dir": str(tmp_path), **flat})
    grid = grid or Grid(client, nodes)
    client.register(grid.contexts)
    rec = RunRecorder(tmp_path / "t")
    history = []
    strategy = FedMuscle(run, rec, on_round=lambda r, s, _: history.append((r, s)))
    strategy.start(grid=grid)
    return strategy, rec, grid, dict(history)


def server_rows(rec):
    return [r for r in rec.rows if r["client"] == SERVER_ROW]


def align_targets(client):
    return [(n, ins.server_round) for n, k, ins in client.seen if k == p.ALIGN]


@pytest.mark.parametrize("mode", sorted(MALFORM))
def test_malformed_reply_rejected_named_counted_round_goes_on(tmp_path, caplog, mode):
    # Prepare: node 102 (position 1) breaks every reply that carries arrays
    client = Structured(bad={1: mode})
    # Execute
    with caplog.at_level(logging.WARNING, "fedmuscle_flwr"):
        _, rec, _, history = federate(tmp_path, client)
    # Assert: every round ran with the three good clients; 102 never aligned
    assert [r["round"] for r in server_rows(rec)] == [0, 1, 2, 3]
    assert all(history[r]["rejected"] >= 1 for r in (1, 2, 3))
    assert all(history[r]["clients"] == 3 for r in (1, 2, 3))
    assert all(r["rejected"] >= 1 for r in server_rows(rec)[1:])
    assert 102 not in {n for n, _ in align_targets(client)}
    # the log line names the node id and the reason; a row is recorded per reply
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert lines and all("node 102" in line for line in lines)
    rejected = [r for r in rec.rows if "rejected" in r and r["client"] != SERVER_ROW]
    assert {r["node"] for r in rejected} == {102}
    assert {r["round"] for r in rejected} >= {1, 2, 3}


def test_reason_texts(tmp_path, caplog):
    needles = {
        "garbage": "undecodable|disagrees|non-finite|unit-norm",
        "nan": "non-finite",
        "shape": "shape",
        "oversize": "oversized",
        "indices": "other public indices",
        "list-metric": "metric 'task-loss' must be a number, got list",
        "missing": "missing array 'z'",
    }
    for mode, needle in needles.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, "fedmuscle_flwr"):
            federate(tmp_path / mode, Structured(bad={2: mode}), **{"num-rounds": 1})
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "round 1 train node 103" in text, mode
        assert re.search(needle, text), (mode, text[-2000:])


def test_error_replies_and_duplicate_names(tmp_path):
    client = Structured(bad={0: "raise", 3: "dup-name"})
    _, rec, _, history = federate(tmp_path, client)
    # 101 fails every phase it is asked (then skipped for the round); 104 claims
    # the name of 101... which never answered, so the first claimant keeps it
    assert all(history[r]["failed"] == 1 for r in (1, 2, 3))
    failed = [r for r in rec.rows if "failed" in r and r["client"] != SERVER_ROW]
    assert failed and {r["node"] for r in failed} == {101}


def test_duplicate_name_is_rejected(tmp_path):
    client = Structured(bad={3: "dup-name"})  # 104 claims "c0" like 101
    _, _, _, history = federate(tmp_path, client, **{"num-rounds": 1})
    assert history[1]["rejected"] == 2  # its train and evaluate replies
    assert history[1]["clients"] == 3


def test_kill_30_percent_of_10_mid_round(tmp_path):
    # Prepare: 10 nodes; 3 die after their round-1 training reply (mid-round)
    client = Structured()
    grid = Grid(client, 10)
    dead = {103, 106, 109}
    inner = grid.handler

    def handler(msg, ctx):
        reply = inner(msg, ctx)
        if msg.metadata.message_type == p.TRAIN and ctx.node_id in dead:
            grid.down.add(ctx.node_id)  # answers this one, then never again
        return reply

    grid.handler = handler

    def hide_dead_after_round_1(r, s, _):
        if r == 1:
            grid.hidden |= dead  # the SuperLink lists them offline by now

    # Execute
    run = RunConfig.from_flat({**BASE, "output-dir": str(tmp_path)})
    client.register(grid.contexts)
    rec = RunRecorder(tmp_path / "t")
    history = {}

    def on_round(r, s, t):
        history[r] = s
        hide_dead_after_round_1(r, s, t)

    FedMuscle(run, rec, on_round=on_round).start(grid=grid)
    # Assert: the run completed; round 1 lost the 3 in align, later rounds have 7
    rows = server_rows(rec)
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert history[1]["timed-out"] == 3 and history[1]["clients"] == 10
    assert [rows[i]["clients"] for i in (1, 2, 3)] == [7, 7, 7]
    assert history[2]["timed-out"] == 0 and history[3]["clients"] == 7
    # dead nodes were not asked to evaluate in round 1 after timing out in align
    evals_r1 = {
        n for n, k, ins in client.seen if k == p.EVALUATE and ins.server_round == 1
    }
    assert evals_r1.isdisjoint(dead)


def test_late_joiner_takes_part_from_the_next_round(tmp_path):
    client = Structured()
    grid = Grid(client, 4)
    grid.hidden = {104}

    def on_round(r, s, t):
        if r == 1:
            grid.hidden.clear()  # 104 connects during/after round 1

    run = RunConfig.from_flat({**BASE, "output-dir": str(tmp_path)})
    client.register(grid.contexts)
    strategy = FedMuscle(run, RunRecorder(tmp_path / "t"), on_round=on_round)
    strategy.start(grid=grid)
    trains = {(n, ins.server_round) for n, k, ins in client.seen if k == p.TRAIN}
    assert (104, 1) not in trains and (104, 2) in trains and (104, 3) in trains
    assert (104, 2) in set(align_targets(client))


def test_fewer_than_m_partners_uses_all_it_has(tmp_path):
    client = Structured()
    federate(tmp_path, client, nodes=3, **{"muscle.partners": 3, "num-rounds": 1})
    aligns = [ins for _, k, ins in client.seen if k == p.ALIGN]
    assert len(aligns) == 3
    assert all(ins.arrays[p.PARTNERS].shape[1] == 2 for ins in aligns)  # N - 1


def test_min_clients_per_round_skips_alignment(tmp_path, caplog):
    client = Structured(bad={0: "nan", 1: "nan"})  # 2 of 4 valid
    with caplog.at_level(logging.WARNING, "fedmuscle_flwr"):
        federate(tmp_path, client, **{"federation.min-clients": 3, "num-rounds": 1})
    assert align_targets(client) == []
    assert "fewer than min-clients=3" in caplog.text


@pytest.mark.parametrize("attack", ["random", "permuted", "collapsed"])
def test_poisoning_client_is_quarantined(tmp_path, caplog, attack):
    client = Structured(bad={2: attack})
    with caplog.at_level(logging.WARNING, "fedmuscle_flwr"):
        _, rec, _, history = federate(tmp_path, client, nodes=5)
    assert all(history[r]["quarantined"] == 1 for r in (1, 2, 3))
    assert all(history[r]["rejected"] == 0 for r in (1, 2, 3))
    # no alignment message to 103, and 103 is nobody's partner
    assert 103 not in {n for n, _ in align_targets(client)}
    assert "excluding node 103 (c2) from partners" in caplog.text
    suspects = [r for r in rec.rows if "suspect" in r]
    assert {r["client"] for r in suspects} == {"c2"}
    assert all(r["quarantined"] == 1 for r in server_rows(rec)[1:])


def test_screen_is_off_by_default(tmp_path):
    assert not RunConfig().robust.enabled
    client = Structured(bad={2: "random"})
    _, _, _, history = federate(tmp_path, client, nodes=5, **{"robust.enabled": False})
    assert all(history[r]["quarantined"] == 0 for r in (1, 2, 3))
    assert 103 in {n for n, _ in align_targets(client)}


def test_partners_never_include_a_quarantined_node(tmp_path):
    # the partner matrices sent to honest nodes never equal what 103 uploaded
    uploads = {}
    inner = Structured(bad={2: "random"})

    class Spy:
        def register(self, nodes):
            inner.register(nodes)

        def __call__(self, msg, ctx):
            reply = inner(msg, ctx)
            if msg.metadata.message_type == p.TRAIN and ctx.node_id == 103:
                uploads[inner.seen[-1][2].server_round] = (
                    reply.content.array_records[p.REPS][p.Z].numpy().astype(np.float32)
                )
            return reply

    federate(tmp_path, Spy(), nodes=5)
    for node, kind, ins in inner.seen:
        if kind == p.ALIGN:
            bad = uploads[ins.server_round]  # (T, B, d)
            for s, step in enumerate(ins.arrays[p.PARTNERS]):
                assert not any(np.allclose(m, bad[s], atol=2e-3) for m in step)
