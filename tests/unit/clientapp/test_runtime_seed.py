"""A client's phases are repeatable whatever ran before them in the process (dropout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedmuscle_flwr.clientapp.runner import run_phase
from fedmuscle_flwr.clientapp.state import ClientStateStore
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.wire.protocol import ENCODE_INDICES, Instruction


def _profile():
    base = load_profile("mnist5k-mlp")
    data = base.data.model_copy(
        update={"dataset": "digits", "max_train": 96, "max_test": 40}
    )
    data = data.model_copy(
        update={"partition": data.partition.model_copy(update={"scheme": "whole"})}
    )
    task = base.task.model_copy(update={"options": {"dropout": 0.5}})
    # digits-public holds digits images: a deployed client's default policy would
    # refuse it (issue 23); one operator owns this test's client
    policy = ClientPolicy.open()
    return base.model_copy(update={"data": data, "task": task, "policy": policy})


def _train_once(root: Path, burn: int) -> dict[str, torch.Tensor]:
    run = RunConfig.from_flat(
        {"device": "cpu", "muscle.dim": 16, "public.dataset": "digits-public",
         "public.size": 300, "train.batch-size": 16}
    )  # fmt: skip
    ins = Instruction(run, 1, 0, {ENCODE_INDICES: np.zeros((0, 32), np.int64)})
    torch.rand(burn)  # another client's work in the same process
    store = ClientStateStore(root)
    run_phase("train", ins, _profile(), store, "run", node_id=7)
    saved = [p for p in root.rglob("*") if p.is_file()]
    assert len(saved) == 1
    return torch.load(saved[0], weights_only=False)["model"]


def test_train_phase_is_repeatable_after_other_random_work(tmp_path: Path) -> None:
    assert _profile().task.options == {"dropout": 0.5}
    a = _train_once(tmp_path / "a", burn=1)
    b = _train_once(tmp_path / "b", burn=12345)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_the_callers_rng_state_is_restored(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _train_once(tmp_path, burn=0)
    assert torch.equal(torch.rand(3), expected)


def test_the_phase_runs_with_the_runs_thread_count_and_restores_the_callers(
    tmp_path: Path,
) -> None:
    # Prepare: callers with different thread counts (Ray's actor: 1, a shell: all)
    before = torch.get_num_threads()
    models = []
    try:
        for i, caller in enumerate((2, 1)):
            torch.set_num_threads(caller)
            # Execute
            models.append(_train_once(tmp_path / str(i), burn=0))
            # Assert: the caller's count is back
            assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(before)
    assert RunConfig().client_threads == 1
    for key in models[0]:
        assert torch.equal(models[0][key], models[1][key]), key
