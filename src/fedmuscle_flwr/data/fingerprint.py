"""Content hashes of a sample, of a split and of a public set (order included).

Every participant must index the same public samples in the same order; the
server announces :func:`public_fingerprint` of its public set when a run starts
and a client whose own copy hashes differently refuses to take part.

Hashes are of the *decoded* raw samples (the uint8 pixels with their shape, the
UTF-8 text), never of file bytes: the same picture saved as PNG by one
participant and held in memory by another hashes the same, and a re-encoded
file with other pixels does not. :func:`sample_hash` is also what finds a public
sample among a client's private samples (:func:`split_sample_hashes`).

Example
-------
>>> pub = load_public("digits-public", 400)
>>> public_fingerprint(pub)                       # doctest: +SKIP
'pub1-400-9c1f0e...'
>>> set(public_sample_hashes(pub, "image")) & set(split_sample_hashes(split))
set()
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import numpy as np

from fedmuscle_flwr.data.base import Modality, PublicData, RawBatch, Split

#: version tag of the fingerprint scheme (bump if the hashing changes)
SCHEME = "pub1"
#: bytes of one sample hash (hex: twice as many characters)
SAMPLE_DIGEST = 16
#: hex characters of the public fingerprint shown and compared
FINGERPRINT_HEX = 24
#: samples decoded at a time while hashing
HASH_BATCH = 256
#: what a fingerprint looks like: scheme, sample count, hex digest
FINGERPRINT_RE = re.compile(
    rf"{SCHEME}-([1-9][0-9]{{0,9}})-[0-9a-f]{{{FINGERPRINT_HEX}}}"
)


def sample_hash(sample: np.ndarray | str) -> str:
    """Hex blake2b-128 of one raw sample (image: dtype, shape and pixels; text: UTF-8).

    Parameters
    ----------
    sample : np.ndarray | str
        A uint8 image (H, W) or (H, W, 3), or a string.
    """
    h = hashlib.blake2b(digest_size=SAMPLE_DIGEST)
    if isinstance(sample, str):
        h.update(b"text\0")
        h.update(sample.encode("utf-8"))
        return h.hexdigest()
    arr = np.ascontiguousarray(sample)
    h.update(f"image\0{arr.dtype.str}\0{arr.shape}\0".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def batch_hashes(batch: RawBatch) -> list[str]:
    """:func:`sample_hash` of every sample of a raw batch (images or strings)."""
    return [sample_hash(s) for s in batch]


def _chunks(n: int, size: int = HASH_BATCH) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n), dtype=np.int64)


def public_sample_hashes(public: PublicData, modality: Modality) -> list[str]:
    """The hash of every public sample in ``modality``, in the set's order."""
    out: list[str] = []
    for idx in _chunks(len(public)):
        out.extend(batch_hashes(public.batch(idx, modality)))
    return out


def split_sample_hashes(split: Split) -> list[str]:
    """The hash of every input of a private split (decoded batch by batch)."""
    out: list[str] = []
    for idx in _chunks(len(split)):
        out.extend(batch_hashes(split.batch(idx)))
    return out


def public_fingerprint(public: PublicData) -> str:
    """``pub1-<N>-<hex>``: the content hash of the public set, order included.

    The hash runs over the per-sample hashes of every modality the set has
    (sorted modality names), in sample order, so another sample, another order,
    another caption or another size gives another fingerprint. Computed once
    per public-set object (decoding a file set takes a while).
    """
    cached = getattr(public, "_fingerprint", None)
    if isinstance(cached, str):
        return cached
    h = hashlib.blake2b(digest_size=FINGERPRINT_HEX // 2)
    h.update(f"{SCHEME}\0{len(public)}\0".encode())
    for modality in sorted(public.modalities):
        h.update(f"{modality}\0".encode())
        for digest in public_sample_hashes(public, modality):
            h.update(bytes.fromhex(digest))
    fingerprint = f"{SCHEME}-{len(public)}-{h.hexdigest()}"
    public._fingerprint = fingerprint  # type: ignore[attr-defined]
    return fingerprint


def fingerprint_size(text: str) -> int:
    """The sample count a well-formed fingerprint states.

    Raises
    ------
    ValueError
        ``text`` is not ``pub1-<N>-<24 hex>``.
    """
    match = FINGERPRINT_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"not a public-set fingerprint ({SCHEME}-<N>-<{FINGERPRINT_HEX} hex>): "
            f"{text[:80]!r}"
        )
    return int(match.group(1))


def check_fingerprint(public: PublicData, announced: str, who: str = "") -> None:
    """Refuse a public set whose fingerprint is not the server's ``announced`` one.

    Raises
    ------
    PublicSetMismatchError
        One line naming ``who``, both fingerprints and where this copy came from.
    """
    mine = public_fingerprint(public)
    if mine != announced:
        raise PublicSetMismatchError(announced, mine, public.origin, who)


class PublicSetMismatchError(ValueError):
    """A participant's public set is not the server's (other content or order)."""

    def __init__(self, server: str, client: str, origin: str, who: str = "") -> None:
        prefix = f"{who}: " if who else ""
        super().__init__(
            f"{prefix}public set differs from the server's: server fingerprint "
            f"{server}, this client's {client} (read from {origin}); use the same "
            "files in the same order"
        )
        self.server = server
        self.client = client
        self.origin = origin
