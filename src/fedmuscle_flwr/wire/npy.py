"""The ``.npy`` bytes of a Flower ``Array``, read and written without extra copies.

Flower's ``Array`` holds an array as the bytes of ``numpy.save`` (format 1.0: a
header, then the raw data). ``Array.numpy()`` copies those bytes into a fresh
array and ``Array(ndarray)`` writes them through a ``BytesIO`` (two copies).
At 1,000 clients a server moves about a gigabyte of representations per round,
so the codec (:mod:`fedmuscle_flwr.wire.codec`) uses these instead:

* :func:`npy_bytes`: the same bytes as ``numpy.save`` (same header, so the byte
  counts of a run do not change), joined in one copy from the array's memory,
  or none when the array already lives in such bytes (:func:`npy_join`: the
  relay gathers a node's partner rows straight into the bytes it sends);
* :func:`npy_view`: the array of ``numpy.save`` bytes as a read-only *view* of
  them (no copy); anything that is not a well-formed header for the data that
  follows raises :class:`ValueError` (the codec reports it as undecodable).

No Flower here: bytes in, bytes out.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np

#: largest header accepted (numpy's own default for untrusted files)
MAX_HEADER_BYTES = 10_000


@functools.lru_cache(maxsize=256)
def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The format-1.0 header ``numpy.save`` writes for a C-order array."""
    buf = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(dtype)
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    """``numpy.save(arr)``'s bytes, built with one copy of the data.

    Object arrays are refused (never pickled), as ``numpy.save(...,
    allow_pickle=False)`` refuses them. An array that is the whole data of
    such bytes (:func:`npy_join`, :func:`npy_view`) gives those bytes: no copy.
    """
    if arr.dtype.hasobject:
        raise ValueError("object arrays cannot be saved without pickling")
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    header = _header(arr.dtype, tuple(int(s) for s in arr.shape))
    data = _bytes_of(arr, header)
    if data is not None:
        return data
    return b"".join((header, arr.reshape(-1).view(np.uint8).data))


def npy_join(blocks: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """The array of ``shape`` made of ``blocks``, living in ``numpy.save`` bytes.

    One copy from the blocks (C order) into those bytes, which
    :func:`npy_bytes` then sends as they are (a read-only :func:`npy_view`).
    The blocks are C-contiguous arrays of one dtype; their sizes add up to
    ``shape``'s (else :class:`ValueError`). ``bytes.join`` reads each block
    through the buffer protocol (no per-block view objects: the relay joins
    60 blocks per node, 60,000 per round at 1,000 clients).
    """
    dtype = blocks[0].dtype
    if len({b.dtype for b in blocks}) != 1:
        raise ValueError("npy_join takes contiguous blocks of one dtype")
    header = _header(dtype, shape)
    try:  # a block that is not C-contiguous exports no simple buffer
        data = b"".join([header, *(b.data for b in blocks)])
    except TypeError:
        raise ValueError("npy_join takes contiguous blocks of one dtype") from None
    if len(data) != len(header) + math.prod(shape) * dtype.itemsize:
        items = (len(data) - len(header)) // dtype.itemsize
        raise ValueError(f"blocks of {items} items for {shape}")
    return npy_view(data)


def _bytes_of(arr: np.ndarray, header: bytes) -> bytes | None:
    """The bytes object ``arr`` is the whole data of, after ``header``; or None."""
    base = arr.base
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, bytes) or len(base) != len(header) + arr.nbytes:
        return None
    start = np.frombuffer(base, np.uint8).__array_interface__["data"][0]
    if arr.__array_interface__["data"][0] != start + len(header):
        return None
    return base if base.startswith(header) else None


def npy_view(data: bytes) -> np.ndarray:
    """The array stored in ``data`` (``numpy.save`` bytes), as a read-only view.

    Raises
    ------
    ValueError
        Not the npy magic, a header numpy cannot parse or over
        :data:`MAX_HEADER_BYTES`, an object dtype, or fewer data bytes than the
        header's shape needs (trailing bytes are ignored, as ``numpy.load``
        ignores them).
    """
    view = memoryview(data)
    size = _LENGTH_BYTES.get(bytes(view[: len(_MAGIC) + 2]))
    if size is None:
        raise ValueError("not npy format 1.0 or 2.0 data")
    start = len(_MAGIC) + 2 + size
    length = int.from_bytes(view[len(_MAGIC) + 2 : start], "little")
    if length > MAX_HEADER_BYTES or len(data) < start + length:
        raise ValueError(f"npy header of {length} bytes")
    shape, fortran, dtype = _parse_header(bytes(view[: start + length]))
    count = math.prod(shape)
    offset = start + length
    if len(data) - offset < count * dtype.itemsize:
        raise ValueError(
            f"{len(data) - offset} data bytes for {count} items of {dtype.itemsize}"
        )
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    if fortran:
        return flat.reshape(shape[::-1]).transpose()
    return flat.reshape(shape)


_MAGIC = b"\x93NUMPY"
#: magic + version -> bytes of the header length (little-endian)
_LENGTH_BYTES = {_MAGIC + b"\x01\x00": 2, _MAGIC + b"\x02\x00": 4}


@functools.lru_cache(maxsize=256)
def _parse_header(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of a whole header (magic to the newline).

    Cached: every reply of a phase has the same header, and parsing one (a
    Python literal) costs more than checking the data it describes.
    """
    fp = io.BytesIO(head)
    version = np.lib.format.read_magic(fp)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read(fp, max_header_size=MAX_HEADER_BYTES)
    if dtype.hasobject:
        raise ValueError("object arrays are not accepted")
    return tuple(int(s) for s in shape), bool(fortran), dtype
