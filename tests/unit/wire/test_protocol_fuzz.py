"""Fuzzing the message decoders: bad input raises ProtocolError, nothing else.

Hypothesis feeds the codec and the protocol random bytes behind plausible array
metadata, random arrays (dtypes, shapes, NaN/inf, huge values), records with
keys removed, and random config/metric values. A decoder either returns a valid
result or raises :class:`ProtocolError`; any other exception is a bug.
"""

import io

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import ArraySpec, ProtocolError, decode

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


def only_protocol_errors(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ProtocolError:
        pass  # rejected cleanly; anything else propagates and fails the test


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
        only_protocol_errors(decode, record, {"z": spec}, where="fuzz")


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
    only_protocol_errors(
        decode,
        ArrayRecord({"z": arr}),
        {"z": ArraySpec((2, 4, 8), (dtype,))},
        where="fuzz",
    )


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
    only_protocol_errors(p.decode_reply, content, RUN, SENT, where="fuzz")


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
    only_protocol_errors(p.decode_reply, content, RUN, SENT, where="fuzz")


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
    only_protocol_errors(p.decode_instruction, content, kind)


def test_list_valued_metric_is_a_protocol_error():
    content = valid_reply()
    content[p.METRICS] = MetricRecord({"task-loss": [1.0, 2.0]})
    only_protocol_errors(p.decode_reply, content, RUN, SENT, where="fuzz")
