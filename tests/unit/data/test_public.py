"""Public sets: sizes, formats, deterministic batches, image/caption alignment."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fedmuscle_flwr.data import registry
from fedmuscle_flwr.data.captions import (
    EMOJI_IMAGE_DIR,
    EMOJI_INDEX,
    rgba_on_white,
    tuxpaint_caption,
)
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.sources import EMOJI, TUXPAINT


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("fashion-mnist-heldout", 5000),
        ("mnist-5k-public", 5000),
        ("digits-public", 1797),
    ],
)
def test_image_public_sets_are_grayscale_uint8(name: str, size: int) -> None:
    public = registry.load_public(name, size)
    assert len(public) == size and public.modalities == frozenset({"image"})
    batch = public.batch(np.arange(0, size, 7), "image")
    assert isinstance(batch, np.ndarray)
    assert batch.shape == (len(range(0, size, 7)), 28, 28) and batch.dtype == np.uint8
    with pytest.raises(ValueError, match="no 'text' modality"):
        public.batch(np.arange(3), "text")
    with pytest.raises(ValueError, match=rf"has {size} samples"):
        registry.load_public(name, size + 1)


def test_public_batches_are_deterministic_and_a_seeded_prefix() -> None:
    big = registry.load_public("fashion-mnist-heldout", 1000)
    small = registry.load_public("fashion-mnist-heldout", 100)
    idx = np.array([5, 0, 99, 5])
    first, second = big.batch(idx, "image"), small.batch(idx, "image")
    assert isinstance(first, np.ndarray) and isinstance(second, np.ndarray)
    assert np.array_equal(first, second)
    assert np.array_equal(first[0], first[3])
    ordered = small.batch(np.arange(100), "image")
    assert isinstance(ordered, np.ndarray)
    natural = (
        registry.PUBLIC["fashion-mnist-heldout"].load().batch(np.arange(100), "image")
    )
    assert not np.array_equal(ordered, natural)  # a permutation, not the first rows


def test_public_size_and_index_errors() -> None:
    with pytest.raises(ValueError):
        registry.load_public("digits-public", 0)
    with pytest.raises(ValueError, match="unknown public set"):
        registry.load_public("fashion-mnist", 10)
    public = registry.load_public("digits-public", 10)
    with pytest.raises(IndexError):
        public.batch(np.array([10]), "image")
    with pytest.raises(ValueError, match="1-D integer"):
        public.batch(np.array([0.5]), "image")


def test_text_only_public_set() -> None:
    public = registry.load_public("wordnet-adj-adv", 2000)
    texts = public.batch(np.arange(10), "text")
    assert isinstance(texts, list) and all(isinstance(t, str) and t for t in texts)
    with pytest.raises(ValueError, match="no 'image' modality"):
        public.batch(np.arange(3), "image")


def test_pairs_stay_aligned_in_memory() -> None:
    images = np.arange(50, dtype=np.uint8)[:, None, None, None] * np.ones(
        (1, 4, 4, 3), dtype=np.uint8
    )
    public = InMemoryPublicData("toy", images, [f"caption {i}" for i in range(50)])
    sub = public.subset(np.array([7, 3, 42]))
    idx = np.array([2, 0])
    img, txt = sub.batch(idx, "image"), sub.batch(idx, "text")
    assert isinstance(img, np.ndarray)
    assert img[:, 0, 0, 0].tolist() == [42, 7] and txt == ["caption 42", "caption 7"]
    with pytest.raises(ValueError, match="captions"):
        InMemoryPublicData("bad", images, ["one"])


def test_rgba_on_white_composites_transparency() -> None:
    clear = Image.new("RGBA", (10, 20), (255, 0, 0, 0))
    red = Image.new("RGBA", (64, 64), (255, 0, 0, 255))
    out = rgba_on_white(clear)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and out.min() == 255
    assert rgba_on_white(red)[10, 10].tolist() == [255, 0, 0]


@pytest.mark.slow
def test_emoji_captions_match_their_images() -> None:
    if not EMOJI.available():
        pytest.skip(f"emoji source absent: {EMOJI.hint('emoji-captions')}")
    public = registry.load_public("emoji-captions", 1911)
    idx = np.arange(0, 1911, 150)
    images, captions = public.batch(idx, "image"), public.batch(idx, "text")
    assert isinstance(images, np.ndarray) and isinstance(captions, list)
    assert images.shape == (len(idx), 64, 64, 3) and images.dtype == np.uint8
    root = EMOJI.location()
    by_name = {
        e["name"].lower(): e["image"]
        for e in json.loads((root / EMOJI_INDEX).read_text(encoding="utf-8"))
    }
    for image, caption in zip(images, captions, strict=True):
        png = Image.open(root / EMOJI_IMAGE_DIR / by_name[caption])
        assert np.array_equal(image, rgba_on_white(png))
    assert "dog face" in public.batch(np.arange(1911), "text")


@pytest.mark.slow
def test_tuxpaint_captions_match_their_images() -> None:
    if not TUXPAINT.available():
        pytest.skip(f"tuxpaint source absent: {TUXPAINT.hint('tuxpaint-captions')}")
    public = registry.load_public("tuxpaint-captions", 785)
    idx = np.arange(0, 785, 60)
    images, captions = public.batch(idx, "image"), public.batch(idx, "text")
    assert isinstance(images, np.ndarray) and isinstance(captions, list)
    assert images.shape == (len(idx), 64, 64, 3)
    pngs = {}
    for png in TUXPAINT.location().rglob("*.png"):
        txt = png.with_suffix(".txt")
        if txt.is_file():
            pngs.setdefault(tuxpaint_caption(txt), []).append(png)
    for image, caption in zip(images, captions, strict=True):
        candidates = [rgba_on_white(Image.open(p)) for p in pngs[caption]]
        assert any(np.array_equal(image, c) for c in candidates)
    mixed = registry.load_public("emoji-tuxpaint-captions", 2696)
    assert len(mixed) == 2696
