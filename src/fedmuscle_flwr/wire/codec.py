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

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedmuscle_flwr.wire.npy import npy_bytes, npy_view

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
    last axis has unit L2 norm. ``keep_dtype``: a float array is returned in
    the dtype it travelled in, as a read-only view of the received bytes (no
    copy, no cast; int8 is still dequantised to float32); otherwise floats are
    returned as float32 and every array as a writable copy.
    """

    shape: tuple[int | None, ...]
    dtypes: tuple[str, ...]
    unit_rows: bool = False
    finite: bool = True
    max_elements: int = 1 << 28  # hard cap for dims left open (``None``)
    keep_dtype: bool = False


def encode(
    arrays: Mapping[str, np.ndarray],
    precision: str = "fp32",
    shared: Mapping[str, Array] | None = None,
) -> ArrayRecord:
    """Numpy arrays -> ArrayRecord; floating arrays are cast to the wire dtype.

    Under ``int8`` floating arrays of rank >= :data:`INT8_MIN_RANK` become int8
    plus ``<key>.scale`` (see the module docstring); lower-rank ones go as fp32.
    ``shared``: keys already encoded (by this function, for every message of a
    phase: the public indices), taken as they are.
    """
    wire = WIRE_DTYPES[precision]
    out = ArrayRecord()  # filled item by item: ArrayRecord(dict) re-creates each Array
    for key, value in arrays.items():
        if shared is not None and key in shared:
            out[key] = shared[key]
            continue
        arr = np.ascontiguousarray(value)
        if np.issubdtype(arr.dtype, np.floating):
            if wire is np.int8 and arr.ndim >= INT8_MIN_RANK:
                arr, scale = quantise_rows(arr)
                out[key + SCALE_SUFFIX] = Array(scale)
            else:
                arr = cast_float(arr, np.float32 if wire is np.int8 else wire)
        out[key] = to_array(arr)
    return out


def to_array(arr: np.ndarray) -> Array:
    """``Array(arr)`` with the same bytes, built in one copy (:mod:`.npy`)."""
    return Array(
        dtype=str(arr.dtype), shape=tuple(arr.shape), stype="numpy.ndarray",
        data=npy_bytes(arr),
    )  # fmt: skip


def cast_float(arr: np.ndarray, dtype: type[np.number]) -> np.ndarray:
    """``arr.astype(dtype)``: float16 <-> float32 through torch (same values).

    numpy converts float16 element by element (~2 ns each); torch's vectorised
    conversion is ~20x faster, and both round to nearest even. No copy when
    ``arr`` already has ``dtype``.
    """
    target = np.dtype(dtype)
    if arr.dtype == target:
        return arr
    halves = {np.dtype(np.float16), np.dtype(np.float32)}
    if {arr.dtype, target} != halves or not arr.size:
        return arr.astype(target)
    with _one_thread():
        return _tensor(arr).to(_TORCH[target]).numpy()


def row_norms(value: np.ndarray) -> np.ndarray:
    """L2 norms of the rows (last axis) in float32; float16 rows convert exactly."""
    with _one_thread():
        norms = torch.linalg.vector_norm(_tensor(value), dim=-1, dtype=torch.float32)
        return norms.numpy()


def _tensor(arr: np.ndarray) -> torch.Tensor:
    """``arr`` as a tensor without a copy (read-only views too: only read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(arr))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: a second one left spinning slows numpy ~30x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_TORCH = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}


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


_R = TypeVar("_R", ArrayRecord, ConfigRecord, MetricRecord)


def record_of(content: RecordDict, key: str, kind: type[_R]) -> _R | None:
    """``content[key]`` if it is a ``kind`` record, else None.

    What ``content.array_records.get(key)`` returns, without building Flower's
    typed view of every record (~60 us per call, several per reply).
    """
    record = content.get(key)
    return record if isinstance(record, kind) else None


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
    if math.prod(shape) > spec.max_elements:
        raise ProtocolError(f"{where}: {math.prod(shape)} elements (oversized)")
    expected = math.prod(shape) * np.dtype(arr.dtype).itemsize
    if len(arr.data) > expected + 4096:
        raise ProtocolError(
            f"{where}: {len(arr.data)} bytes for {expected} bytes of data (oversized)"
        )
    if arr.stype != "numpy.ndarray":
        raise ProtocolError(f"{where}: serialisation {str(arr.stype)[:40]!r} unknown")
    try:
        value = npy_view(arr.data)  # read-only, no copy
    except Exception as exc:  # corrupt payload: report, never crash
        raise ProtocolError(f"{where}: undecodable payload ({exc})") from None
    if value.shape != shape or value.dtype != np.dtype(arr.dtype):
        raise ProtocolError(f"{where}: payload disagrees with its metadata")
    if not np.issubdtype(value.dtype, np.floating):
        return value if spec.keep_dtype else value.copy()
    if not spec.keep_dtype:  # a writable float32 copy
        value = (
            value.copy() if value.dtype == np.float32 else cast_float(value, np.float32)
        )
    return _check_floats(value, spec, where)


def _check_floats(value: np.ndarray, spec: ArraySpec, where: str) -> np.ndarray:
    """Finite values and (if asked) unit-norm rows; returns ``value``.

    The row norms are taken in float32. Unit rows: a finite norm for every row
    means finite values (a NaN or inf makes its row's norm NaN or inf), so the
    values are scanned for NaN/inf only when some norm is not finite.
    """
    norms = row_norms(value) if spec.unit_rows and value.size else None
    scan = norms is None or not np.isfinite(norms).all()
    if spec.finite and scan and not all_finite(value):
        raise ProtocolError(f"{where}: non-finite values (NaN or inf)")
    if norms is not None:
        worst = float(np.abs(norms - 1.0).max())
        if worst > NORM_TOLERANCE:
            raise ProtocolError(f"{where}: rows are not unit-norm (|n-1|={worst:.3g})")
    return value


def all_finite(value: np.ndarray) -> bool:
    """No NaN or inf in a float array (float16: from the exponent bits, no cast)."""
    if value.dtype == np.float16:
        exponent = value.view(np.uint16) & np.uint16(0x7C00)
        return not bool((exponent == 0x7C00).any())
    return bool(np.isfinite(value).all())
