import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedmuscle_flwr import protocol as p
from fedmuscle_flwr.codec import ArraySpec, ProtocolError, decode, encode, record_nbytes
from fedmuscle_flwr.config import RunConfig

RUN = RunConfig.from_flat(
    {
        "muscle.batch-size": 4,
        "muscle.dim": 8,
        "muscle.partners": 2,
        "eval.probe-size": 4,
        "public.size": 50,
    }
)


def unit(*shape, seed=0):
    z = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def reply_content(z, idx, **metrics):
    reply = p.Reply({"task-loss": 1.0, **metrics}, {p.CLIENT_NAME: "c"}, z, idx)
    return p.encode_reply(reply, "fp16")


IDX = np.arange(8, dtype=np.int64).reshape(2, 4)


def test_reply_round_trip_fp16():
    z = unit(2, 4, 8)
    got = p.decode_reply(reply_content(z, IDX), RUN, IDX, where="t")
    assert got.z.dtype == np.float32 and got.z.shape == (2, 4, 8)
    np.testing.assert_allclose(got.z, z, atol=2e-3)
    assert got.metrics["num-examples"] == 0 and got.identity[p.CLIENT_NAME] == "c"


def test_instruction_round_trip_all_kinds():
    partners = unit(3, 2, 4, 8)
    cases = {
        p.TRAIN: {p.ENCODE_INDICES: IDX},
        p.ALIGN: {
            p.ENCODE_INDICES: IDX[:0],
            p.STEP_INDICES: np.vstack([IDX, IDX[:1]]),
            p.PARTNERS: partners,
        },
        p.EVALUATE: {p.PROBE_INDICES: np.arange(4, dtype=np.int64)},
    }
    for kind, arrays in cases.items():
        content = p.encode_instruction(p.Instruction(RUN, 3, 1, arrays))
        ins = p.decode_instruction(content, kind)
        assert ins.run == RUN and ins.server_round == 3 and ins.step == 1
        for key, value in arrays.items():
            np.testing.assert_allclose(ins.arrays[key], value, atol=2e-3)


def _bad_z_records():
    z = unit(2, 4, 8)
    nan = z.copy()
    nan[0, 0, 0] = np.nan
    return {
        "wrong shape": (unit(2, 4, 9), IDX, "shape"),
        "NaN": (nan, IDX, "non-finite"),
        "not unit": (z * 3, IDX, "unit-norm"),
        "other indices": (z, IDX + 1, "other public indices"),
    }


@pytest.mark.parametrize("case", sorted(_bad_z_records()))
def test_bad_replies_are_rejected_clearly(case):
    z, idx, needle = _bad_z_records()[case]
    content = reply_content(z, idx)
    with pytest.raises(ProtocolError, match=needle):
        p.decode_reply(content, RUN, IDX, where="node 7")


def test_wrong_dtype_and_missing_key():
    content = reply_content(unit(2, 4, 8), IDX)
    content.array_records[p.REPS][p.Z] = Array(np.zeros((2, 4, 8), np.int32))
    with pytest.raises(ProtocolError, match="dtype int32"):
        p.decode_reply(content, RUN, IDX, where="n")
    content = reply_content(unit(2, 4, 8), IDX)
    del content.array_records[p.REPS][p.INDICES]
    with pytest.raises(ProtocolError, match="missing array 'indices'"):
        p.decode_reply(content, RUN, IDX, where="n")
    content = reply_content(unit(2, 4, 8), IDX)
    del content[p.METRICS]
    with pytest.raises(ProtocolError, match="missing record 'metrics'"):
        p.decode_reply(content, RUN, IDX, where="n")


def test_oversized_and_corrupt_payloads_never_decode():
    # An array whose bytes exceed what its metadata claims is refused before decoding.
    arr = Array(unit(2, 4, 8).astype(np.float16))
    big = Array(
        dtype=arr.dtype,
        shape=arr.shape,
        stype=arr.stype,
        data=arr.data + b"\0" * 10_000,
    )
    with pytest.raises(ProtocolError, match="oversized"):
        decode(
            ArrayRecord({"z": big}),
            {"z": ArraySpec((2, 4, 8), ("float16",))},
            where="n",
        )
    # Open dimensions are bounded too.
    with pytest.raises(ProtocolError, match="oversized"):
        decode(
            encode({"z": np.zeros((10, 8), np.float32)}),
            {"z": ArraySpec((None, 8), ("float32",), max_elements=40)},
            where="n",
        )
    # Garbage bytes with valid-looking metadata: a clear error, not a crash.
    junk = Array(
        dtype="float16", shape=(2, 4, 8), stype=arr.stype, data=b"\x93NUMPY garbage"
    )
    with pytest.raises(ProtocolError, match="undecodable|disagrees"):
        decode(
            ArrayRecord({"z": junk}),
            {"z": ArraySpec((2, 4, 8), ("float16",))},
            where="n",
        )


def test_bad_instructions():
    content = p.encode_instruction(p.Instruction(RUN, 1, 0, {p.ENCODE_INDICES: IDX}))
    content.config_records[p.CONFIG][p.RUN_CONFIG] = '{"muscle": {"tau": -1}}'
    with pytest.raises(ProtocolError, match="bad config"):
        p.decode_instruction(content, p.TRAIN)
    content = p.encode_instruction(p.Instruction(RUN, 1, 0, {p.ENCODE_INDICES: IDX}))
    with pytest.raises(ProtocolError, match="missing array 'step-indices'"):
        p.decode_instruction(content, p.ALIGN)
    bad = p.encode_instruction(p.Instruction(RUN, 1, 0, {p.ENCODE_INDICES: IDX[:, :3]}))
    with pytest.raises(ProtocolError, match="shape"):
        p.decode_instruction(bad, p.TRAIN)
    empty = RecordDict({p.CONFIG: ConfigRecord({})})
    with pytest.raises(ProtocolError, match="bad config"):
        p.decode_instruction(empty, p.TRAIN)


def test_non_finite_metric_rejected():
    content = reply_content(unit(2, 4, 8), IDX)
    content[p.METRICS] = MetricRecord({"task-loss": float("nan")})
    with pytest.raises(ProtocolError, match="non-finite metric"):
        p.decode_reply(content, RUN, IDX, where="n")


def test_fp16_halves_the_bytes():
    z = unit(5, 32, 256)
    assert record_nbytes(encode({"z": z}, "fp16")) < 0.51 * record_nbytes(
        encode({"z": z}, "fp32")
    )
