"""Rounds without hidden state: phase objects, one node query per phase."""

from __future__ import annotations

from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.runs.metrics import RunRecorder
from fedmuscle_flwr.serverapp.calls import PhaseCall, RoundState
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from fedmuscle_flwr.wire import protocol as p
from tests.loopback import LoopbackGrid
from tests.unit.serverapp.test_strategy import ScriptedClient, make_run


class CountingGrid(LoopbackGrid):
    """A loopback grid that counts ``get_node_ids`` (an RPC in deployment)."""

    queries = 0

    def get_node_ids(self):
        self.queries += 1
        return super().get_node_ids()


def test_one_node_query_per_phase(tmp_path):
    # Prepare: 2 rounds, per-step sync with T=3: initial evaluation, then per
    # round train + 3 align messages + evaluate
    cfg = make_run(tmp_path, **{"muscle.sync": "per-step"})
    grid = CountingGrid(ScriptedClient(), 3)
    # Execute
    FedMuscle(cfg, RunRecorder(tmp_path / "t")).start(grid=grid)
    # Assert: the start-up wait + initial evaluation, then (wait = train) + 3 + 1
    assert grid.queries == 2 + 2 * (1 + 3 + 1)


def test_a_phase_call_carries_what_its_closing_needs(tmp_path):
    # Prepare
    cfg = make_run(tmp_path)
    strategy = FedMuscle(cfg, RunRecorder(tmp_path / "t"))
    grid = LoopbackGrid(ScriptedClient(), 3)
    rs = strategy.begin_round(1)
    # Execute: open phase 1 for a snapshot of two of the three nodes
    nodes = sorted(grid.get_node_ids())[:2]
    call = strategy.phases.open_train(rs, nodes)
    # Assert: one message per snapshot node, the asked indices, the bytes
    assert isinstance(call, PhaseCall) and call.phase is Phase.TRAIN
    assert call.nodes == frozenset(nodes) and sorted(call.asked) == nodes
    assert [m.metadata.message_type for m in call.messages] == [p.TRAIN] * 2
    assert call.bytes_down > 0 and rs.batches.shape == (3, 4)
    # Execute: close it with the replies
    replies = grid.pull_messages(grid.push_messages(call.messages))
    row = strategy.phases.close_train(rs, call, replies)
    # Assert: the round state holds the bank; the strategy's attributes do not;
    # the phase's bytes count into the round when it closes
    assert row["clients"] == 2.0 and rs.trained == 2 and sorted(rs.bank) == nodes
    assert rs.bytes_up == call.bytes_up > 0 and rs.bytes_down == call.bytes_down
    assert not hasattr(strategy, "bank") and not hasattr(strategy, "batches")
    assert strategy.names == {n: f"c{n}" for n in nodes}


def test_flowers_configure_and_aggregate_still_work(tmp_path):
    # Flower's own loop calls configure_train/aggregate_train and
    # configure_evaluate/aggregate_evaluate with the round number only
    cfg = make_run(tmp_path)
    strategy = FedMuscle(cfg, RunRecorder(tmp_path / "t"))
    grid = LoopbackGrid(ScriptedClient(), 3)
    msgs = strategy.configure_train(1, None, None, grid)  # type: ignore[arg-type]
    _, train = strategy.aggregate_train(1, grid.pull_messages(grid.push_messages(msgs)))
    msgs = strategy.configure_evaluate(1, None, None, grid)  # type: ignore[arg-type]
    row = strategy.aggregate_evaluate(1, grid.pull_messages(grid.push_messages(msgs)))
    assert train is not None and train["clients"] == 3.0
    assert row is not None and row["clients"] == 3.0 and row["bytes-down"] > 0
    assert strategy._open == {}  # nothing left open
    assert isinstance(strategy.begin_round(2), RoundState)


def test_round_means_do_not_depend_on_reply_order() -> None:
    import itertools
    import math

    from fedmuscle_flwr.serverapp import phases

    # Prepare: the four client metrics of a real default-run round whose
    # np.mean differed in the last bit between arrival orders
    values = [0.9833333333333333, 0.7625, 0.629, 0.7754468291211007]
    replies = [p.Reply(metrics={"metric": v}, identity={}) for v in values]
    # Execute: every arrival order
    means = {
        phases._mean(dict(enumerate(order)), "metric")
        for order in itertools.permutations(replies)
    }
    # Assert: one value; a metric nobody reported is NaN
    assert len(means) == 1
    assert math.isnan(phases._mean({0: replies[0]}, "absent"))


def test_every_instruction_announces_the_public_fingerprint(tmp_path):
    # Prepare: the server's fingerprint, as serve() computes it
    from fedmuscle_flwr.serverapp.app import announce_public

    cfg = make_run(tmp_path)
    fingerprint = announce_public(cfg)
    strategy = FedMuscle(
        cfg, RunRecorder(tmp_path / "t"), public_fingerprint=fingerprint
    )
    grid = LoopbackGrid(ScriptedClient(), 2)
    rs = strategy.begin_round(1)
    # Execute
    call = strategy.phases.open_train(rs, sorted(grid.get_node_ids()))
    # Assert: each message carries it, and the client side decodes it
    assert fingerprint.startswith(f"pub1-{cfg.public.size}-")
    for msg in call.messages:
        ins = p.decode_instruction(msg.content, msg.metadata.message_type)
        assert ins.public_fingerprint == fingerprint
