"""Public-set fingerprints and sample hashes: equal content and order, equal hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedmuscle_flwr.data.base import Split
from fedmuscle_flwr.data.fingerprint import (
    PublicSetMismatchError,
    check_fingerprint,
    public_fingerprint,
    public_sample_hashes,
    sample_hash,
    split_sample_hashes,
)
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.registry import load_public


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 5), dtype=np.uint8)


def test_sample_hash_depends_on_pixels_shape_and_kind() -> None:
    # Prepare
    img = _images(1)[0]
    # Execute / Assert
    assert sample_hash(img) == sample_hash(img.copy())
    assert sample_hash(img) != sample_hash(img.reshape(5, 6))  # same bytes, other shape
    other = img.copy()
    other[0, 0] ^= 1
    assert sample_hash(img) != sample_hash(other)
    assert sample_hash("a cat") != sample_hash("a cat ")
    assert len(sample_hash("x")) == 32


def test_fingerprint_covers_content_order_and_captions() -> None:
    # Prepare
    x = _images(8)
    texts = [f"caption {i}" for i in range(8)]
    base = InMemoryPublicData("p", x, texts)
    # Execute
    fp = public_fingerprint(base)
    # Assert: the same content elsewhere, the same fingerprint
    assert fp == public_fingerprint(InMemoryPublicData("q", x.copy(), list(texts)))
    assert fp.startswith("pub1-8-")
    swapped = base.subset(np.array([1, 0, 2, 3, 4, 5, 6, 7]))
    assert public_fingerprint(swapped) != fp  # order counts
    recaptioned = InMemoryPublicData("p", x, [*texts[:-1], "another"])
    assert public_fingerprint(recaptioned) != fp  # every modality counts
    assert public_fingerprint(base.subset(np.arange(7))) != fp  # size counts


def test_check_fingerprint_refuses_with_one_line_naming_both() -> None:
    # Prepare
    mine = InMemoryPublicData("p", _images(4), origin="imagefolder /data/public")
    server = public_fingerprint(InMemoryPublicData("p", _images(4, seed=1)))
    # Execute
    with pytest.raises(PublicSetMismatchError) as info:
        check_fingerprint(mine, server)
    # Assert
    message = str(info.value)
    assert "\n" not in message
    assert server in message and public_fingerprint(mine) in message
    assert "imagefolder /data/public" in message
    check_fingerprint(mine, public_fingerprint(mine))  # equal: no error


def test_packaged_public_set_exported_to_png_keeps_its_fingerprint(
    tmp_path: Path,
) -> None:
    # Prepare: the whole digits-public pool written as PNGs in pool order
    pool = load_public("digits-public", 1797)
    order = np.argsort(np.random.default_rng(0).permutation(1797))
    unshuffled = pool.batch(order, "image")  # back to the pool's own order
    for i, image in enumerate(unshuffled):
        Image.fromarray(image).save(tmp_path / f"{i:05d}.png")
    # Execute
    packaged = load_public("digits-public", 300)
    from_files = load_public("imagefolder", 300, {"root": str(tmp_path)})
    # Assert: same samples, same order, same fingerprint; origins differ
    assert public_fingerprint(from_files) == public_fingerprint(packaged)
    assert from_files.origin != packaged.origin


def test_split_hashes_find_a_public_sample_in_private_data() -> None:
    # Prepare
    x = _images(6)
    public = InMemoryPublicData("p", x[:3])
    private = Split(x[2:], np.zeros(4, dtype=np.int64))
    # Execute
    shared = set(public_sample_hashes(public, "image")) & set(
        split_sample_hashes(private)
    )
    # Assert
    assert shared == {sample_hash(x[2])}
