"""Tests of fedmuscle_flwr.method.seeds: every random stream is reproducible and distinct."""

from __future__ import annotations

import numpy as np

from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.method import seeds


def test_same_key_same_stream_other_key_other_stream() -> None:
    a = seeds.rng_for(7, seeds.STREAM_TRAIN, 1, 2).integers(0, 2**31, 8)
    b = seeds.rng_for(7, seeds.STREAM_TRAIN, 1, 2).integers(0, 2**31, 8)
    c = seeds.rng_for(7, seeds.STREAM_TRAIN, 1, 3).integers(0, 2**31, 8)
    d = seeds.rng_for(8, seeds.STREAM_TRAIN, 1, 2).integers(0, 2**31, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_stream_tags_are_distinct() -> None:
    tags = {n: v for n, v in vars(seeds).items() if n.startswith("STREAM_")}
    assert {"STREAM_TRAIN", "STREAM_PRIVACY", "STREAM_REFIT", "STREAM_TORCH"} <= set(
        tags
    )
    assert len(set(tags.values())) == len(tags), tags


def test_client_seed_depends_on_the_name_only() -> None:
    base = load_profile("mnist5k-mlp")
    first = base.model_copy(update={"name": "alice"})
    again = load_profile("mnist5k-cnn").model_copy(update={"name": "alice"})
    other = base.model_copy(update={"name": "bob"})
    assert seeds.client_seed(first) == seeds.client_seed(again)
    assert seeds.client_seed(first) != seeds.client_seed(other)
    assert 0 <= seeds.client_seed(first) < 2**31
