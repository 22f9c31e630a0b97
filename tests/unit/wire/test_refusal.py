"""The refusal schema (issue 23): both sides accept only a policy key and one
printable line of bounded length."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.wire.refusal import MAX_REASON, Refusal, RefusalError


def test_a_good_refusal_and_its_line():
    ok = Refusal.checked("policy.caps.reply-mb", "the reply would carry 9 MiB")
    assert ok == Refusal("policy.caps.reply-mb", "the reply would carry 9 MiB")
    assert ok.line() == (
        "refused by client policy: policy.caps.reply-mb: the reply would carry 9 MiB"
    )


@pytest.mark.parametrize(
    ("rule", "reason", "needle"),
    [
        ("uploads", "x", "not a policy key"),  # missing the prefix
        ("policy.", "x", "not a policy key"),
        ("policy.Uploads", "x", "not a policy key"),
        ("policy.a.b.c.d", "x", "not a policy key"),  # deeper than any rule
        ("policy.x" * 40, "x", "not a policy key"),
        (7, "x", "not a policy key"),
        (None, "x", "not a policy key"),
        ("policy.uploads", "", "non-empty"),
        ("policy.uploads", "   ", "non-empty"),
        ("policy.uploads", 3.5, "non-empty"),
        ("policy.uploads", b"bytes", "non-empty"),
        ("policy.uploads", "x" * (MAX_REASON + 1), "characters"),
        ("policy.uploads", "two\nlines", "control characters"),
        ("policy.uploads", "bell\x07", "control characters"),
    ],
)
def test_bad_refusals_are_named(rule, reason, needle):
    with pytest.raises(RefusalError, match=needle):
        Refusal.checked(rule, reason)


def test_clipped_always_passes_the_schema():
    wild = Refusal("policy.algorithms", "algorithm 'x\nevil\x1b[31m" + "y" * 5000)
    out = wild.clipped()
    assert Refusal.checked(out.rule, out.reason) == out
    assert len(out.reason) == MAX_REASON and "\n" not in out.reason
    assert Refusal("policy.uploads", "\n\t").clipped().reason == "refused"


# ------------------------------------------------------- on the wire (Flower records)
def test_refusal_record_roundtrip_and_bad_inputs():
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

    from fedmuscle_flwr.wire.codec import ProtocolError
    from fedmuscle_flwr.wire.protocol import decode_refusal, encode_refusal

    sent = Refusal("policy.caps.dim", "muscle.dim=8192 exceeds this client's cap 2048")
    content = encode_refusal(sent)
    assert decode_refusal(content, "w") == sent
    assert (
        decode_refusal(RecordDict({"metrics": MetricRecord({"a": 1.0})}), "w") is None
    )
    bad = [
        RecordDict({"refusal": ConfigRecord({"rule": "policy.x"})}),  # missing key
        RecordDict({"refusal": ConfigRecord({"rule": "policy.x", "reason": "r",
                                             "extra": "1"})}),  # reserved/extra key
        RecordDict({"refusal": ConfigRecord({"rule": "x", "reason": "r"})}),
        RecordDict({"refusal": ConfigRecord({"rule": "policy.x", "reason": 7})}),
        RecordDict({"refusal": ConfigRecord({"rule": "policy.x",
                                             "reason": "z" * 10_000})}),  # oversized
        RecordDict({"refusal": ConfigRecord({"rule": "policy.x", "reason": "r"}),
                    "reps": ArrayRecord()}),  # a refusal with arrays beside it
    ]  # fmt: skip
    for content in bad:
        with pytest.raises(ProtocolError, match="w: "):
            decode_refusal(content, "w")
