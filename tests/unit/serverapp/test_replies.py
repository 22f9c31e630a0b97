"""The reply desk (serverapp/replies.py) on its own: decode, bind, count, record.

The attacks of issue 13 run through the whole strategy in test_hostile_replies.py;
these are the desk's own rules, each with real Flower messages.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Error, Message, RecordDict

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch.inprocess import InProcessGrid
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.runs.metrics import RunRecorder, read_rows
from fedmuscle_flwr.serverapp.calls import PhaseCall
from fedmuscle_flwr.serverapp.incidents import Incidents
from fedmuscle_flwr.serverapp.names import NameBook
from fedmuscle_flwr.serverapp.replies import MAX_CLIENT_TEXT, ReplyDesk
from fedmuscle_flwr.wire import protocol as p
from tests.unit.serverapp.test_strategy_faults import BASE


def desk_for(tmp_path) -> tuple[ReplyDesk, Incidents, RunRecorder]:
    run = RunConfig.from_flat({**BASE, "output-dir": str(tmp_path)})
    recorder = RunRecorder(tmp_path / "run")
    incidents = Incidents(recorder)
    incidents.begin(1)
    return ReplyDesk(run, recorder, incidents, NameBook()), incidents, recorder


def exchange(
    script: dict[int, str | None], phase: Phase = Phase.EVALUATE
) -> tuple[list[Message], PhaseCall]:
    """Ask nodes 1..n (a phase without arrays) over an in-process grid.

    ``script[node]`` is the client name the node answers with, ``"!error"`` for
    an error reply (10,000 characters of reason), or ``None`` for no answer.
    """

    def handler(msg: Message, ctx: Context) -> Message:
        name = script[ctx.node_id]
        if name == "!error":
            return Message(Error(code=0, reason="x" * 10_000), reply_to=msg)
        reply = p.Reply({"metric": 0.5, p.NUM_EXAMPLES: 3.0}, {p.CLIENT_NAME: name})
        return Message(p.encode_reply(reply, "fp32"), reply_to=msg)

    grid = InProcessGrid(handler, len(script), first_id=1)
    grid.down = {node for node, name in script.items() if name is None}
    call = PhaseCall(phase, 1, 0, frozenset(script))  # every node connected
    for node in script:
        msg = grid.create_message(RecordDict(), phase.message_type, node, "")
        call.messages.append(msg)
        call.asked[node] = np.zeros((0, 0), np.int64)
    return list(grid.pull_messages(grid.push_messages(call.messages))), call


def test_valid_replies_bind_names_and_record_one_row_each(tmp_path) -> None:
    # Prepare
    desk, incidents, recorder = desk_for(tmp_path)
    replies, call = exchange({1: "b", 2: "a"})
    # Execute
    good = desk.take(replies, call)
    desk.record(1, good, phase="evaluate")
    # Assert
    assert sorted(good) == [1, 2] and desk.names == {1: "b", 2: "a"}
    assert desk.by_name([1, 2]) == [2, 1]
    rows = read_rows(recorder.run_dir)
    assert sorted((r["client"], r["metric"]) for r in rows) == [("a", 0.5), ("b", 0.5)]
    assert sum(incidents.round_summary().values()) == 0


def test_a_reply_to_no_message_of_the_phase_counts_for_its_own_node(tmp_path) -> None:
    """A forged ``reply_to`` id (no message of this phase) is looked up, not
    trusted: the reply counts for the node it came from, and a stream of
    replies (a generator, as the round loop passes them) is taken the same way."""
    # Prepare
    desk, incidents, _ = desk_for(tmp_path)
    replies, call = exchange({1: "a", 2: "b"})
    forged = next(m for m in replies if m.metadata.src_node_id == 2)
    forged.metadata.__dict__["_reply_to_message_id"] = "not-a-message-of-this-phase"
    # Execute
    good = desk.take((m for m in replies), call)
    # Assert
    assert sorted(good) == [1, 2] and desk.names == {1: "a", 2: "b"}
    assert sum(incidents.round_summary().values()) == 0


def test_error_reply_counted_failed_with_the_clients_text_cut(tmp_path) -> None:
    # Prepare
    desk, incidents, recorder = desk_for(tmp_path)
    replies, call = exchange({1: "!error"}, Phase.TRAIN)
    # Execute
    good = desk.take(replies, call)
    # Assert
    assert good == {} and incidents.round_summary()["failed"] == 1
    (row,) = read_rows(recorder.run_dir)
    assert row["failed"].count("x") == MAX_CLIENT_TEXT and incidents.dropped == {1}


def test_silent_node_timed_out_and_second_claim_of_a_name_rejected(tmp_path) -> None:
    # Prepare
    desk, incidents, _ = desk_for(tmp_path)
    replies, call = exchange({1: "c0", 2: "c0", 3: None})  # 3 never answers
    # Execute
    good = desk.take(replies, call)
    # Assert
    assert list(good) == [1] and desk.names == {1: "c0"}
    counts = incidents.round_summary()
    assert counts["rejected"] == 1 and counts["timed-out"] == 1
    assert incidents.dropped == {3}


def test_bad_representations_are_refused_per_node_and_the_bank_stays_fp16(
    tmp_path,
) -> None:
    # Prepare: five nodes asked for the same 2 x 4 public rows (B = 4, d = 8);
    # node 1 honest (fp16, the wire default), 2 sends NaN, 3 inf, 4 rows of
    # norm 3, 5 an honest float32 upload
    desk, incidents, recorder = desk_for(tmp_path)
    run = desk.run
    b, d = run.muscle.batch_size, run.muscle.dim
    asked = np.arange(2 * b, dtype=np.int64).reshape(2, b)
    z = np.random.default_rng(0).standard_normal((2, b, d)).astype(np.float32)
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    bad = {2: np.nan, 3: np.inf, 4: None}

    def handler(msg: Message, ctx: Context) -> Message:
        rows, node = z.copy(), ctx.node_id
        if node in (2, 3):
            rows[1, 2, 3] = bad[node]
        if node == 4:
            rows *= 3.0
        reply = p.Reply({"task-loss": 1.0}, {p.CLIENT_NAME: f"c{node}"}, rows, asked)
        return Message(
            p.encode_reply(reply, "fp32" if node == 5 else "fp16"), reply_to=msg
        )

    grid = InProcessGrid(handler, 5, first_id=1)
    call = PhaseCall(Phase.TRAIN, 1, 0, frozenset(range(1, 6)))
    for node in range(1, 6):
        call.messages.append(grid.create_message(RecordDict(), "train", node, ""))
        call.asked[node] = asked
    replies = list(grid.pull_messages(grid.push_messages(call.messages)))
    # Execute
    good = desk.take(replies, call)
    # Assert: each bad node refused with its own reason, the others kept as sent
    assert sorted(good) == [1, 5] and incidents.round_summary()["rejected"] == 3
    reasons = {r["client"]: r["rejected"] for r in read_rows(recorder.run_dir)}
    assert "non-finite values" in reasons["node-2"]
    assert "non-finite values" in reasons["node-3"]
    assert "rows are not unit-norm" in reasons["node-4"]
    assert good[1].z.dtype == np.float16 and good[5].z.dtype == np.float32
    np.testing.assert_array_equal(good[1].z, z.astype(np.float16))
    np.testing.assert_array_equal(good[5].z, z)
