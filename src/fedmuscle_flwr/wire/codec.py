"""Arrays on the wire: numpy <-> Flower ``ArrayRecord``, with checks before decoding.

Representations travel as fp16 by default (``muscle.precision``); indices as int64.
Every received array is checked against an :class:`ArraySpec` *before* it is
deserialised (dtype, shape and byte size come from the record's metadata), then
for finite values and unit-norm rows. Any violation raises :class:`ProtocolError`
with the key and the reason; nothing partial is returned.

``int8`` is int8-with-scale: an array of rank >= 3 (stacks of row vectors,
``(..., rows, d)``: representations, partners, S^n) travels as symmetric int8
``q = rint(x / s)`` plus a companion float32 array ``<key>.scale`` holding one
``s = max|row| / 127`` per row, so ``|x - q s| <= s / 2`` elementwise. Lower-rank
floats (log α) travel as fp32 under ``int8``: one scale over a vector of log-weights
would perturb the weights after ``exp``. The receiver accepts an int8 array
wherever a float is expected, checks the scale (float32, one per row, finite,
positive), decodes to float32 and then runs the same checks as for floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord

#: wire dtype per precision setting (``int8`` adds a float32 scale per row)
WIRE_DTYPES: Mapping[str, type[np.number]] = {
    "fp16": np.float16,
    "fp32": np.float32,
    "int8": np.int8,
}
#: slack on |row norm - 1| accepted for unit-norm payloads (fp16 rounding ~1e-3,
#: int8 with a per-row scale ~1e-3 at d = 256)
NORM_TOLERANCE = 2e-2
#: key suffix of the per-row scales of an int8 array (``z`` -> ``z.scale``)
SCALE_SUFFIX = ".scale"
#: largest int8 magnitude used (symmetric: -128 is never produced)
INT8_MAX = 127
#: arrays of at least this rank are quantised under ``int8`` (stacks of rows)
INT8_MIN_RANK = 3


class ProtocolError(ValueError):
    """A message does not match the protocol (missing key, shape, dtype, values)."""


@dataclass(frozen=True)
class ArraySpec:
    """What a received array must look like.

    ``shape`` entries of ``None`` match any size (bounded by ``max_elements``).
    ``dtypes`` lists accepted numpy dtype names. ``unit_rows`` checks that the
    last axis has unit L2 norm.
    """

    shape: tuple[int | None, ...]
    dtypes: tuple[str, ...]
    unit_rows: bool = False
    finite: bool = True
    max_elements: int = 1 << 28  # hard cap for dims left open (``None``)


def encode(arrays: Mapping[str, np.ndarray], precision: str = "fp32") -> ArrayRecord:
    """Numpy arrays -> ArrayRecord; floating arrays are cast to the wire dtype.

    Under ``int8`` floating arrays of rank >= :data:`INT8_MIN_RANK` become int8
    plus ``<key>.scale`` (see the module docstring); lower-rank ones go as fp32.
    """
    wire = WIRE_DTYPES[precision]
    out = {}
    for key, value in arrays.items():
        arr = np.ascontiguousarray(value)
        if np.issubdtype(arr.dtype, np.floating):
            if wire is np.int8 and arr.ndim >= INT8_MIN_RANK:
                arr, scale = quantise_rows(arr)
                out[key + SCALE_SUFFIX] = Array(scale)
            else:
                arr = arr.astype(np.float32 if wire is np.int8 else wire, copy=False)
        out[key] = Array(arr)
    return ArrayRecord(out)


def quantise_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: ``x`` (..., d) -> q (..., d) int8, scale (...) fp32.

    An all-zero row gets scale 1 (q = 0), so every sent scale is positive;
    non-finite rows get a non-finite scale, which the receiver rejects.
    """
    x = x.astype(np.float32, copy=False)
    peak = np.abs(x).max(axis=-1)  # (...)
    scale = np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)  # (...)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        q = np.clip(np.rint(x / scale[..., None]), -INT8_MAX, INT8_MAX)
        q = np.nan_to_num(q, nan=0.0)
    return np.ascontiguousarray(q.astype(np.int8)), scale


def dequantise_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quantise_rows`: q (..., d) int8, scale (...) -> float32."""
    with np.errstate(over="ignore"):  # overflow -> inf, rejected as non-finite
        return q.astype(np.float32) * scale.astype(np.float32)[..., None]


def record_nbytes(record: ArrayRecord) -> int:
    """Bytes of the serialised arrays in ``record`` (what crosses the wire)."""
    return sum(len(arr.data) for arr in record.values())


def decode(
    record: ArrayRecord, specs: Mapping[str, ArraySpec], *, where: str
) -> dict[str, np.ndarray]:
    """Check then decode the arrays named in ``specs`` (all required).

    Parameters
    ----------
    record
        The received record.
    specs
        Expected arrays by key.
    where
        Who sent it / which message, for the error text.

    Returns
    -------
    dict
        Decoded arrays; floating ones as float32.

    Raises
    ------
    ProtocolError
        On the first violation, naming ``where``, the key and the reason.
    """
    out: dict[str, np.ndarray] = {}
    for key, spec in specs.items():
        if key not in record:
            raise ProtocolError(f"{where}: missing array {key!r}")
        if record[key].dtype == "int8" and _takes_floats(spec):
            out[key] = _decode_int8(record, key, spec, where)
        else:
            out[key] = _decode_one(record[key], spec, f"{where}: {key!r}")
    return out


def decode_open(
    record: ArrayRecord, dtypes: tuple[str, ...], max_bytes: int, *, where: str
) -> dict[str, np.ndarray]:
    """Check then decode *every* array of ``record`` (keys not known in advance).

    For model weights: at least one array, at most ``max_bytes`` in all (checked
    before anything is deserialised), each of one of ``dtypes``, finite.
    """
    if not record:
        raise ProtocolError(f"{where}: no arrays")
    size = record_nbytes(record)
    if size > max_bytes:
        raise ProtocolError(f"{where}: {size} bytes, over {max_bytes} (oversized)")
    out: dict[str, np.ndarray] = {}
    for key, arr in record.items():
        spec = ArraySpec((None,) * len(arr.shape), dtypes)
        out[key] = _decode_one(arr, spec, f"{where}: {key!r}")
    return out


def _takes_floats(spec: ArraySpec) -> bool:
    return any(np.issubdtype(np.dtype(name), np.floating) for name in spec.dtypes)


def _decode_int8(
    record: ArrayRecord, key: str, spec: ArraySpec, where: str
) -> np.ndarray:
    """Check q against ``spec`` (as int8) and its scale, dequantise, check floats."""
    who = f"{where}: {key!r}"
    q_spec = ArraySpec(spec.shape, ("int8",), max_elements=spec.max_elements)
    q = _decode_one(record[key], q_spec, f"{who} (int8)")
    scale_key = key + SCALE_SUFFIX
    if scale_key not in record:
        raise ProtocolError(f"{who}: int8 array without its scale {scale_key!r}")
    if q.ndim < 1:
        raise ProtocolError(f"{who}: int8 array without a row axis")
    scale = _decode_one(
        record[scale_key],
        ArraySpec(q.shape[:-1], ("float32",), max_elements=spec.max_elements),
        f"{where}: {scale_key!r} (one float32 scale per row of {key!r})",
    )
    if scale.size and not float(scale.min()) > 0.0:
        raise ProtocolError(
            f"{where}: {scale_key!r}: scales must be > 0 (min {float(scale.min()):.3g})"
        )
    return _check_floats(dequantise_rows(q, scale), spec, who)


def _decode_one(arr: Array, spec: ArraySpec, where: str) -> np.ndarray:
    if arr.dtype not in spec.dtypes:
        raise ProtocolError(f"{where}: dtype {arr.dtype} not in {spec.dtypes}")
    shape = tuple(int(s) for s in arr.shape)
    if len(shape) != len(spec.shape) or any(
        e is not None and e != s for e, s in zip(spec.shape, shape, strict=True)
    ):
        raise ProtocolError(f"{where}: shape {shape} != expected {spec.shape}")
    if int(np.prod(shape)) > spec.max_elements:
        raise ProtocolError(f"{where}: {int(np.prod(shape))} elements (oversized)")
    expected = int(np.prod(shape)) * np.dtype(arr.dtype).itemsize
    if len(arr.data) > expected + 4096:
        raise ProtocolError(
            f"{where}: {len(arr.data)} bytes for {expected} bytes of data (oversized)"
        )
    try:
        value = arr.numpy()
    except Exception as exc:  # corrupt payload: report, never crash
        raise ProtocolError(f"{where}: undecodable payload ({exc})") from None
    if value.shape != shape or value.dtype != np.dtype(arr.dtype):
        raise ProtocolError(f"{where}: payload disagrees with its metadata")
    if np.issubdtype(value.dtype, np.floating):
        value = _check_floats(value.astype(np.float32), spec, where)
    return value


def _check_floats(value: np.ndarray, spec: ArraySpec, where: str) -> np.ndarray:
    """Finite values and (if asked) unit-norm rows; returns ``value``."""
    if spec.finite and not np.isfinite(value).all():
        raise ProtocolError(f"{where}: non-finite values (NaN or inf)")
    if spec.unit_rows and value.size:
        norms = np.linalg.norm(value, axis=-1)
        worst = float(np.abs(norms - 1.0).max())
        if worst > NORM_TOLERANCE:
            raise ProtocolError(f"{where}: rows are not unit-norm (|n-1|={worst:.3g})")
    return value
