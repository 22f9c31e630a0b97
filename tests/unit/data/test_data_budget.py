"""Label budgets (data.per-class) and the validation split carved from train rows."""

from __future__ import annotations

import numpy as np
import pytest

from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data.pipeline import carve_validation, per_class
from fedmuscle_flwr.data.registry import load_private


def test_per_class_keeps_at_most_the_budget_of_each_class() -> None:
    labels = np.repeat(np.arange(3), [10, 4, 7])
    rows = np.arange(len(labels))
    kept = per_class(rows, labels, 5, seed=0)
    assert np.bincount(labels[kept]).tolist() == [5, 4, 5]
    assert np.array_equal(kept, np.sort(kept))
    assert np.array_equal(kept, per_class(rows, labels, 5, seed=0))


def test_validation_is_carved_from_train_rows() -> None:
    rows = np.arange(100, 140)
    train, val = carve_validation(rows, 0.25, seed=3)
    assert len(val) == 10 and len(train) == 30
    assert not set(train) & set(val) and set(train) | set(val) == set(rows)
    with pytest.raises(ValueError, match="cannot be split"):
        carve_validation(rows[:1], 0.5, seed=0)


def test_digits_client_with_budget_and_validation() -> None:
    base = {"dataset": "digits", "partition": {"scheme": "whole"}}
    full = load_private(DataSpec.model_validate({**base, "per-class": 6}))
    assert np.bincount(np.asarray(full.train.y)).tolist() == [6] * 10
    tuned = load_private(
        DataSpec.model_validate({**base, "per-class": 6, "validation": 0.5})
    )
    assert len(tuned.train) == len(tuned.test) == 30  # the test split is not read
    seen = {np.asarray(x).tobytes() for x in np.asarray(full.train.x)}
    assert all(np.asarray(x).tobytes() in seen for x in np.asarray(tuned.test.x))
