"""The codec's fast paths (issue 26) give what the plain numpy code gave.

float16 <-> float32 through torch (bit for bit), representations kept in their
wire dtype as views of the received bytes, and every check still made: NaN,
inf and non-unit rows are refused with the same messages as before.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedmuscle_flwr.wire.codec import (
    ArraySpec,
    ProtocolError,
    cast_float,
    decode,
    encode,
    row_norms,
)

SPEC = ArraySpec((2, 4, 8), ("float16", "float32"), unit_rows=True)


def unit(*shape: int, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def test_float16_to_float32_is_numpys_bit_for_bit():
    every = np.arange(2**16, dtype=np.uint16).view(np.float16)
    finite_or_inf = ~np.isnan(every)  # NaN payloads may differ; NaN is refused
    want, got = every.astype(np.float32), cast_float(every, np.float32)
    assert got.dtype == np.float32
    assert np.array_equal(want[finite_or_inf].view(np.uint32),
                          got[finite_or_inf].view(np.uint32))  # fmt: skip
    assert np.isnan(got[~finite_or_inf]).all()


def test_float32_to_float16_is_numpys_bit_for_bit():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=2_000_000, dtype=np.uint64).astype(np.uint32)
    halves = np.arange(2**16, dtype=np.uint16).view(np.float16)
    halves = halves[np.isfinite(halves)].astype(np.float64)
    ties = ((halves[:-1] + halves[1:]) / 2).astype(np.float32)  # round-half-even
    for x in (bits.view(np.float32), ties, np.nextafter(ties, np.float32(np.inf))):
        with np.errstate(over="ignore"):
            want = x.astype(np.float16)
        got = cast_float(x, np.float16)
        keep = ~np.isnan(want)
        assert np.array_equal(want[keep].view(np.uint16), got[keep].view(np.uint16))
        assert np.isnan(got[~keep]).all()


def test_the_fast_paths_leave_torchs_threads_as_they_were():
    before = torch.get_num_threads()
    cast_float(unit(3, 8), np.float16)
    row_norms(unit(3, 8).astype(np.float16))
    assert torch.get_num_threads() == before


def test_kept_dtype_is_a_view_of_the_received_bytes():
    z = unit(2, 4, 8)
    record = encode({"z": z}, "fp16")
    kept = decode(record, {"z": ArraySpec(SPEC.shape, SPEC.dtypes, True,
                                          keep_dtype=True)}, where="t")  # fmt: skip
    plain = decode(record, {"z": SPEC}, where="t")
    assert kept["z"].dtype == np.float16 and not kept["z"].flags.writeable
    np.testing.assert_array_equal(kept["z"], z.astype(np.float16))
    # without keep_dtype: a writable float32 copy, as always
    assert plain["z"].dtype == np.float32 and plain["z"].flags.writeable
    np.testing.assert_array_equal(plain["z"], kept["z"].astype(np.float32))
    # int8 still arrives dequantised to float32
    got = decode(encode({"z": z}, "int8"), {"z": ArraySpec(
        SPEC.shape, SPEC.dtypes, True, keep_dtype=True)}, where="t")  # fmt: skip
    assert got["z"].dtype == np.float32


def test_float32_wire_arrays_are_copied_unless_kept():
    record = encode({"z": unit(2, 4, 8)}, "fp32")
    assert decode(record, {"z": SPEC}, where="t")["z"].flags.writeable
    idx = encode({"i": np.arange(8, dtype=np.int64).reshape(2, 4)})
    got = decode(idx, {"i": ArraySpec((2, 4), ("int64",))}, where="t")["i"]
    assert got.flags.writeable  # indices too: callers may write to them


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.nan, "non-finite values"),
        (np.inf, "non-finite values"),
        (-np.inf, "non-finite values"),
        (3.0, "rows are not unit-norm"),  # one entry off: that row's norm
    ],
)
def test_every_bad_value_is_refused_with_its_reason(dtype, keep, bad, message):
    z = unit(2, 4, 8)
    z[1, 2, 3] = bad
    record = encode({"z": z.astype(dtype)}, "fp16" if dtype == np.float16 else "fp32")
    spec = ArraySpec(SPEC.shape, SPEC.dtypes, True, keep_dtype=keep)
    with pytest.raises(ProtocolError, match=message):
        decode(record, {"z": spec}, where="t")


def test_huge_finite_rows_are_not_unit_rows_rather_than_non_finite():
    # squares overflow float32 (inf norm) although every value is finite
    z = unit(2, 4, 8)
    z[0, 0] = 1e30
    with pytest.raises(ProtocolError, match="rows are not unit-norm"):
        decode(encode({"z": z}, "fp32"), {"z": SPEC}, where="t")


def test_row_norms_are_float32_norms_of_the_exact_values():
    z = unit(5, 4, 8, seed=3).astype(np.float16)
    want = np.linalg.norm(z.astype(np.float64), axis=-1)
    got = row_norms(z)
    assert got.dtype == np.float32 and got.shape == (5, 4)
    np.testing.assert_allclose(got, want, rtol=1e-6)
