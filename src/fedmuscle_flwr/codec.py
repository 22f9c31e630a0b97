"""Arrays on the wire: numpy <-> Flower ``ArrayRecord``, with checks before decoding.

Representations travel as fp16 by default (``muscle.precision``); indices as int64.
Every received array is checked against an :class:`ArraySpec` *before* it is
deserialised (dtype, shape and byte size come from the record's metadata), then
for finite values and unit-norm rows. Any violation raises :class:`ProtocolError`
with the key and the reason; nothing partial is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord

#: wire dtype per precision setting
WIRE_DTYPES: Mapping[str, type[np.floating]] = {
    "fp16": np.float16,
    "fp32": np.float32,
}
#: slack on |row norm - 1| accepted for unit-norm payloads (fp16 rounding ~1e-3)
NORM_TOLERANCE = 2e-2


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
    """Numpy arrays -> ArrayRecord; floating arrays are cast to the wire dtype."""
    wire = WIRE_DTYPES[precision]
    out = {}
    for key, value in arrays.items():
        arr = np.ascontiguousarray(value)
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(wire, copy=False)
        out[key] = Array(arr)
    return ArrayRecord(out)


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
        out[key] = _decode_one(record[key], spec, f"{where}: {key!r}")
    return out


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
        value = value.astype(np.float32)
        if spec.finite and not np.isfinite(value).all():
            raise ProtocolError(f"{where}: non-finite values (NaN or inf)")
        if spec.unit_rows and value.size:
            norms = np.linalg.norm(value, axis=-1)
            worst = float(np.abs(norms - 1.0).max())
            if worst > NORM_TOLERANCE:
                raise ProtocolError(
                    f"{where}: rows are not unit-norm (|n-1|={worst:.3g})"
                )
    return value
