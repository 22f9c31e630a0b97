"""Real image–caption pairs for multimodal public sets (emoji, Tux Paint stamps).

Both are decoded once into RGB uint8 (N, 64, 64, 3) images composited on a white
background, plus one English caption per image, and cached as ``.npz`` (after
that the unpacked source is no longer read).

* ``emoji-captions``: npm ``emoji-datasource-google@16.0.0``; the 1,911 base
  emoji (no skin-tone variants) from ``package/img/google/64/``; caption = the
  lower-cased Unicode name from ``emoji.json`` (e.g. ``"dog face"``).
* ``tuxpaint-captions``: Debian ``tuxpaint-stamps-default``; the 785 PNG stamps
  that have a ``.txt`` description; caption = its first (English) line, e.g.
  ``"A red kangaroo."``. Stamps are scaled to fit 64×64, keeping their aspect.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from fedmuscle_flwr.data.cache import Arrays, cache_dir, cached_arrays
from fedmuscle_flwr.data.sources import EMOJI, TUXPAINT

#: bump when a decoder below changes
CAPTIONS_VERSION = "1"
IMAGE_SIZE = 64
EMOJI_IMAGE_DIR = Path("package/img/google/64")
EMOJI_INDEX = Path("package/emoji.json")
_WHITE = (255, 255, 255, 255)


def rgba_on_white(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """Fit ``image`` into a white ``size``² canvas (aspect kept) as RGB uint8.

    Parameters
    ----------
    image : Image.Image
        Any PIL image (transparency is composited on white).
    size : int
        Side of the square output.

    Returns
    -------
    np.ndarray
        uint8 (size, size, 3).
    """
    rgba = image.convert("RGBA")
    if rgba.size != (size, size):
        rgba.thumbnail((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), _WHITE)
    offset = ((size - rgba.width) // 2, (size - rgba.height) // 2)
    canvas.alpha_composite(rgba, dest=offset)
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


def _decode(paths: list[Path], captions: list[str]) -> Arrays:
    images = np.stack([rgba_on_white(Image.open(p)) for p in paths])
    return {"images": images, "captions": np.asarray(captions, dtype=np.str_)}


def _build_emoji() -> Arrays:
    root = EMOJI.require("emoji-captions")
    entries = json.loads((root / EMOJI_INDEX).read_text(encoding="utf-8"))
    paths, captions = [], []
    for entry in sorted(entries, key=lambda e: int(e["sort_order"])):
        path = root / EMOJI_IMAGE_DIR / entry["image"]
        if entry.get("has_img_google") and path.is_file():
            paths.append(path)
            captions.append(" ".join(str(entry["name"]).lower().split()))
    return _decode(paths, captions)


def tuxpaint_caption(txt: Path) -> str:
    """Return a Tux Paint stamp's English description (first non-empty line)."""
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _build_tuxpaint() -> Arrays:
    root = TUXPAINT.require("tuxpaint-captions")
    paths, captions = [], []
    for png in sorted(root.rglob("*.png")):
        txt = png.with_suffix(".txt")
        caption = tuxpaint_caption(txt) if txt.is_file() else ""
        if caption:
            paths.append(png)
            captions.append(caption)
    return _decode(paths, captions)


_BUILDERS = {"emoji-captions": _build_emoji, "tuxpaint-captions": _build_tuxpaint}


@cache
def _bundle(key: str, root: Path) -> tuple[np.ndarray, list[str]]:
    arrays = cached_arrays(key, CAPTIONS_VERSION, _BUILDERS[key])
    return arrays["images"], [str(c) for c in arrays["captions"]]


def emoji_pairs() -> tuple[np.ndarray, list[str]]:
    """Emoji images (N, 64, 64, 3) uint8 and their captions."""
    return _bundle("emoji-captions", cache_dir())


def tuxpaint_pairs() -> tuple[np.ndarray, list[str]]:
    """Tux Paint stamp images (N, 64, 64, 3) uint8 and their captions."""
    return _bundle("tuxpaint-captions", cache_dir())
