"""Who aligns with whom (phase2.py): the groups of each partner rule."""

from __future__ import annotations

import numpy as np

from fedmuscle_flwr.algorithms import get_algorithm
from fedmuscle_flwr.config import RunConfig
from fedmuscle_flwr.phase2 import Phase2Planner, Uploads

SEG, CLS = "segmentation/fashion-mnist-seg/11", "classification/fashion-mnist/10"


def _planner(algorithm: str) -> Phase2Planner:
    run = RunConfig.from_flat({"algorithm": algorithm, "device": "cpu"})
    return Phase2Planner(run, get_algorithm(algorithm))


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
    means = _planner("fedavg").mean_models(_uploads())
    assert sorted(means) == [1, 2, 4, 5]  # no twin: 3 and 6 train locally


def test_representation_algorithms_take_everybody() -> None:
    assert _planner("fedmuscle").groups(_uploads()) == [[1, 2, 3, 4, 5, 6]]
