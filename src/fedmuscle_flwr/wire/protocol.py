"""The FedMuscle message protocol: record keys, instructions and replies.

Three message types travel between the server and a client:

========================  ===========================================================
``train``                 phase 1: E task epochs, then encode public batches
``train.align``           phase 2: Muscle steps against partners, then encode batches
``evaluate``              task metric on the client's test split + probe encodings
========================  ===========================================================

An instruction carries the validated run config (JSON), the round and step, and
arrays (public indices; partner representations). A reply carries the client's
representations of the requested batches, metrics and who the client is.
Decoding validates everything (see :mod:`fedmuscle_flwr.wire.codec`).
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from pydantic import ValidationError

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.data.fingerprint import fingerprint_size
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import (
    REPRESENTATIONS,
    Algorithm,
    Layout,
    Payloads,
)
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.wire.codec import (
    ArraySpec,
    ProtocolError,
    decode,
    decode_open,
    encode,
    record_nbytes,
    record_of,
)
from fedmuscle_flwr.wire.messages import (  # re-exported: p.TRAIN, p.Reply, ...
    _INDEX,
    _WEIGHT_DTYPES,
    AGGREGATE,
    ALIGN,
    ARRAYS,
    CLIENT,
    CLIENT_NAME,
    CONFIG,
    ENCODE_INDICES,
    EVALUATE,
    INDICES,
    LABEL_SPACE,
    LOG_ALPHA,
    MAX_LOGITS,
    METRIC_NAME,
    METRICS,
    MODEL_NAME,
    NUM_EXAMPLES,
    PARTNERS,
    PROBE_INDICES,
    PUBLIC_FINGERPRINT,
    REPLY_SLACK_BYTES,
    REPS,
    RUN_CONFIG,
    SERVER_ROUND,
    SOFT_LABELS,
    STEP,
    STEP_INDICES,
    TASK_KIND,
    TRAIN,
    WEIGHTS,
    Instruction,
    Reply,
    Z,
)
from fedmuscle_flwr.wire.records import (
    ReplyLimits,
    check_sizes,
    validate_identity,
    validate_metrics,
)
from fedmuscle_flwr.wire.refusal import REASON, REFUSAL, RULE, Refusal, RefusalError


# -------------------------------------------------------------- instructions
def instruction_config(ins: Instruction, run_json: str | None = None) -> ConfigRecord:
    """The config record of ``ins``: run config, round, step, public fingerprint.

    The same for every message of a phase: a server builds it once per phase
    (:func:`encode_instruction`'s ``config``) and every receiver only reads it.
    """
    return ConfigRecord(
        {
            RUN_CONFIG: run_json or ins.run.model_dump_json(by_alias=True),
            SERVER_ROUND: ins.server_round,
            STEP: ins.step,
            PUBLIC_FINGERPRINT: ins.public_fingerprint,
        }
    )


def encode_instruction(
    ins: Instruction,
    run_json: str | None = None,
    shared: ArrayRecord | None = None,
    config: ConfigRecord | None = None,
) -> RecordDict:
    """Instruction -> RecordDict (floats in the run's wire precision).

    ``run_json``: ``ins.run`` already dumped (a server sends the same run config in
    every message: dumping it once per run saves ~0.3 ms per message); ``shared``:
    arrays of ``ins`` already encoded for all of a phase (:func:`encode`);
    ``config``: :func:`instruction_config` of ``ins`` already built for all of a
    phase (Flower checks every key of a new record: ~35 us a message).
    """
    cfg = config if config is not None else instruction_config(ins, run_json)
    arrays = encode(ins.arrays, ins.run.muscle.precision, shared)
    content = RecordDict({CONFIG: cfg, ARRAYS: arrays})
    if ins.weights is not None:
        content[WEIGHTS] = encode(ins.weights, "fp32")
    return content


def decode_instruction(content: RecordDict, kind: str) -> Instruction:
    """RecordDict -> validated Instruction for message type ``kind``.

    The arrays are checked against the run's algorithm's declared
    :class:`~fedmuscle_flwr.method.algorithms.base.Payloads` (looked up once:
    the instruction keeps the instance).
    """
    where = f"{kind} instruction"
    try:
        phase = Phase.of_message_type(kind)
    except ValueError as exc:
        raise ProtocolError(f"{where}: {exc}") from None
    cfg = _config(content, CONFIG, where)
    try:
        run = RunConfig.model_validate_json(str(cfg[RUN_CONFIG]))
        server_round, step = int(str(cfg[SERVER_ROUND])), int(str(cfg[STEP]))
    except (KeyError, ValueError, ValidationError) as exc:
        raise ProtocolError(f"{where}: bad config ({exc})") from None
    fingerprint = _fingerprint(cfg, run, where)
    record = record_of(content, ARRAYS, ArrayRecord)
    if record is None:
        raise ProtocolError(f"{where}: missing record {ARRAYS!r}")
    try:
        algorithm = get_algorithm(run.algorithm)
    except ValueError as exc:
        raise ProtocolError(f"{where}: {exc}") from None
    payloads = algorithm.payloads(run.muscle)
    arrays = decode(record, instruction_specs(run, phase, payloads), where=where)
    weights = None
    if phase is Phase.ALIGN and payloads.relay_weights:
        weights = decode_weights(content, run, where)
    return Instruction(run, server_round, step, arrays, weights, algorithm, fingerprint)


def _fingerprint(cfg: ConfigRecord, run: RunConfig, where: str) -> str:
    """The announced public-set fingerprint: '' or one of ``public.size`` samples."""
    value = cfg.get(PUBLIC_FINGERPRINT)
    if not isinstance(value, str):
        raise ProtocolError(
            f"{where}: {PUBLIC_FINGERPRINT!r} must be a string, got "
            f"{type(value).__name__}"
        )
    if not value:
        return ""
    try:
        size = fingerprint_size(value)
    except ValueError as exc:
        raise ProtocolError(f"{where}: {PUBLIC_FINGERPRINT}: {exc}") from None
    if size != run.public.size:
        raise ProtocolError(
            f"{where}: {PUBLIC_FINGERPRINT} covers {size} samples but "
            f"public.size={run.public.size}"
        )
    return value


def decode_weights(
    content: RecordDict, run: RunConfig, where: str
) -> dict[str, np.ndarray]:
    """The :data:`WEIGHTS` record: any keys, float/int64, finite, size-capped."""
    record = record_of(content, WEIGHTS, ArrayRecord)
    if record is None:
        raise ProtocolError(f"{where}: missing record {WEIGHTS!r}")
    limit = int(run.federation.max_weights_mb * 2**20)
    return decode_open(record, _WEIGHT_DTYPES, limit, where=f"{where}: {WEIGHTS!r}")


def array_spec(layout: Layout, run: RunConfig, k: int | None = None) -> ArraySpec:
    """An algorithm's :class:`Layout` as the codec's spec under ``run``.

    ``B`` and ``d`` come from the run, ``K`` from the request (``k``); every
    other axis is free (``C`` is capped by :func:`check_class_axis`).
    """
    sizes = {"B": run.muscle.batch_size, "d": run.muscle.dim, "K": k}
    shape = tuple(sizes.get(a) if a is not None else None for a in layout.axes)
    return ArraySpec(shape, layout.dtypes, unit_rows=layout.unit_rows)


def instruction_specs(
    run: RunConfig, phase: Phase, payloads: Payloads
) -> dict[str, ArraySpec]:
    """Expected arrays of an instruction of ``phase`` under ``run``."""
    b = run.muscle.batch_size
    if phase is Phase.EVALUATE:
        return {PROBE_INDICES: ArraySpec((run.eval.probe_size,), _INDEX)}
    specs = {ENCODE_INDICES: ArraySpec((None, b), _INDEX)}
    if phase is Phase.ALIGN:
        specs[STEP_INDICES] = ArraySpec((None, b), _INDEX)
        specs |= {k: array_spec(v, run) for k, v in payloads.relay.items()}
    return specs


# ------------------------------------------------------------------- replies
def encode_reply(reply: Reply, precision: str) -> RecordDict:
    """Reply -> RecordDict; always carries ``num-examples`` (Flower convention)."""
    metrics = MetricRecord({k: float(v) for k, v in reply.metrics.items()})
    if NUM_EXAMPLES not in metrics:
        metrics[NUM_EXAMPLES] = 0
    arrays: dict[str, np.ndarray] = {}
    if reply.z is not None and reply.indices is not None:
        arrays = {Z: reply.z, INDICES: reply.indices}
    content = RecordDict(
        {
            REPS: encode(arrays, precision),
            METRICS: metrics,
            CLIENT: ConfigRecord(dict(reply.identity)),
        }
    )
    if reply.weights is not None:
        content[WEIGHTS] = encode(reply.weights, "fp32")
    return content


def reply_layout(payloads: Payloads, phase: Phase) -> Layout | None:
    """What a reply of ``phase`` uploads per batch (None: a model, not arrays).

    Evaluation replies carry probe representations whatever the algorithm; of an
    algorithm that uploads its model only the train reply carries it.
    """
    model_up = payloads.upload is None
    if phase is Phase.EVALUATE or (model_up and phase is not Phase.TRAIN):
        return REPRESENTATIONS
    return payloads.upload


def decode_reply_checked(
    content: RecordDict,
    run: RunConfig,
    sent_indices: np.ndarray,
    *,
    where: str,
    phase: Phase,
    algorithm: Algorithm,
) -> Reply:
    """The size limit, checked before anything is decoded, then :func:`decode_reply`."""
    k, b = sent_indices.shape if sent_indices.size else (0, 0)
    upload = reply_layout(algorithm.payloads(run.muscle), phase)
    width = run.muscle.dim if upload is None or upload.axes[-1] == "d" else MAX_LOGITS
    limit = k * b * (4 * width + 12) + REPLY_SLACK_BYTES
    if upload is None:
        limit += int(run.federation.max_weights_mb * 2**20)
    size = sum(record_nbytes(r) for r in content.values() if isinstance(r, ArrayRecord))
    if size > limit:
        raise ProtocolError(
            f"{where}: {size} bytes of arrays, over the {limit} expected (oversized)"
        )
    return decode_reply(
        content, run, sent_indices, where=where, upload=upload, phase=phase
    )


def decode_reply(
    content: RecordDict,
    run: RunConfig,
    sent_indices: np.ndarray,
    *,
    where: str,
    upload: Layout | None = REPRESENTATIONS,
    phase: str | None = None,
) -> Reply:
    """Validate a reply against what was asked (the ``sent_indices`` (K, B)).

    ``upload`` is the layout of what the reply carries per batch (the
    algorithm's :class:`~fedmuscle_flwr.method.algorithms.base.Payloads`):
    representations (K, B, d) unit rows, logits (K, B, C) with
    C <= :data:`MAX_LOGITS`, or None: a :data:`WEIGHTS` record (any keys;
    :func:`decode_weights`). The identity and metrics records are checked
    against their schemas (:mod:`fedmuscle_flwr.wire.records`; per message
    kind when ``phase`` is given). Raises :class:`ProtocolError` on a missing
    key, a record that breaks its schema, a shape or dtype mismatch, non-finite
    or non-unit representations, or indices other than those sent.
    """
    metrics_rec = record_of(content, METRICS, MetricRecord)
    if metrics_rec is None:
        raise ProtocolError(f"{where}: missing record {METRICS!r}")
    identity_rec = _config(content, CLIENT, where)
    limits = reply_limits(run)
    try:
        check_sizes(identity_rec, metrics_rec, limits)
        identity = validate_identity(identity_rec, limits)
        metrics = validate_metrics(metrics_rec, phase, limits)
    except ProtocolError as exc:
        raise ProtocolError(f"{where}: schema: {exc}") from None
    if upload is None:
        return Reply(metrics, identity, weights=decode_weights(content, run, where))
    if sent_indices.size == 0:
        return Reply(metrics, identity)
    record = record_of(content, REPS, ArrayRecord)
    if record is None:
        raise ProtocolError(f"{where}: missing record {REPS!r}")
    k, b = sent_indices.shape  # (K, B): B is the probe size for evaluations
    z_spec = array_spec(upload, run, k)
    z_spec = ArraySpec((k, b, *z_spec.shape[2:]), z_spec.dtypes, z_spec.unit_rows,
                       keep_dtype=True)  # fmt: skip
    got = decode(record, {Z: z_spec, INDICES: ArraySpec((k, b), _INDEX)}, where=where)
    if got[Z].shape[2] > MAX_LOGITS:
        raise ProtocolError(
            f"{where}: {Z!r} has {got[Z].shape[2]} columns, over {MAX_LOGITS}"
        )
    if not np.array_equal(got[INDICES], sent_indices):
        raise ProtocolError(f"{where}: representations of other public indices")
    return Reply(metrics, identity, got[Z], got[INDICES])


def encode_refusal(refusal: Refusal) -> RecordDict:
    """A refusal as the one record of a reply (``wire/refusal.py``)."""
    clipped = refusal.clipped()
    checked = Refusal.checked(clipped.rule, clipped.reason)
    return RecordDict(
        {REFUSAL: ConfigRecord({RULE: checked.rule, REASON: checked.reason})}
    )


def decode_refusal(content: RecordDict, where: str) -> Refusal | None:
    """The reply's refusal, ``None`` if it is no refusal; checked before use.

    A refusal reply holds the :data:`REFUSAL` record only, with exactly its two
    keys; anything else is a :class:`ProtocolError`.
    """
    record = record_of(content, REFUSAL, ConfigRecord)
    if record is None:
        return None
    if set(content.keys()) != {REFUSAL} or set(record.keys()) != {RULE, REASON}:
        raise ProtocolError(
            f"{where}: a refusal carries one record of {RULE}, {REASON}"
        )
    try:
        return Refusal.checked(record[RULE], record[REASON])
    except RefusalError as exc:
        raise ProtocolError(f"{where}: {exc}") from None


def reply_limits(run: RunConfig) -> ReplyLimits:
    """The caps on a reply's identity and metrics records under ``run``."""
    fed = run.federation
    return ReplyLimits(fed.max_reply_keys, fed.max_reply_chars, fed.max_reply_bytes)


def _config(content: RecordDict, key: str, where: str) -> ConfigRecord:
    record = record_of(content, key, ConfigRecord)
    if record is None:
        raise ProtocolError(f"{where}: missing record {key!r}")
    return record


__all__ = [
    "AGGREGATE",
    "ALIGN",
    "ARRAYS",
    "CLIENT",
    "CLIENT_NAME",
    "CONFIG",
    "ENCODE_INDICES",
    "EVALUATE",
    "INDICES",
    "LABEL_SPACE",
    "LOG_ALPHA",
    "MAX_LOGITS",
    "METRICS",
    "METRIC_NAME",
    "MODEL_NAME",
    "NUM_EXAMPLES",
    "PARTNERS",
    "PROBE_INDICES",
    "PUBLIC_FINGERPRINT",
    "REPLY_SLACK_BYTES",
    "REPS",
    "RUN_CONFIG",
    "SERVER_ROUND",
    "SOFT_LABELS",
    "STEP",
    "STEP_INDICES",
    "TASK_KIND",
    "TRAIN",
    "WEIGHTS",
    "Instruction",
    "Reply",
    "Z",
    "decode_instruction",
    "decode_refusal",
    "decode_reply",
    "decode_reply_checked",
    "decode_weights",
    "encode_instruction",
    "encode_refusal",
    "encode_reply",
    "instruction_specs",
    "reply_layout",
]
