"""The one phase enum (method/phases.py) and the seed keys it must keep."""

from __future__ import annotations

import zlib

import pytest

from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.method.seeds import STREAM_PRIVACY, STREAM_TORCH, rng_for


def test_message_types_round_trip_and_unknown_ones_are_refused():
    assert [ph.message_type for ph in Phase] == ["train", "train.align", "evaluate"]
    assert all(Phase.of_message_type(ph.message_type) is ph for ph in Phase)
    with pytest.raises(ValueError, match="unknown message type"):
        Phase.of_message_type("train.other")


def test_seed_keys_are_the_recorded_ones():
    # The privacy stream used 0/1/2 and the torch stream crc32(name) before the
    # enum existed; recorded runs stay bit-identical only if these never change.
    assert {ph: ph.noise_key for ph in Phase} == {
        Phase.TRAIN: 0,
        Phase.EVALUATE: 1,
        Phase.ALIGN: 2,
    }
    assert Phase.ALIGN.torch_key == zlib.crc32(b"align") == 3559956683
    assert str(Phase.EVALUATE) == "evaluate" and f"{Phase.TRAIN}" == "train"


def test_streams_of_different_phases_differ():
    draws = {
        ph: rng_for(1, STREAM_TORCH, 7, 1, 0, ph.torch_key).integers(2**62)
        for ph in Phase
    }
    noise = {
        ph: rng_for(1, STREAM_PRIVACY, 7, 1, 0, ph.noise_key).random() for ph in Phase
    }
    assert len(set(draws.values())) == 3 and len(set(noise.values())) == 3
