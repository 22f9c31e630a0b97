"""FedMuscle strategy + round loop, in process, with scripted clients (no models)."""

import numpy as np
import pytest
from flwr.app import Message

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from fedmuscle_flwr.wire import protocol as p
from tests.faulty import PHASE_METRICS
from tests.loopback import LoopbackGrid


def unit(*shape, rng):
    z = rng.standard_normal(shape).astype(np.float32)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def make_run(tmp_path, **flat):
    base = {
        "num-rounds": 2,
        "muscle.batch-size": 4,
        "muscle.dim": 8,
        "muscle.steps": 3,
        "muscle.partners": 2,
        "public.size": 40,
        "eval.probe-size": 6,
        "federation.min-clients": 1,
        "federation.poll-s": 0.001,
        "output-dir": str(tmp_path),
        "run-name": "t",
    }
    return RunConfig.from_flat({**base, **flat})


class ScriptedClient:
    """Answers the protocol with random unit representations; can misbehave."""

    def __init__(self, bad_node=None, bad="nan"):
        self.rng = np.random.default_rng(0)
        self.bad_node, self.bad = bad_node, bad
        self.seen: list[tuple[int, str, p.Instruction]] = []

    def __call__(self, msg: Message, ctx) -> Message:
        kind = msg.metadata.message_type
        ins = p.decode_instruction(msg.content, kind)
        self.seen.append((ctx.node_id, kind, ins))
        d = ins.run.muscle.dim
        idx = (
            ins.arrays[p.PROBE_INDICES][None]
            if kind == p.EVALUATE
            else ins.arrays[p.ENCODE_INDICES]
        )
        z = unit(*idx.shape, d, rng=self.rng)
        if ctx.node_id == self.bad_node and self.bad == "nan":
            z[..., 0] = np.nan
        metrics = PHASE_METRICS[kind]  # what a client reports in a reply of `kind`
        ident = {
            p.CLIENT_NAME: f"c{ctx.node_id}",
            p.TASK_KIND: "classification",
            p.MODEL_NAME: "m",
            p.METRIC_NAME: "accuracy",
        }
        reply = p.Reply(
            metrics, ident, z if idx.size else None, idx if idx.size else None
        )
        return Message(p.encode_reply(reply, ins.run.muscle.precision), reply_to=msg)


def run(tmp_path, client, nodes=4, down=(), **flat):
    cfg = make_run(tmp_path, **flat)
    grid = LoopbackGrid(client, nodes)
    grid.down = set(down)
    rec = RunRecorder(tmp_path / "t")
    strategy = FedMuscle(cfg, rec)
    strategy.start(grid=grid)
    return strategy, rec, grid


def kinds(client):
    return [k for _, k, _ in client.seen]


@pytest.mark.parametrize(("sync", "align_msgs"), [("per-round", 1), ("per-step", 3)])
def test_messages_per_round_follow_the_sync_mode(tmp_path, sync, align_msgs):
    client = ScriptedClient()
    run(tmp_path, client, **{"muscle.sync": sync})
    # initial evaluation, then per round: train, align x k, evaluate -- for 4 nodes
    per_round = ["train"] + ["train.align"] * align_msgs + ["evaluate"]
    expected = ["evaluate"] * 4 + sum(([k] * 4 for k in per_round), []) * 2
    assert kinds(client) == expected


def test_every_client_encodes_the_same_indices_and_never_gets_its_own(tmp_path):
    client = ScriptedClient()
    strategy, _, grid = run(tmp_path, client, **{"muscle.sync": "per-step"})
    trains = [ins for _, k, ins in client.seen if k == p.TRAIN]
    first = trains[0].arrays[p.ENCODE_INDICES]
    assert all(np.array_equal(t.arrays[p.ENCODE_INDICES], first) for t in trains[:4])
    aligns = [(n, ins) for n, k, ins in client.seen if k == p.ALIGN]
    for node, ins in aligns:
        partners = ins.arrays[p.PARTNERS]  # (1, M, B, d)
        assert partners.shape == (1, 2, 4, 8)
    # per-step: the step batch of message t+1 is what message t asked to encode
    by_node = [ins for n, ins in aligns if n == 101][:3]
    for a, b in zip(by_node, by_node[1:]):
        np.testing.assert_array_equal(
            a.arrays[p.ENCODE_INDICES], b.arrays[p.STEP_INDICES]
        )


def test_partners_are_other_clients_representations(tmp_path):
    uploads: dict[int, np.ndarray] = {}
    inner = ScriptedClient()

    def client(msg, ctx):
        reply = inner(msg, ctx)
        if msg.metadata.message_type == p.TRAIN:
            got = p.decode_reply(
                reply.content,
                make_run(tmp_path),
                inner.seen[-1][2].arrays[p.ENCODE_INDICES],
                where="x",
            )
            uploads[ctx.node_id] = got.z
        return reply

    run(tmp_path, client, nodes=3, **{"num-rounds": 1, "eval.initial": False})
    for node, kind, ins in inner.seen:
        if kind != p.ALIGN:
            continue
        for s in range(ins.arrays[p.PARTNERS].shape[0]):
            for partner in ins.arrays[p.PARTNERS][s]:
                owners = [
                    n
                    for n, z in uploads.items()
                    if np.allclose(z[s], partner, atol=2e-3)
                ]
                assert owners and node not in owners


def test_bad_reply_is_rejected_counted_and_the_round_goes_on(tmp_path):
    client = ScriptedClient(bad_node=102)
    strategy, rec, _ = run(tmp_path, client)
    rounds = [r for r in rec.rows if r["client"] == SERVER_ROW]
    assert rounds[-1]["rejected"] > 0
    assert all(r["clients"] == 3 for r in rounds)  # 102 never makes it into a round
    assert "c102" not in rec.final_metrics() and len(rec.final_metrics()) == 3


def test_dead_node_does_not_stop_the_federation(tmp_path):
    client = ScriptedClient()
    _, rec, _ = run(
        tmp_path, client, down=(103,), **{"federation.phase-timeout-s": 0.2}
    )
    assert len(rec.final_metrics()) == 3
    assert [r["round"] for r in rec.rows if r["client"] == SERVER_ROW] == [0, 1, 2]


def test_aggregated_downlink_and_byte_accounting(tmp_path):
    compact, aggregated = ScriptedClient(), ScriptedClient()
    _, rc, _ = run(tmp_path / "c", compact, **{"eval.initial": False})
    _, ra, _ = run(
        tmp_path / "a",
        aggregated,
        **{"muscle.downlink": "aggregated", "eval.initial": False},
    )
    ins = [i for _, k, i in aggregated.seen if k == p.ALIGN][0]
    assert ins.arrays[p.AGGREGATE].shape == (3, 4**2, 8)
    down = lambda rec: [r["bytes-down"] for r in rec.rows if r["client"] == SERVER_ROW]
    up = lambda rec: [r["bytes-up"] for r in rec.rows if r["client"] == SERVER_ROW]
    assert all(a > c for a, c in zip(down(ra), down(rc)))
    assert up(ra) == up(rc)


def test_local_algorithm_never_aligns(tmp_path):
    client = ScriptedClient()
    run(tmp_path, client, algorithm="local")
    assert p.ALIGN not in kinds(client)
    assert all(
        i.arrays[p.ENCODE_INDICES].size == 0 for _, k, i in client.seen if k == p.TRAIN
    )


def test_too_few_clients_times_out_with_a_clear_error(tmp_path):
    with pytest.raises(TimeoutError, match="only 2 of the 5"):
        run(
            tmp_path,
            ScriptedClient(),
            nodes=2,
            **{"federation.min-clients": 5, "federation.wait-clients-s": 0.5},
        )


def test_start_is_flowers_template_method_overridden_with_the_round(tmp_path):
    # Prepare: Flower's own Strategy.start would run train -> evaluate only
    from flwr.serverapp.strategy import Strategy

    assert FedMuscle.start is not Strategy.start
    client = ScriptedClient()
    # Execute: the hook Flower users call, nothing else
    cfg = make_run(tmp_path, **{"muscle.sync": "per-step", "num-rounds": 2})
    seen: list[int] = []
    strategy = FedMuscle(
        cfg, RunRecorder(tmp_path / "t"), on_round=lambda r, s, t: seen.append(r)
    )
    result = strategy.start(grid=LoopbackGrid(client, 3), num_rounds=2)
    # Assert: the three phases ran, the checkpoint hook after every round, and
    # Flower's Result carries the aggregated metrics per round
    assert kinds(client).count(p.ALIGN) == 3 * 3 * 2
    assert seen == [0, 1, 2]
    assert sorted(result.train_metrics_clientapp) == [1, 2]
    assert sorted(result.evaluate_metrics_clientapp) == [0, 1, 2]
    assert result.evaluate_metrics_clientapp[2]["clients"] == 3.0


def test_start_resumes_after_the_completed_round(tmp_path):
    client = ScriptedClient()
    cfg = make_run(tmp_path, **{"num-rounds": 3})
    strategy = FedMuscle(cfg, RunRecorder(tmp_path / "t"), completed=2)
    strategy.start(grid=LoopbackGrid(client, 2))
    rounds = {ins.server_round for _, _, ins in client.seen}
    assert rounds == {3}  # no initial evaluation, rounds 1-2 not asked again
