"""Warm client runtimes (client.RuntimeCache): built once per run, same results."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fedmuscle_flwr.clientapp.runner import RuntimeCache, run_phase
from fedmuscle_flwr.clientapp.state import ClientStateStore
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.wire.messages import ENCODE_INDICES, PROBE_INDICES, Instruction

BUILD = "fedmuscle_flwr.models.client_model"


def _profile(name: str = "mnist5k-mlp"):
    base = load_profile(name)
    data = base.data.model_copy(
        update={"dataset": "digits", "max_train": 96, "max_test": 40}
    )
    data = data.model_copy(
        update={"partition": data.partition.model_copy(update={"scheme": "whole"})}
    )
    # digits-public holds digits images: a deployed client's default policy would
    # refuse it (issue 23); one operator owns this test's client
    return base.model_copy(update={"data": data, "policy": ClientPolicy.open()})


RUN = RunConfig.from_flat(
    {"device": "cpu", "muscle.dim": 16, "public.dataset": "digits-public",
     "public.size": 300, "train.batch-size": 16, "num-rounds": 3}
)  # fmt: skip


def _rounds(
    root: Path, cache: RuntimeCache | None, rounds: int = 3, name: str = "mnist5k-mlp"
) -> list[float]:
    """train + evaluate per round; the evaluation metrics."""
    store, profile, metrics = ClientStateStore(root), _profile(name), []
    encode = {ENCODE_INDICES: np.arange(32, dtype=np.int64).reshape(2, 16)}
    probe = {PROBE_INDICES: np.arange(8, dtype=np.int64)}
    for rnd in range(1, rounds + 1):
        run_phase("train", Instruction(RUN, rnd, 0, encode), profile, store, "r", 1,
                  cache)  # fmt: skip
        reply = run_phase("evaluate", Instruction(RUN, rnd, 0, probe), profile,
                          store, "r", 1, cache)  # fmt: skip
        metrics.append(reply.metrics["metric"])
        metrics.append(reply.metrics.get("metric-running-stats", -1.0))
    return metrics


def _builds(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.name == BUILD and r.getMessage().startswith("model ")
               for r in caplog.records)  # fmt: skip


def test_warm_runtime_is_built_once_and_gives_the_cold_results(tmp_path, caplog):
    # Execute: the same 3 rounds built per message (cold) and kept warm
    with caplog.at_level(logging.DEBUG, logger=BUILD):
        cold = _rounds(tmp_path / "cold", None)
        cold_builds = _builds(caplog)
        caplog.clear()
        warm = _rounds(tmp_path / "warm", RuntimeCache())
        warm_builds = _builds(caplog)
    # Assert: one build instead of one per message; identical metrics and states
    assert cold_builds == 6 and warm_builds == 1
    assert warm == cold
    a = torch.load(next((tmp_path / "cold").rglob("*.pt")), weights_only=False)
    b = torch.load(next((tmp_path / "warm").rglob("*.pt")), weights_only=False)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_a_warm_batchnorm_model_keeps_no_statistics_of_an_evaluation(tmp_path):
    # Prepare: a model with BatchNorm, whose evaluation re-estimates the running
    # statistics (eval.norm-stats = "recompute", the default) and saves no state
    assert "cnn" in _profile("mnist5k-cnn").model.backbone
    # Execute
    cold = _rounds(tmp_path / "cold", None, name="mnist5k-cnn")
    warm = _rounds(tmp_path / "warm", RuntimeCache(), name="mnist5k-cnn")
    # Assert: the metric with the running statistics as trained (not as last
    # re-estimated) matches the cold client's in every round
    assert -1.0 not in cold
    assert warm == cold


def test_a_state_written_by_someone_else_is_reloaded(tmp_path, caplog):
    # Prepare: a warm runtime after round 1
    cache, root = RuntimeCache(), tmp_path / "s"
    _rounds(root, cache, rounds=1)
    # Execute: another process rewrites the state file (e.g. a stock SuperNode's
    # flwr-clientapp serving the same client), then the warm client goes on
    path = next(root.rglob("*.pt"))
    ClientStateStore(root).save("r", int(path.stem.split("-")[1]),
                                torch.load(path, weights_only=False))  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger=BUILD):
        _rounds(root, cache, rounds=1)
    # Assert: the cached runtime was not trusted: rebuilt from the file
    assert _builds(caplog) == 1


def test_another_run_config_is_not_served_from_the_cache(tmp_path, caplog):
    cache, root = RuntimeCache(), tmp_path / "s"
    _rounds(root, cache, rounds=1)
    other = RUN.model_copy(update={"seed": RUN.seed + 1})
    ins = Instruction(other, 1, 0, {PROBE_INDICES: np.arange(8, dtype=np.int64)})
    with caplog.at_level(logging.DEBUG, logger=BUILD):
        run_phase("evaluate", ins, _profile(), ClientStateStore(root), "r", 1, cache)
    assert _builds(caplog) == 1


def test_a_client_whose_public_set_differs_refuses_before_training(tmp_path):
    # Prepare: the fingerprint of the server's public set, and of another one
    from fedmuscle_flwr.data.fingerprint import (
        PublicSetMismatchError,
        public_fingerprint,
    )
    from fedmuscle_flwr.data.registry import load_public

    server = public_fingerprint(load_public("digits-public", 300))
    other = public_fingerprint(load_public("mnist-5k-public", 300))
    encode = {ENCODE_INDICES: np.arange(32, dtype=np.int64).reshape(2, 16)}
    store = ClientStateStore(tmp_path)
    # Execute / Assert: the same set is accepted, another refused in one line
    ok = Instruction(RUN, 1, 0, encode, public_fingerprint=server)
    assert run_phase("train", ok, _profile(), store, "r", 1).z is not None
    bad = Instruction(RUN, 1, 0, encode, public_fingerprint=other)
    with pytest.raises(PublicSetMismatchError) as exc:
        run_phase("train", bad, _profile(), ClientStateStore(tmp_path / "b"), "r", 1)
    text = str(exc.value)
    assert "\n" not in text and server in text and other in text
    assert text.startswith("client 'mnist5k-mlp': public set differs")
    assert "packaged set 'digits-public'" in text
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").rglob("*.pt"))
