"""Error text sent to the server (issue 23): no local paths, no sizes, one line."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.clientapp.sanitize import MAX_CHARS, describe, scrub


@pytest.mark.parametrize(
    ("raw", "leak"),
    [
        ("[Errno 2] No such file or directory: '/srv/alice/xray/train.npz'", "alice"),
        ("cannot open C:\\Users\\bob\\data\\x.pt", "bob"),
        ("cannot open \\\\fileserver\\share\\scan.png", "fileserver"),
        ("see ~/secret/notes.txt", "secret"),
        ("failed: file:///srv/hospital/db.sqlite", "hospital"),
        ("bad image data/ward-7/p0001.png", "ward-7"),
        ("state file is 14680064 bytes", "14680064"),
        ("loaded 1.4 MiB of 2,048 KB", "1.4"),
    ],
)
def test_no_path_or_size_survives(raw, leak):
    out = scrub(raw)
    assert leak not in out
    assert "<path>" in out or "<size>" in out


def test_words_and_names_survive_one_line_bounded():
    text = "public set 'mnist-5k-public' has 5000 samples; asked 6000"
    assert scrub(text) == text  # dataset names, counts: kept
    assert scrub("a\nb\t\tc  ") == "a b c"
    long = scrub("x" * 10_000)
    assert len(long) == MAX_CHARS and long.endswith("...")
    assert describe(ValueError("/etc/x missing")) == "ValueError: <path> missing"
    assert describe(RuntimeError("")) == "RuntimeError"


def test_scrubbed_keeps_the_class_where_it_can():
    from fedmuscle_flwr.clientapp.sanitize import ClientError, scrubbed
    from fedmuscle_flwr.wire.codec import ProtocolError

    err = scrubbed(FileNotFoundError(2, "No such file", "/srv/alice/x.npz"))
    assert type(err) is FileNotFoundError and "alice" not in str(err)
    err = scrubbed(ProtocolError("train instruction: bad /srv/x"))
    assert type(err) is ProtocolError and str(err) == "train instruction: bad <path>"

    class Odd(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a} at /srv/bob/{b}")

    err = scrubbed(Odd(1, "y"))
    assert type(err) is ClientError and "bob" not in str(err)
    assert str(err).startswith("Odd: ")
