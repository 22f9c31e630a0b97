"""A node far slower than its peers is dropped for the round (issue 23): once half
the nodes replied, the rest get max(min-s, factor x the median reply time); a burst
of silent nodes cannot hold a phase for its whole timeout."""

from __future__ import annotations

import logging

import pytest
from flwr.app import Message, RecordDict

from fedmuscle_flwr.serverapp.rounds import Stragglers, stream_replies
from tests.loopback import LoopbackGrid


def echo(msg: Message, ctx) -> Message:
    return Message(RecordDict(), reply_to=msg)


def phase(grid: LoopbackGrid) -> list[Message]:
    return [Message(RecordDict(), dst_node_id=n, message_type="train")
            for n in grid.get_node_ids()]  # fmt: skip


@pytest.mark.timeout(20)  # the phase timeout below is 600 s: the cut must end it
def test_silent_nodes_are_dropped_once_the_others_replied(caplog):
    grid = LoopbackGrid(echo, 6)
    grid.down = {104, 105}  # registered, never answer (a registration burst)
    with caplog.at_level(logging.WARNING):
        got = list(
            stream_replies(grid, phase(grid), 600.0, 0.01, Stragglers(4.0, 0.05))
        )
    assert sorted(m.metadata.src_node_id for m in got) == [101, 102, 103, 106]
    assert "dropping node(s) 104, 105 for the round" in caplog.text


def test_no_cut_before_half_replied_or_when_off(caplog):
    grid = LoopbackGrid(echo, 4)
    grid.down = {102, 103, 104}  # 1 of 4 replied: not enough to judge
    with caplog.at_level(logging.WARNING):
        got = list(stream_replies(grid, phase(grid), 0.3, 0.01, Stragglers(4.0, 0.0)))
    assert len(got) == 1 and "3 replies missing after 0 s (timed out)" in caplog.text
    grid.down = {104}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        got = list(stream_replies(grid, phase(grid), 0.3, 0.01, Stragglers(0.0, 0.0)))
    assert len(got) == 3 and "timed out" in caplog.text  # factor 0: off


def test_cutoff_arithmetic():
    rule = Stragglers(factor=4.0, min_s=10.0)
    assert rule.cutoff(100.0, [1.0], 3) == float("inf")  # 1 of 3
    assert rule.cutoff(100.0, [1.0, 2.0], 3) == 110.0  # max(10, 4 x 1.5)
    assert rule.cutoff(100.0, [5.0, 6.0], 4) == 122.0  # 4 x 5.5
    assert Stragglers().cutoff(0.0, [1.0] * 9, 9) == float("inf")


# ------------------------------------- nodes without a registered key (issue 23)
def test_only_nodes_of_registered_keys_are_drawn(caplog):
    from fedmuscle_flwr.serverapp.rounds import eligible_nodes, wait_for_nodes

    keys = {101: "node-1", 102: "node-2"}
    warned: set[int] = set()
    with caplog.at_level(logging.WARNING):
        assert eligible_nodes([103, 101, 102, 104], keys, warned) == [101, 102]
        assert eligible_nodes([104, 101], keys, warned) == [101]
    assert caplog.text.count("never drawn") == 1 and "103, 104" in caplog.text
    assert eligible_nodes([3, 1], {}, set()) == [1, 3]  # no keys: everybody
    # the wait counts registered nodes only: 2 of 4 connected nodes are eligible
    grid = LoopbackGrid(echo, 4)
    only = {101: "node-1", 103: "node-3"}
    nodes = wait_for_nodes(
        grid, 2, 5.0, eligible=lambda c: eligible_nodes(c, only, set())
    )
    assert nodes == [101, 103]
    with pytest.raises(TimeoutError, match="only 2 of the 3"):
        wait_for_nodes(grid, 3, 0.2, eligible=lambda c: eligible_nodes(c, only, set()))


# ------------------------------------------ the reply poll at scale (issue 26)
def test_poll_interval_grows_with_the_pending_nodes_and_is_capped():
    from fedmuscle_flwr.serverapp.rounds import (
        MAX_POLL_S,
        PULL_IDS_PER_S,
        poll_interval,
    )

    assert poll_interval(0.02, 4) == 0.02  # small federations: the configured poll
    assert poll_interval(0.02, 19) == 0.02
    assert poll_interval(0.02, 100) == pytest.approx(100 / PULL_IDS_PER_S)
    assert poll_interval(0.02, 10**6) == MAX_POLL_S
    assert poll_interval(5.0, 10**6) == 5.0  # never below the configured poll


class CountingGrid(LoopbackGrid):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []

    def pull_messages(self, message_ids):
        self.asked.append(len(message_ids))
        return super().pull_messages(message_ids)


def test_many_pending_nodes_are_pulled_less_often():
    """400 silent nodes, a 1 ms poll and a 0.5 s timeout: a fixed 1 ms poll
    would ask about 400 ids several hundred times; the pulls come every 0.4 s
    (400 / PULL_IDS_PER_S) instead, and the timeout still ends the phase."""
    grid = CountingGrid(echo, 400)
    grid.answers_on_push = False  # as a deployment's grid: no pull while pushing
    grid.down = set(grid.get_node_ids())
    got = list(stream_replies(grid, phase(grid), 0.5, 0.001))
    assert got == [] and 1 <= len(grid.asked) <= 3
    assert grid.asked[0] == 400


def test_messages_are_built_while_pushed_a_chunk_at_a_time():
    # A phase's messages come from a generator: the grid sees the first ones
    # before the rest are built, and every reply and destination comes back.
    from fedmuscle_flwr.serverapp.rounds import PUSH_CHUNK

    built: list[int] = []
    seen_when_first_handled: list[int] = []

    def handler(msg: Message, ctx) -> Message:
        if not seen_when_first_handled:
            seen_when_first_handled.append(len(built))
        return Message(RecordDict(), reply_to=msg)

    grid = LoopbackGrid(handler, 2 * PUSH_CHUNK + 7)

    def lazily():
        for n in grid.get_node_ids():
            built.append(n)
            yield Message(RecordDict(), dst_node_id=n, message_type="train")

    sent: dict[str, int] = {}
    got = list(stream_replies(grid, lazily(), 5.0, 0.01, sent=sent))
    assert len(got) == len(built) == 2 * PUSH_CHUNK + 7
    assert seen_when_first_handled == [PUSH_CHUNK]  # not all 135 first
    assert sorted(sent.values()) == sorted(grid.get_node_ids())
    assert {m.metadata.reply_to_message_id for m in got} == set(sent)


def test_replies_stream_in_while_the_phase_is_still_pushed():
    """A grid that answers on push is pulled after each chunk: the first replies
    reach the consumer before the next chunk is built (handled while fresh), and
    a deployment-like grid is pulled only once everything is pushed."""
    from fedmuscle_flwr.serverapp.rounds import PUSH_CHUNK, stream_replies

    for answers_on_push in (True, False):
        grid = CountingGrid(echo, 2 * PUSH_CHUNK + 7)
        grid.answers_on_push = answers_on_push
        built: list[int] = []
        consumed_when_built: list[int] = []

        def lazily(grid=grid, built=built):
            for n in grid.get_node_ids():
                built.append(n)
                yield Message(RecordDict(), dst_node_id=n, message_type="train")

        got, sent = [], {}
        for reply in stream_replies(grid, lazily(), 5.0, 0.01, sent=sent):
            consumed_when_built.append(len(built))
            got.append(reply)
        assert len(got) == 2 * PUSH_CHUNK + 7
        assert {m.metadata.reply_to_message_id for m in got} == set(sent)
        if answers_on_push:  # the first chunk's replies before chunk 2 is built
            assert consumed_when_built[0] == PUSH_CHUNK
            assert grid.asked[:3] == [PUSH_CHUNK, PUSH_CHUNK, 7]
        else:
            assert set(consumed_when_built) == {2 * PUSH_CHUNK + 7}
            assert grid.asked[0] == 2 * PUSH_CHUNK + 7


def test_a_reply_is_matched_to_its_node_while_the_phase_streams():
    """The reply desk looks each reply's node up as it comes (ids pushed since)."""
    from fedmuscle_flwr.method.phases import Phase
    from fedmuscle_flwr.serverapp.calls import PhaseCall
    from fedmuscle_flwr.serverapp.rounds import stream_replies

    grid = LoopbackGrid(echo, 100)
    call = PhaseCall(Phase.TRAIN, 1).lazily(phase(grid))
    seen = []
    for reply in stream_replies(grid, call.outbox(), 5.0, 0.01, sent=call.sent):
        seen.append(call.destination(reply.metadata.reply_to_message_id))
        assert seen[-1] == reply.metadata.src_node_id
    assert sorted(seen) == sorted(grid.get_node_ids())
    assert call.destination("not-a-message-of-this-phase") is None
    built = PhaseCall(Phase.TRAIN, 1).lazily(phase(grid))  # Flower's configure_* way
    ids = list(grid.push_messages(built.messages))
    assert [built.destination(i) for i in ids] == list(grid.get_node_ids())
