"""wire/npy.py: numpy.save's bytes without extra copies, and a view back of them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flwr.app import Array

from fedmuscle_flwr.wire.npy import MAX_HEADER_BYTES, npy_bytes, npy_view

ARRAYS = [
    np.zeros((2, 3), np.float16),
    np.arange(12, dtype=np.int64).reshape(3, 4),
    np.zeros((0, 32), np.int64),
    np.array(3.0, np.float32),
    np.random.default_rng(0).random((20, 3, 32, 256)).astype(np.float16),
    np.array([True, False]),
    np.zeros((5,), ">f4"),
    np.arange(10)[::3],  # not contiguous
]


@pytest.mark.parametrize("x", ARRAYS, ids=lambda x: f"{x.dtype.str}{x.shape}")
def test_the_bytes_are_numpy_saves_and_read_back_as_a_view(x):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x) if x.ndim else x, allow_pickle=False)
    # the very bytes of numpy.save (so a run's byte counts do not change) ...
    assert npy_bytes(x) == buf.getvalue() == Array(x).data
    # ... read back as a view of those bytes: no copy, read-only
    data = npy_bytes(x)
    got = npy_view(data)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, x)
    assert not got.flags.writeable and (got.size == 0 or got.base is not None)


def test_fortran_order_bytes_read_like_numpy_load():
    x = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    buf = io.BytesIO()
    np.save(buf, x)  # fortran_order: True in the header
    np.testing.assert_array_equal(npy_view(buf.getvalue()), x)


def test_object_arrays_are_never_saved():
    with pytest.raises(ValueError, match="object"):
        npy_bytes(np.array([{}], dtype=object))


def header(descr: str, shape: str, version: bytes = b"\x01\x00") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    body = text.encode().ljust(118) + b"\n"
    return b"\x93NUMPY" + version + len(body).to_bytes(2, "little") + body


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not npy at all",
        npy_bytes(np.zeros(4, np.float16))[:40],  # the header cut short
        npy_bytes(np.zeros(4, np.float16))[:-1],  # one data byte missing
        header("<f2", "(1099511627776,)") + b"\x00" * 8,  # shape far beyond the data
        header("<f2", "(3,)", version=b"\x03\x00") + b"\x00" * 6,  # unknown version
        header("|O", "(1,)") + b"\x00" * 8,  # object dtype
        header("<f2", "__import__('os')") + b"\x00" * 8,  # not a literal
        b"\x93NUMPY\x01\x00" + (MAX_HEADER_BYTES + 1).to_bytes(2, "little"),
    ],
)
def test_malformed_bytes_raise_value_error(data):
    with pytest.raises(ValueError):
        npy_view(data)


def test_trailing_bytes_are_ignored_as_numpy_load_does():
    data = npy_bytes(np.arange(3, dtype=np.int64)) + b"\x00" * 7
    np.testing.assert_array_equal(npy_view(data), np.load(io.BytesIO(data)))


def test_joined_blocks_are_sent_as_the_very_bytes_they_live_in():
    from fedmuscle_flwr.wire.npy import npy_join

    bank = np.random.default_rng(1).random((6, 4, 8)).astype(np.float16)
    joined = npy_join([bank[i] for i in (5, 0, 3, 3)], (2, 2, 4, 8))
    want = np.stack([bank[5], bank[0], bank[3], bank[3]]).reshape(2, 2, 4, 8)
    np.testing.assert_array_equal(joined, want)
    assert not joined.flags.writeable
    data = npy_bytes(joined)
    assert data == Array(want).data  # numpy.save's bytes ...
    assert npy_bytes(joined) is data  # ... with no copy: the bytes it lives in
    # a part of it is not the whole of those bytes: encoded afresh, correctly
    part = joined[1]
    assert npy_bytes(part) == Array(np.ascontiguousarray(want[1])).data
    assert npy_bytes(part) is not data


def test_join_refuses_mixed_or_missing_blocks():
    from fedmuscle_flwr.wire.npy import npy_join

    a, b = np.zeros((2, 3), np.float16), np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="one dtype"):
        npy_join([a, b], (2, 2, 3))
    with pytest.raises(ValueError, match="items"):
        npy_join([a, a], (3, 2, 3))
    with pytest.raises(ValueError, match="contiguous"):  # a strided view
        npy_join([a, np.zeros((3, 2), np.float16).T], (2, 2, 3))
