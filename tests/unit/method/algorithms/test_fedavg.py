"""FedAvg: the example-weighted mean of architecture twins (brute force)."""

from __future__ import annotations

import numpy as np
import pytest

from fedmuscle_flwr.method.algorithms.fedavg import average_weights, weights_signature


def test_average_is_the_example_weighted_mean_and_ints_take_the_max() -> None:
    rng = np.random.default_rng(0)
    states = [
        {"w": rng.standard_normal((3, 2)).astype(np.float32), "n": np.array(k)}
        for k in (1, 5, 2)
    ]
    examples = [10.0, 30.0, 60.0]
    got = average_weights(states, examples)
    want = sum(e * s["w"].astype(np.float64) for e, s in zip(examples, states)) / 100
    np.testing.assert_allclose(got["w"], want, rtol=1e-6)
    assert got["w"].dtype == np.float32 and int(got["n"]) == 5


def test_average_refuses_different_architectures() -> None:
    a = {"w": np.zeros((2, 2), np.float32)}
    b = {"w": np.zeros((3, 2), np.float32)}
    assert weights_signature(a) != weights_signature(b)
    with pytest.raises(ValueError, match="one architecture"):
        average_weights([a, b], [1.0, 1.0])
