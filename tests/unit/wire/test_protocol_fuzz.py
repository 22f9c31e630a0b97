"""Fuzzing the message decoders: never a crash, never a wrong decode.

Hypothesis feeds the codec and the protocol random bytes behind plausible array
metadata, random arrays (dtypes, shapes, NaN/inf, huge values), records with
keys removed, and random config/metric values. A decoder either raises
:class:`ProtocolError` or returns a result, and then the result is checked
against what was sent by an independent oracle (the same values, shapes and
dtypes the spec allows). Valid messages are generated too: they must round-trip
(equal after decoding, up to the wire precision).
"""

import io
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import NORM_TOLERANCE, ArraySpec, ProtocolError, decode

RUN = RunConfig.from_flat(
    {"muscle.batch-size": 4, "muscle.dim": 8, "eval.probe-size": 4, "public.size": 50}
)
SENT = np.arange(8, dtype=np.int64).reshape(2, 4)  # (K, B) asked of the client
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]
shapes = st.lists(st.integers(-3, 12), min_size=0, max_size=5).map(tuple)


def valid_reply() -> RecordDict:
    z = np.random.default_rng(0).standard_normal((2, 4, 8)).astype(np.float32)
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    reply = p.Reply({"task-loss": 1.0}, {p.CLIENT_NAME: "c"}, z, SENT)
    return p.encode_reply(reply, "fp16")


def npy(value: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    return buf.getvalue()


def decoded_or_rejected(fn, *args, **kwargs) -> Any:
    """``fn``'s result, or None if it raised ProtocolError (anything else fails)."""
    try:
        return fn(*args, **kwargs)
    except ProtocolError:
        return None


def fits(value: np.ndarray, spec: ArraySpec) -> bool:
    """The oracle: does ``value`` satisfy ``spec`` (shape, dtype, finite, unit rows)?"""
    if value.dtype.name not in spec.dtypes or value.ndim != len(spec.shape):
        return False
    if any(
        want is not None and got != want for got, want in zip(value.shape, spec.shape)
    ):
        return False
    if np.issubdtype(value.dtype, np.floating):
        wide = value.astype(np.float64)
        if not np.isfinite(wide).all():
            return False
        if spec.unit_rows:
            norms = np.linalg.norm(wide, axis=-1)
            return bool(np.all(np.abs(norms - 1.0) <= NORM_TOLERANCE))
    return True


def same(decoded: np.ndarray, sent: np.ndarray) -> bool:
    """Decoded equals sent (floats come back as float32)."""
    if np.issubdtype(sent.dtype, np.floating):
        return decoded.dtype == np.float32 and np.array_equal(
            decoded, sent.astype(np.float32)
        )
    return decoded.dtype == sent.dtype and np.array_equal(decoded, sent)


@SETTINGS
@given(
    dtype=st.sampled_from([*DTYPES, "object", "<U3", "junk"]),
    shape=shapes,
    stype=st.sampled_from(["numpy.ndarray", "torch.Tensor", ""]),
    data=st.binary(max_size=600),
)
def test_random_bytes_behind_any_metadata(dtype, shape, stype, data):
    arr = Array(dtype=dtype, shape=shape, stype=stype, data=data)
    record = ArrayRecord({"z": arr})
    for spec in (
        ArraySpec((2, 4, 8), ("float16", "float32"), unit_rows=True),
        ArraySpec((None, 4), ("int64",)),
    ):
        got = decoded_or_rejected(decode, record, {"z": spec}, where="fuzz")
        if got is not None:  # accepted: the bytes really were such an array
            sent = np.load(io.BytesIO(data), allow_pickle=False)
            assert fits(sent, spec) and same(got["z"], sent)


@SETTINGS
@given(
    header_shape=st.lists(st.integers(0, 2**40), min_size=1, max_size=3).map(tuple),
    dtype=st.sampled_from(["float16", "float32", "int64"]),
)
def test_npy_header_lying_about_its_shape(header_shape, dtype):
    # Metadata says (2, 4, 8); the npy header inside the bytes says otherwise
    # (up to 2^40 elements): never an allocation crash, never a wrong decode.
    small = npy(np.zeros((1,), dtype))
    header = small.replace(b"(1,)", repr(header_shape).encode().replace(b" ", b""))
    arr = Array(dtype=dtype, shape=(2, 4, 8), stype="numpy.ndarray", data=header)
    got = decoded_or_rejected(
        decode,
        ArrayRecord({"z": arr}),
        {"z": ArraySpec((2, 4, 8), (dtype,))},
        where="fuzz",
    )
    assert got is None  # one element of data never decodes as (2, 4, 8)


@SETTINGS
@given(
    value=hnp.arrays(
        dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int64]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=9),
        elements={"allow_nan": True, "allow_infinity": True},
    ),
    key=st.sampled_from([p.Z, p.INDICES]),
)
def test_random_arrays_in_a_reply(value, key):
    content = valid_reply()
    content.array_records[p.REPS][key] = Array(value)
    got = decoded_or_rejected(p.decode_reply, content, RUN, SENT, where="fuzz")
    if key == p.Z:
        spec = ArraySpec((2, 4, 8), ("float16", "float32"), unit_rows=True)
        valid = fits(value, spec)
    else:
        valid = value.dtype == np.int64 and np.array_equal(value, SENT)
    assert (got is not None) == valid  # accepted exactly when valid
    if got is not None:
        assert same(got.z if key == p.Z else got.indices, value)


@SETTINGS
@given(
    drop=st.lists(
        st.sampled_from(
            [
                (p.REPS, None),
                (p.METRICS, None),
                (p.CLIENT, None),
                (p.REPS, p.Z),
                (p.REPS, p.INDICES),
            ]
        ),
        min_size=1,
        max_size=3,
        unique=True,
    )
)
def test_missing_records_and_keys_are_protocol_errors(drop):
    content = valid_reply()
    for record, key in drop:
        if key is None:
            if record in content:
                del content[record]
        elif record in content:
            del content.array_records[record][key]
    try:
        p.decode_reply(content, RUN, SENT, where="fuzz")
    except ProtocolError as exc:
        assert "missing" in str(exc)
    else:
        raise AssertionError("a reply with missing parts was accepted")


scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
    st.binary(max_size=20),
)
metric_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
)


@SETTINGS
@given(
    metrics=st.dictionaries(
        st.text(min_size=1, max_size=12), metric_values, max_size=4
    ),
    identity=st.dictionaries(st.text(min_size=1, max_size=12), scalars, max_size=4),
)
def test_random_metric_and_identity_records(metrics, identity):
    content = valid_reply()
    try:
        content[p.METRICS] = MetricRecord(metrics)
        content[p.CLIENT] = ConfigRecord(identity)
    except (TypeError, ValueError):
        assume(False)  # Flower itself refuses to build such a record
    got = decoded_or_rejected(p.decode_reply, content, RUN, SENT, where="fuzz")
    if got is not None:  # accepted: exactly what was sent, as floats / strings
        assert got.metrics == {k: float(v) for k, v in metrics.items()}
        assert got.identity == identity and p.CLIENT_NAME in identity


@SETTINGS
@given(
    run_config=st.one_of(st.text(max_size=60), st.just(RUN.model_dump_json())),
    server_round=scalars,
    step=scalars,
    kind=st.sampled_from([p.TRAIN, p.ALIGN, p.EVALUATE]),
    arrays=st.dictionaries(
        st.sampled_from([p.ENCODE_INDICES, p.STEP_INDICES, p.PARTNERS, "x"]),
        hnp.arrays(
            dtype=st.sampled_from([np.float16, np.float32, np.int64]),
            shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
        ),
        max_size=3,
    ),
)
def test_random_instructions(run_config, server_round, step, kind, arrays):
    cfg = ConfigRecord(
        {p.RUN_CONFIG: run_config, p.SERVER_ROUND: server_round, p.STEP: step}
    )
    content = RecordDict(
        {p.CONFIG: cfg, p.ARRAYS: ArrayRecord({k: Array(v) for k, v in arrays.items()})}
    )
    ins = decoded_or_rejected(p.decode_instruction, content, kind)
    if ins is not None:  # accepted: the config and arrays that were sent
        assert ins.run == RunConfig.model_validate_json(run_config)
        assert (ins.server_round, ins.step) == (int(str(server_round)), int(str(step)))
        assert set(ins.arrays) <= set(arrays)
        assert all(same(ins.arrays[k], arrays[k]) for k in ins.arrays)


def test_list_valued_metric_is_a_protocol_error():
    content = valid_reply()
    content[p.METRICS] = MetricRecord({"task-loss": [1.0, 2.0]})
    with pytest.raises(ProtocolError, match="must be a number"):
        p.decode_reply(content, RUN, SENT, where="fuzz")


# ------------------------------------------------------- valid messages
def unit_rows(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    precision=st.sampled_from(["fp32", "fp16", "int8"]),
    loss=st.floats(-1e6, 1e6),
    name=st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
)
def test_valid_replies_round_trip(seed, precision, loss, name):
    z = unit_rows(seed, (2, 4, 8))
    sent = p.Reply(
        {"task-loss": loss, p.NUM_EXAMPLES: 3.0}, {p.CLIENT_NAME: name}, z, SENT
    )
    got = p.decode_reply(
        p.encode_reply(sent, precision), RUN, SENT, where="t", phase="train"
    )
    assert got.metrics == {"task-loss": loss, p.NUM_EXAMPLES: 3.0}
    assert got.identity == {p.CLIENT_NAME: name}
    assert np.array_equal(got.indices, SENT) and got.z is not None
    if precision == "fp32":
        assert np.array_equal(got.z, z)
    elif precision == "fp16":
        assert np.array_equal(got.z, z.astype(np.float16).astype(np.float32))
    else:  # symmetric int8 with a per-row scale: half a step of the row's peak
        step = np.abs(z).max(axis=-1, keepdims=True) / 127
        assert np.all(np.abs(got.z - z) <= step / 2 + 1e-6)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    server_round=st.integers(0, 10**6),
    step=st.integers(0, 100),
    partners=st.integers(1, 3),
)
def test_valid_align_instructions_round_trip(seed, server_round, step, partners):
    rng = np.random.default_rng(seed)
    arrays = {
        p.STEP_INDICES: rng.integers(0, 50, (1, 4)),
        p.ENCODE_INDICES: rng.integers(0, 50, (1, 4)),
        p.PARTNERS: unit_rows(seed, (1, partners, 4, 8)),
    }
    sent = p.Instruction(RUN, server_round, step, arrays)
    got = p.decode_instruction(p.encode_instruction(sent), p.ALIGN)
    assert (got.run, got.server_round, got.step) == (RUN, server_round, step)
    assert got.algorithm.name == RUN.algorithm and got.weights is None
    assert set(got.arrays) == set(arrays)
    for key in (p.STEP_INDICES, p.ENCODE_INDICES):
        assert same(got.arrays[key], arrays[key])
    fp16 = arrays[p.PARTNERS].astype(np.float16)  # the run's wire precision
    assert same(got.arrays[p.PARTNERS], fp16)
