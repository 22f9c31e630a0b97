"""Who aligns with whom: each algorithm's ``groups`` and ``relay`` hooks."""

from __future__ import annotations

import numpy as np

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import Algorithm, RelayRequest, Uploads

SEG, CLS = "segmentation/fashion-mnist-seg/11", "classification/fashion-mnist/10"


RUN = RunConfig.from_flat({"device": "cpu"})


def _planner(algorithm: str) -> Algorithm:
    return get_algorithm(algorithm)


def _uploads() -> Uploads:
    small = {"w": np.zeros((2, 2), np.float32)}
    big = {"w": np.zeros((3, 2), np.float32)}
    return Uploads(
        pool=[1, 2, 3, 4, 5, 6],
        bank={},
        label_spaces={1: SEG, 2: SEG, 3: CLS, 4: CLS, 5: CLS, 6: SEG},
        soft_labels={1: "", 2: "", 3: "softmax", 4: "softmax", 5: "softmax", 6: ""},
        models={1: small, 2: small, 3: small, 4: big, 5: big, 6: big},
        examples=dict.fromkeys(range(1, 7), 10.0),
    )


def test_logit_baselines_group_by_label_space_and_skip_segmentation() -> None:
    assert _planner("fedmd").groups(_uploads()) == [[3, 4, 5]]


def test_fedavg_groups_identical_models_of_one_label_space_any_task() -> None:
    groups = _planner("fedavg").groups(_uploads())
    assert sorted(groups) == [[1, 2], [3], [4, 5], [6]]
    batches = np.zeros((0, 32), np.int64)
    means = _planner("fedavg").relay(
        RelayRequest(RUN, _uploads(), batches, 1, 0, range(0))
    )
    assert sorted(means) == [1, 2, 4, 5]  # no twin: 3 and 6 train locally
    assert all(r.weights is not None and not r.arrays for r in means.values())


def test_representation_algorithms_take_everybody() -> None:
    assert _planner("fedmuscle").groups(_uploads()) == [[1, 2, 3, 4, 5, 6]]
