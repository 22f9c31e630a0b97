import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms.base import LOGITS
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import (
    ArraySpec,
    ProtocolError,
    decode,
    encode,
    record_nbytes,
)

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
    # the representations stay in the dtype they travelled in: exactly the
    # client's float16 values, a read-only view of the received bytes (no copy)
    assert got.z.dtype == np.float16 and got.z.shape == (2, 4, 8)
    np.testing.assert_array_equal(got.z, z.astype(np.float16))
    assert not got.z.flags.writeable
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


# ---- int8 with a per-row scale
RUN8 = RUN.model_copy(
    update={"muscle": RUN.muscle.model_copy(update={"precision": "int8"})}
)
UNIT_SPEC = ArraySpec((5, 32, 256), ("float16", "float32"), unit_rows=True)


def test_int8_precision_is_a_config_option():
    assert RunConfig.from_flat({"muscle.precision": "int8"}).muscle.precision == "int8"
    with pytest.raises(ValueError, match="precision"):
        RunConfig.from_flat({"muscle.precision": "int4"})


def test_int8_round_trip_error_bound():
    # Prepare: unit rows, one row with a single large entry (the worst case)
    z = unit(5, 32, 256, seed=3)
    z[0, 0] = 0.0
    z[0, 0, 7] = 1.0
    # Execute
    record = encode({"z": z}, "int8")
    got = decode(record, {"z": UNIT_SPEC}, where="t")["z"]
    # Assert: int8 values + one float32 scale per row travel; |x - x̂| <= s/2
    assert record["z"].dtype == "int8" and record["z.scale"].dtype == "float32"
    assert tuple(record["z.scale"].shape) == (5, 32)
    assert got.dtype == np.float32 and got.shape == z.shape
    half_step = np.abs(z).max(axis=-1, keepdims=True) / 127 / 2
    assert (np.abs(got - z) <= half_step * (1 + 1e-5)).all()
    assert np.abs(np.linalg.norm(got, axis=-1) - 1).max() < 5e-3
    np.testing.assert_array_equal(got[0, 0], z[0, 0])  # exact where q = ±127, 0


def test_int8_bytes_are_a_quarter_plus_the_scales():
    z = unit(5, 32, 256)
    n32 = record_nbytes(encode({"z": z}, "fp32"))
    n8 = record_nbytes(encode({"z": z}, "int8"))
    assert n8 < 0.27 * n32
    assert n8 >= z.size + 4 * 5 * 32  # int8 values + fp32 scales


def test_int8_keeps_low_rank_floats_and_indices_exact():
    log_alpha = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    idx = IDX.copy()
    record = encode({"log-alpha": log_alpha, "idx": idx}, "int8")
    assert record["log-alpha"].dtype == "float32" and record["idx"].dtype == "int64"
    assert "log-alpha.scale" not in record and "idx.scale" not in record
    # an int8 array is refused where indices are expected
    bad = encode({"idx": unit(1, 2, 4)}, "int8")
    with pytest.raises(ProtocolError, match="dtype int8"):
        decode(bad, {"idx": ArraySpec((1, 2, 4), ("int64",))}, where="n")


def test_int8_non_unit_rows_and_zero_rows():
    s = np.random.default_rng(1).standard_normal((2, 9, 8)).astype(np.float32) * 5
    s[1, 3] = 0.0
    record = encode({"aggregate": s}, "int8")
    got = decode(
        record, {"aggregate": ArraySpec((None, None, 8), ("float32",))}, where="t"
    )["aggregate"]
    assert record["aggregate.scale"].numpy()[1, 3] == 1.0  # zero row: scale 1, q 0
    np.testing.assert_array_equal(got[1, 3], 0.0)
    bound = np.abs(s).max(axis=-1, keepdims=True) / 254 * (1 + 1e-5)
    assert (np.abs(got - s) <= bound).all()


def test_int8_protocol_round_trips():
    partners = unit(3, 2, 4, 8)
    arrays = {
        p.ENCODE_INDICES: IDX[:0],
        p.STEP_INDICES: np.vstack([IDX, IDX[:1]]),
        p.PARTNERS: partners,
    }
    content = p.encode_instruction(p.Instruction(RUN8, 1, 0, arrays))
    assert content.array_records[p.ARRAYS][p.PARTNERS].dtype == "int8"
    ins = p.decode_instruction(content, p.ALIGN)
    np.testing.assert_allclose(ins.arrays[p.PARTNERS], partners, atol=1 / 254)
    z = unit(2, 4, 8)
    reply = p.Reply({"task-loss": 1.0}, {p.CLIENT_NAME: "c"}, z, IDX)
    got = p.decode_reply(p.encode_reply(reply, "int8"), RUN8, IDX, where="t")
    assert got.z.dtype == np.float32
    np.testing.assert_allclose(got.z, z, atol=1 / 254)


def _with_scale(scale):
    record = encode({"z": unit(5, 32, 256)}, "int8")
    if scale is None:
        del record["z.scale"]
    else:
        record["z.scale"] = Array(scale)
    return record


def _bad_scales():
    ok = np.full((5, 32), 1 / 127, np.float32)
    nan, neg, zero = ok.copy(), ok.copy(), ok.copy()
    nan[2, 3] = np.nan
    neg[0, 0] = -1 / 127
    zero[4, 31] = 0.0
    return {
        "NaN": (nan, r"'z.scale'.*non-finite"),
        "inf": (np.full((5, 32), np.inf, np.float32), r"'z.scale'.*non-finite"),
        "negative": (neg, r"'z.scale': scales must be > 0"),
        "zero": (zero, r"'z.scale': scales must be > 0"),
        "wrong shape": (ok[:, :31], r"'z.scale'.*shape \(5, 31\) != expected"),
        "per array, not per row": (ok[:1, :1].reshape(1), r"'z.scale'.*shape"),
        "wrong dtype": (ok.astype(np.float16), r"'z.scale'.*dtype float16"),
        "missing": (None, r"int8 array without its scale 'z.scale'"),
    }


@pytest.mark.parametrize("case", sorted(_bad_scales()))
def test_int8_bad_scale_is_a_protocol_error(case):
    scale, needle = _bad_scales()[case]
    with pytest.raises(ProtocolError, match=needle):
        decode(_with_scale(scale), {"z": UNIT_SPEC}, where="node 3")


def test_int8_scale_that_breaks_unit_norm_is_rejected():
    # a finite, positive but wrong scale decodes to rows that are not unit-norm
    record = _with_scale(np.full((5, 32), 0.5, np.float32))
    with pytest.raises(ProtocolError, match="'z': rows are not unit-norm"):
        decode(record, {"z": UNIT_SPEC}, where="n")
    # a scale that overflows float32 after dequantisation is non-finite
    record = _with_scale(np.full((5, 32), 3e37, np.float32))
    with pytest.raises(ProtocolError, match="'z': non-finite"):
        decode(record, {"z": UNIT_SPEC}, where="n")


def test_int8_wrong_shape_of_the_values():
    record = encode({"z": unit(5, 32, 255)}, "int8")
    with pytest.raises(ProtocolError, match=r"'z' \(int8\): shape"):
        decode(record, {"z": UNIT_SPEC}, where="n")


# ------------------------------------------------ logit-space baselines (fedmd, ...)
RUN_LOGITS = RUN.model_copy(update={"algorithm": "feddf"})


def _logits(*shape, seed=0):
    return (5 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def test_logit_reply_round_trips_any_width_without_unit_rows():
    z = _logits(2, 4, 10)
    got = p.decode_reply(
        reply_content(z, IDX), RUN_LOGITS, IDX, where="t", upload=LOGITS
    )
    assert got.z.shape == (2, 4, 10)
    np.testing.assert_allclose(got.z, z, rtol=2e-3, atol=1e-2)
    with pytest.raises(ProtocolError, match="unit-norm"):  # representations still are
        p.decode_reply(reply_content(_logits(2, 4, 8), IDX), RUN_LOGITS, IDX, where="t")


def _bad_logit_records():
    nan = _logits(2, 4, 10)
    nan[1, 2, 3] = np.inf
    return {
        "wrong batch": (_logits(2, 3, 10), IDX, "shape"),
        "wrong rank": (_logits(2, 4, 10, 1), IDX, "shape"),
        "non-finite": (nan, IDX, "non-finite"),
        "too wide": (_logits(1, 4, p.MAX_LOGITS + 1), IDX[:1], "columns, over"),
        "other indices": (_logits(2, 4, 10), IDX + 1, "other public indices"),
    }


@pytest.mark.parametrize("case", sorted(_bad_logit_records()))
def test_bad_logit_replies_are_rejected_clearly(case):
    z, idx, needle = _bad_logit_records()[case]
    sent = IDX[: len(idx)]
    with pytest.raises(ProtocolError, match=needle):
        p.decode_reply(
            reply_content(z, idx), RUN_LOGITS, sent, where="node 7", upload=LOGITS
        )


def test_logit_reply_wrong_dtype_and_missing_key():
    content = reply_content(_logits(2, 4, 10), IDX)
    content.array_records[p.REPS][p.Z] = Array(np.zeros((2, 4, 10), np.int64))
    with pytest.raises(ProtocolError, match="dtype int64"):
        p.decode_reply(content, RUN_LOGITS, IDX, where="n", upload=LOGITS)
    content = reply_content(_logits(2, 4, 10), IDX)
    del content.array_records[p.REPS][p.Z]
    with pytest.raises(ProtocolError, match="missing array 'z'"):
        p.decode_reply(content, RUN_LOGITS, IDX, where="n", upload=LOGITS)


def test_logit_align_instruction_carries_partner_logits():
    partners = _logits(3, 2, 4, 10)  # (S, M, B, C): not unit rows, C != d
    arrays = {
        p.ENCODE_INDICES: IDX[:0],
        p.STEP_INDICES: np.vstack([IDX, IDX[:1]]),
        p.PARTNERS: partners,
    }
    content = p.encode_instruction(p.Instruction(RUN_LOGITS, 1, 0, arrays))
    ins = p.decode_instruction(content, p.ALIGN)
    np.testing.assert_allclose(ins.arrays[p.PARTNERS], partners, rtol=2e-3, atol=1e-2)
    bad = dict(arrays, **{p.PARTNERS: _logits(3, 2, 5, 10)})
    content = p.encode_instruction(p.Instruction(RUN_LOGITS, 1, 0, bad))
    with pytest.raises(ProtocolError, match="shape"):
        p.decode_instruction(content, p.ALIGN)


# ------------------------------------------------------------- fedavg: weights
RUN_AVG = RUN.model_copy(update={"algorithm": "fedavg"})


def _weights_content(weights):
    reply = p.Reply({"task-loss": 1.0}, {p.CLIENT_NAME: "c"}, weights=weights)
    return p.encode_reply(reply, "fp16")


def _state():
    rng = np.random.default_rng(0)
    return {
        "encoder.w": rng.standard_normal((4, 3)).astype(np.float32),
        "bn.running_var": np.ones(3, np.float32),
        "bn.num_batches_tracked": np.array(7, np.int64),
    }


def test_weights_round_trip_exactly_in_fp32_whatever_the_precision():
    got = p.decode_reply(
        _weights_content(_state()), RUN_AVG, IDX[:0], where="t", upload=None
    )
    assert got.weights.keys() == _state().keys()
    for key, value in _state().items():
        np.testing.assert_array_equal(got.weights[key], value)
    assert got.weights["bn.num_batches_tracked"].dtype == np.int64


def test_mean_model_instruction_round_trips():
    none = IDX[:0]
    arrays = {p.ENCODE_INDICES: none, p.STEP_INDICES: none}
    content = p.encode_instruction(p.Instruction(RUN_AVG, 2, 0, arrays, _state()))
    ins = p.decode_instruction(content, p.ALIGN)
    np.testing.assert_array_equal(ins.weights["encoder.w"], _state()["encoder.w"])
    del content[p.WEIGHTS]
    with pytest.raises(ProtocolError, match="missing record 'weights'"):
        p.decode_instruction(content, p.ALIGN)


def _bad_weights():
    nan = _state()
    nan["encoder.w"][1, 1] = np.nan
    wrong_dtype = _state() | {"mask": np.ones(3, np.uint8)}
    return {
        "NaN": (nan, "non-finite"),
        "wrong dtype": (wrong_dtype, "dtype uint8"),
        "empty": ({}, "no arrays"),
    }


@pytest.mark.parametrize("case", sorted(_bad_weights()))
def test_bad_weights_are_rejected_clearly(case):
    weights, needle = _bad_weights()[case]
    with pytest.raises(ProtocolError, match=needle):
        p.decode_reply(
            _weights_content(weights), RUN_AVG, IDX[:0], where="node 7", upload=None
        )


def test_missing_and_oversized_weights_are_rejected():
    content = _weights_content(_state())
    del content[p.WEIGHTS]
    with pytest.raises(ProtocolError, match="missing record 'weights'"):
        p.decode_reply(content, RUN_AVG, IDX[:0], where="n", upload=None)
    small = RUN_AVG.model_copy(
        update={
            "federation": RUN.federation.model_copy(update={"max_weights_mb": 1e-5})
        }
    )
    with pytest.raises(ProtocolError, match="oversized"):
        p.decode_reply(
            _weights_content(_state()), small, IDX[:0], where="n", upload=None
        )


# ------------------------------------------------- public-set fingerprint
FP = "pub1-50-" + "0123456789abcdef01234567"


def _with_fingerprint(value):
    content = p.encode_instruction(
        p.Instruction(RUN, 1, 0, {p.ENCODE_INDICES: IDX}, public_fingerprint=FP)
    )
    content.config_records[p.CONFIG][p.PUBLIC_FINGERPRINT] = value
    return content


def test_public_fingerprint_round_trips_and_may_be_absent():
    content = p.encode_instruction(
        p.Instruction(RUN, 1, 0, {p.ENCODE_INDICES: IDX}, public_fingerprint=FP)
    )
    assert p.decode_instruction(content, p.TRAIN).public_fingerprint == FP
    none = p.encode_instruction(p.Instruction(RUN, 1, 0, {p.ENCODE_INDICES: IDX}))
    assert p.decode_instruction(none, p.TRAIN).public_fingerprint == ""


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (7, "must be a string"),
        (b"pub1", "must be a string"),
        ("pub1-50-xyz", "not a public-set fingerprint"),
        ("pub2-50-0123456789abcdef01234567", "not a public-set fingerprint"),
        ("pub1-50-0123456789ABCDEF01234567", "not a public-set fingerprint"),
        ("pub1-49-0123456789abcdef01234567", "covers 49 samples but public.size=50"),
        ("pub1-50-0123456789abcdef01234567" + "0" * 10_000, "not a public-set"),
        ("pub1-050-0123456789abcdef01234567", "not a public-set fingerprint"),
    ],
)
def test_bad_public_fingerprints_are_protocol_errors(value, fragment):
    with pytest.raises(ProtocolError, match=fragment) as exc:
        p.decode_instruction(_with_fingerprint(value), p.TRAIN)
    assert len(str(exc.value)) < 400  # an oversized value is never echoed whole


def test_missing_public_fingerprint_key_is_a_protocol_error():
    content = _with_fingerprint(FP)
    del content.config_records[p.CONFIG][p.PUBLIC_FINGERPRINT]
    with pytest.raises(ProtocolError, match="'public-fingerprint' must be a string"):
        p.decode_instruction(content, p.TRAIN)


def test_a_pre_dumped_run_config_gives_the_same_instruction():
    # Prepare: the server dumps the run once and passes it to every instruction
    ins = p.Instruction(RUN, 2, 0, {p.ENCODE_INDICES: IDX})
    # Execute
    once = p.encode_instruction(ins, RUN.model_dump_json(by_alias=True))
    each = p.encode_instruction(ins)
    # Assert
    assert dict(once[p.CONFIG]) == dict(each[p.CONFIG])
    got = p.decode_instruction(once, p.TRAIN)
    assert got.run == RUN and got.server_round == 2
