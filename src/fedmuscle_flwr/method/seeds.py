"""Every random stream of a run, keyed by (run seed, purpose, ...): no Flower.

A stream is ``numpy.random.default_rng([seed, purpose, *key])``; the purposes are
distinct constants so that streams never collide, and a round, a client's phase
or a partner draw is reproducible on its own whatever ran before it.
"""

from __future__ import annotations

import zlib

import numpy as np

from fedmuscle_flwr.config.profile import ClientProfile

# server purposes: public batches, partner draws, partner order, the probe batch
STREAM_BATCHES, STREAM_PARTNERS, STREAM_SHUFFLE, STREAM_PROBE = (
    0xB47C,
    0x9A27,
    0x5F1E,
    0x960B,
)
# client purposes (+ client, round, ...)
STREAM_TRAIN = 0x7A11  # batch order of the task epochs
STREAM_PRIVACY = 0x9D1C  # + (client, round, step, phase): upload noise
STREAM_REFIT = 0x4EAD  # + (client, round): batch order of the head re-fit
STREAM_TORCH = 0x70C4  # + (client, round, step, phase): dropout, augmentation


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """A generator for one (seed, ...) purpose."""
    return np.random.default_rng([seed, *key])


def client_seed(profile: ClientProfile) -> int:
    """A stable per-client seed (independent of Flower's random node ids)."""
    return zlib.crc32(profile.name.encode()) & 0x7FFFFFFF
