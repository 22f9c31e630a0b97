"""FedMD's consensus L1 against its definition."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.method.algorithms.fedmd import consensus_l1
from tests.unit.method.algorithms._cases import TOL, raw


def test_consensus_l1_is_the_mean_absolute_error_to_the_partners_mean() -> None:
    anchor, partners = raw(4, 3, seed=1), raw(3, 4, 3, seed=2)
    want = sum(
        abs(float(anchor[i, c] - partners[:, i, c].mean()))
        for i in range(4)
        for c in range(3)
    )
    assert abs(float(consensus_l1(anchor, partners)) - want / 12) < TOL


def test_consensus_l1_refuses_bad_shapes_and_no_partner() -> None:
    with pytest.raises(ValueError, match="expected"):
        consensus_l1(raw(4, 3, seed=0), raw(2, 4, 5, seed=1))
    with pytest.raises(ValueError, match="at least one partner"):
        consensus_l1(raw(4, 3, seed=0), raw(0, 4, 3, seed=1))
