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
