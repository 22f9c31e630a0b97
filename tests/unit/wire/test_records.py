"""The schemas of a reply's identity and metrics records, and the name bindings.

Unit checks of :mod:`fedmuscle_flwr.wire.records` and :mod:`fedmuscle_flwr.serverapp.names`, and
hypothesis fuzzing: whatever a client puts into the two records, the validators
either return clean values that can never collide with a row's own keys, or
raise :class:`ProtocolError` (never anything else), and :func:`decode_reply`
does the same on whole replies.
"""

import math

import numpy as np
import pytest
from flwr.app import ConfigRecord, MetricRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.serverapp.names import NameBook
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import ProtocolError
from fedmuscle_flwr.wire.records import (
    IDENTITY_KEYS,
    RESERVED,
    ReplyLimits,
    check_name,
    check_sizes,
    validate_identity,
    validate_metrics,
)

LIMITS = ReplyLimits()
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
IDENTITY = {p.CLIENT_NAME: "c0", p.TASK_KIND: "classification", p.MODEL_NAME: "cnn"}


@pytest.mark.parametrize("key", ["phase", "client", "step", "round", "node", "model"])
def test_reserved_metric_names_refused(key):
    with pytest.raises(ProtocolError, match="reserved"):
        validate_metrics({key: 1.0}, "evaluate", LIMITS)


@pytest.mark.parametrize("key", ["phase", "metric", "round", "x" * 10])
def test_identity_keys_outside_the_schema_refused(key):
    with pytest.raises(ProtocolError, match="not one of"):
        validate_identity({**IDENTITY, key: "x"}, LIMITS)


def test_metrics_per_kind():
    assert validate_metrics({"task-loss": 1, "num-examples": 3}, "train", LIMITS) == {
        "task-loss": 1.0,
        "num-examples": 3.0,
    }
    with pytest.raises(ProtocolError, match="not one a train reply"):
        validate_metrics({"accuracy": 0.9}, "train", LIMITS)
    # evaluations carry their task's metrics (open names, still safe ones)
    assert validate_metrics({"mIoU": 0.5, "metric": 0.5}, "evaluate", LIMITS)
    with pytest.raises(ProtocolError, match="not a safe name"):
        validate_metrics({"a b": 0.5}, "evaluate", LIMITS)
    with pytest.raises(ProtocolError, match="non-finite"):
        validate_metrics({"metric": math.inf}, "evaluate", LIMITS)
    with pytest.raises(ProtocolError, match="must be a number"):
        validate_metrics({"metric": True}, "evaluate", LIMITS)


def test_sizes_checked_before_values():
    many = {f"m{i}": 1.0 for i in range(LIMITS.keys + 1)}
    with pytest.raises(ProtocolError, match="max-reply-keys"):
        check_sizes(IDENTITY, many, LIMITS)
    big = {**IDENTITY, p.MODEL_NAME: "x" * (LIMITS.total_bytes + 1)}
    with pytest.raises(ProtocolError, match="max-reply-bytes"):
        check_sizes(big, {}, LIMITS)
    long = {**IDENTITY, p.MODEL_NAME: "x" * (LIMITS.chars + 1)}
    with pytest.raises(ProtocolError, match="max-reply-chars"):
        validate_identity(long, LIMITS)


@pytest.mark.parametrize(
    "name", ["*", "", "../x", "a/b", "-x", ".hidden", "x" * 65, "a b", "é", "server"]
)
def test_unsafe_client_names_refused(name):
    with pytest.raises(ProtocolError, match="not allowed"):
        check_name(name)


def test_caps_configurable_and_validated_once():
    run = RunConfig.from_flat({"federation.max-reply-keys": 16})
    assert p.reply_limits(run).keys == 16
    with pytest.raises(ConfigError, match="max-reply-keys"):
        RunConfig.from_flat({"federation.max-reply-keys": 0})


# ------------------------------------------------------------------ bindings
def test_first_accepted_claim_binds_later_claimant_refused():
    book = NameBook()
    book.claim(1, "c0")
    with pytest.raises(ProtocolError, match="bound to node 1"):
        book.claim(2, "c0")
    with pytest.raises(ProtocolError, match="name change refused"):
        book.claim(1, "c1")
    book.claim(1, "c0")  # the owner again: fine
    assert book.to_json() == {"c0": {"node": 1, "key": ""}}


def test_binding_moves_only_from_a_gone_node_and_never_across_keys():
    connected = {1, 2}
    keys = {1: "node-1", 2: "node-2", 3: "node-1"}
    book = NameBook(key_of=lambda n: keys.get(n, ""))
    book.claim(1, "c0", connected)
    connected.discard(1)  # node 1 left (a SuperNode restart: new node id)
    with pytest.raises(ProtocolError, match="bound to key 'node-1'"):
        book.claim(2, "c0", connected)  # another key: never
    book.claim(3, "c0", connected)  # the same key, new node id: the name moves
    assert book.to_json() == {"c0": {"node": 3, "key": "node-1"}}


def test_bindings_survive_a_round_trip():
    book = NameBook()
    book.claim(5, "a")
    restored = NameBook()
    restored.load(book.to_json())
    with pytest.raises(ProtocolError):
        restored.claim(6, "a", connected={5, 6})
    assert restored.names() == {5: "a"}


# ------------------------------------------------------------------- fuzzing
keys = st.one_of(
    st.sampled_from(sorted(RESERVED | IDENTITY_KEYS | {"metric", "task-loss"})),
    st.text(max_size=80),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
)
values = st.one_of(
    numbers,
    st.text(max_size=300),
    st.binary(max_size=50),
    st.lists(st.floats(), max_size=4),
)
phases = st.sampled_from([None, "train", "align", "evaluate", "other"])


@SETTINGS
@given(st.dictionaries(keys, values, max_size=80), phases)
def test_fuzz_metrics_validator(record, phase):
    try:
        out = validate_metrics(record, phase, LIMITS)
    except ProtocolError:
        return
    assert len(out) <= LIMITS.keys
    assert not set(out) & RESERVED
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())


@SETTINGS
@given(st.dictionaries(keys, values, max_size=12))
def test_fuzz_identity_validator(record):
    try:
        out = validate_identity(record, LIMITS)
    except ProtocolError:
        return
    assert set(out) <= IDENTITY_KEYS and not set(out) & (RESERVED - IDENTITY_KEYS)
    assert all(isinstance(v, str) and len(v) <= LIMITS.chars for v in out.values())
    check_name(out[p.CLIENT_NAME])


RUN = RunConfig.from_flat(
    {"muscle.batch-size": 4, "muscle.dim": 8, "eval.probe-size": 4, "public.size": 50}
)


@SETTINGS
@given(
    st.dictionaries(keys, st.one_of(numbers, st.lists(st.floats(), max_size=3))),
    st.dictionaries(keys, st.one_of(st.text(max_size=300), numbers), max_size=10),
    phases,
)
def test_fuzz_whole_reply_decoder(metrics, identity, phase):
    content = p.encode_reply(p.Reply({}, {p.CLIENT_NAME: "c"}), "fp16")
    try:
        content[p.METRICS] = MetricRecord(metrics)
        content[p.CLIENT] = ConfigRecord(identity)
    except (TypeError, ValueError):
        return  # Flower itself refuses the record: it never reaches us
    sent = np.zeros((0, 0), np.int64)
    try:
        reply = p.decode_reply(content, RUN, sent, where="fuzz", phase=phase)
    except ProtocolError:
        return
    assert not set(reply.metrics) & RESERVED
    assert set(reply.identity) <= IDENTITY_KEYS


def test_names_bound_to_the_registered_keys_of_a_deployment(tmp_path):
    from fedmuscle_flwr.launch.deploy.server import write_node_keys
    from fedmuscle_flwr.serverapp.names import NodeKeys

    # Prepare: the file `fedmuscle server --auth-keys` writes after registering
    path = tmp_path / "node-keys.json"
    write_node_keys(path, ["ecdsa-sha2-nistp384 AAAA node-1", "ecdsa-sha2 BBBB node-2"],
                    [11, 12])  # fmt: skip
    keys = NodeKeys(str(path))
    assert (keys(11), keys(12), keys(13)) == ("node-1", "node-2", "")
    book = NameBook(key_of=keys)
    book.claim(11, "c0", connected=())
    # a resumed SuperLink registered the keys again: new node ids
    write_node_keys(path, ["x AAAA node-1", "x BBBB node-2"], [21, 22])
    with pytest.raises(ProtocolError, match="bound to key 'node-1'"):
        book.claim(22, "c0", connected=())  # node-2's key: never, even with 11 gone
    book.claim(21, "c0", connected=())  # node-1's key under its new id
    assert NodeKeys("")(5) == ""


def test_the_name_index_follows_claims_moves_and_loads():
    # Prepare: an index built early, then kept up to date (never rebuilt per reply)
    book = NameBook()
    book.claim(1, "a")
    assert book.names() == {1: "a"}
    # Execute: a new name, then "a" moves from the gone node 1 to node 3
    book.claim(2, "b")
    book.claim(3, "a", connected={2, 3})
    # Assert
    rebuilt = {b.node: n for n, b in book.bindings.items()}
    assert book.names() == rebuilt == {3: "a", 2: "b"}
    assert book.name_of(1) is None and book.name_of(3) == "a"
    book.load({"x": {"node": 9, "key": ""}})
    assert book.names() == {9: "x"}
