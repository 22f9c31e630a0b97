"""The partition seed follows the run's seed unless a profile pins it (issue 25).

Before, ``data.partition.seed`` defaulted to 0: the labelled subsets and the test items
were the same in every seed of an experiment, which varied only initialisation and
batch order.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedmuscle_flwr.clientapp.runtime import ClientRuntime
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.data.registry import load_private
from fedmuscle_flwr.launch.preflight import check_federation
from fedmuscle_flwr.method.algorithms import get_algorithm


def _profile(**partition: object) -> ClientProfile:
    base = load_profile("mnist5k-mlp")
    part = base.data.partition.model_copy(update={"scheme": "iid", **partition})
    data = base.data.model_copy(
        update={"dataset": "digits", "per_class": 5, "max_test": 40, "partition": part}
    )
    return base.model_copy(update={"data": data})


def _run(seed: int) -> RunConfig:
    return RunConfig.from_flat(
        {"device": "cpu", "seed": seed, "muscle.dim": 16, "public.dataset":
         "digits-public", "public.size": 300}
    )  # fmt: skip


def test_unset_seed_takes_the_runs_and_a_pinned_one_stays() -> None:
    assert _profile().data.partition.seed is None
    assert _profile().for_run(3).data.partition.seed == 3
    assert _profile(seed=7).for_run(3).data.partition.seed == 7


def test_a_negative_seed_is_refused() -> None:
    with pytest.raises(ConfigError, match="seed"):
        ClientProfile.from_mapping(
            {**_profile().model_dump(by_alias=True), "data": {
                "dataset": "digits", "partition": {"seed": -1}}}
        )  # fmt: skip


def test_the_client_runtime_draws_other_data_for_other_run_seeds() -> None:
    a = ClientRuntime.build(_profile(), _run(0), get_algorithm("local")).data
    b = ClientRuntime.build(_profile(), _run(1), get_algorithm("local")).data
    again = ClientRuntime.build(_profile(), _run(1), get_algorithm("local")).data
    assert not np.array_equal(a.train.x, b.train.x)  # other labelled subset
    assert not np.array_equal(a.test.x, b.test.x)  # other test items
    assert np.array_equal(b.train.x, again.train.x)  # the same seed, the same data
    # a run with seed s reads what the profile pinned to s reads
    pinned = load_private(_profile(seed=1).data)
    assert np.array_equal(pinned.train.x, b.train.x)


def test_a_pinned_seed_gives_the_same_data_in_every_run() -> None:
    a = ClientRuntime.build(_profile(seed=5), _run(0), get_algorithm("local")).data
    b = ClientRuntime.build(_profile(seed=5), _run(1), get_algorithm("local")).data
    assert np.array_equal(a.train.x, b.train.x)
    assert np.array_equal(a.test.x, b.test.x)


def test_twins_stay_disjoint_under_every_run_seed() -> None:
    for seed in (0, 4):
        a = load_private(_profile(num_partitions=2, index=0).for_run(seed).data)
        b = load_private(_profile(num_partitions=2, index=1).for_run(seed).data)
        rows_a = {r.tobytes() for r in a.train.x}
        assert not rows_a & {r.tobytes() for r in b.train.x}


def test_the_preflight_checks_the_runs_draw() -> None:
    """The tiny roster pins no partition seed: the preflight cuts seed 2's shares."""
    base = _run(2)
    fed = base.federation.model_copy(update={"roster": "tiny"})
    profiles = check_federation(
        base.model_copy(update={"federation": fed}), build_models=False
    )
    assert len(profiles) == 3
    assert {p.data.partition.seed for p in profiles} == {2}
