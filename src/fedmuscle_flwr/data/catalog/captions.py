"""Packaged image-caption public sets: Noto emoji, Tux Paint stamps, both."""

from __future__ import annotations

import numpy as np

from fedmuscle_flwr.data import captions
from fedmuscle_flwr.data.catalog.base import PAIR, public
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.sources import EMOJI, TUXPAINT


@public(
    "emoji-captions",
    PAIR,
    "1911 Noto emoji, 64x64 RGB on white, with lower-cased names",
    EMOJI,
)
def _emoji() -> InMemoryPublicData:
    return InMemoryPublicData("emoji-captions", *captions.emoji_pairs())


@public(
    "tuxpaint-captions",
    PAIR,
    "785 Tux Paint stamps, 64x64 RGB on white, with English captions",
    TUXPAINT,
)
def _tuxpaint() -> InMemoryPublicData:
    return InMemoryPublicData("tuxpaint-captions", *captions.tuxpaint_pairs())


@public(
    "emoji-tuxpaint-captions",
    PAIR,
    "emoji-captions then tuxpaint-captions (2696 pairs)",
    EMOJI,
    TUXPAINT,
)
def _emoji_tuxpaint() -> InMemoryPublicData:
    emoji_x, emoji_t = captions.emoji_pairs()
    tux_x, tux_t = captions.tuxpaint_pairs()
    both = np.concatenate([emoji_x, tux_x])
    return InMemoryPublicData("emoji-tuxpaint-captions", both, emoji_t + tux_t)
