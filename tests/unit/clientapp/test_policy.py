"""The client policy check (issue 23): each rule refuses what breaks it, with the
rule's name; the default federation's instructions pass; the privacy floor."""

from __future__ import annotations

import numpy as np
import pytest

from fedmuscle_flwr.clientapp.policy import (
    MIB,
    Refusal,
    check,
    check_reply_bytes,
    reply_bytes,
    with_floor,
)
from fedmuscle_flwr.config.files import load_preset
from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.wire.messages import (
    ENCODE_INDICES,
    PARTNERS,
    PROBE_INDICES,
    STEP_INDICES,
)

SAFE = ClientPolicy()


def run(**flat) -> RunConfig:
    base = RunConfig.from_mapping(load_preset("default"))
    from fedmuscle_flwr.config.schema import deep_merge, unflatten

    return RunConfig.from_mapping(
        deep_merge(base.model_dump(by_alias=True), unflatten(flat))
    )


def idx(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.int64)


def default_instructions(cfg: RunConfig):
    k, b, d = cfg.muscle.steps, cfg.muscle.batch_size, cfg.muscle.dim
    m = cfg.muscle.partners
    return [
        ("train", {ENCODE_INDICES: idx(k, b)}),
        ("align", {STEP_INDICES: idx(k, b), PARTNERS: np.zeros((k, m, b, d), "f4"),
                   ENCODE_INDICES: idx(0, b)}),
        ("evaluate", {PROBE_INDICES: idx(cfg.eval.probe_size)}),
    ]  # fmt: skip


def test_the_default_federation_passes_the_default_policy():
    cfg = run()
    for phase, arrays in default_instructions(cfg):
        assert check(phase, cfg, arrays, "representation", SAFE) is None, phase


@pytest.mark.parametrize(
    ("space", "policy", "rule"),
    [
        ("logits", SAFE, "policy.uploads"),  # fedmd: logits per public sample
        ("weights", SAFE, "policy.uploads"),  # fedavg: the whole model
        ("weights", ClientPolicy(uploads=("representation", "logits")),
         "policy.uploads"),
        ("representation", ClientPolicy(algorithms=("pairwise",)),
         "policy.algorithms"),
        ("representation", ClientPolicy(public_sets=("digits-public",)),
         "policy.public-sets"),
        ("logits", ClientPolicy(uploads=("representation", "logits"),
                                privacy={"min-noise": 0.5}),
         "policy.privacy.min-noise"),
    ],
)  # fmt: skip
def test_what_may_leave(space, policy, rule):
    cfg = run()
    refusal = check("train", cfg, {ENCODE_INDICES: idx(2, 32)}, space, policy)
    assert isinstance(refusal, Refusal) and refusal.rule == rule
    assert refusal.line().startswith(f"refused by client policy: {rule}: ")
    assert "fedmuscle" in refusal.reason or rule != "policy.algorithms"


def test_opted_in_uploads_pass():
    policy = ClientPolicy(uploads=("representation", "logits", "weights"))
    cfg = run(algorithm="fedavg")
    assert check("train", cfg, {ENCODE_INDICES: idx(0, 32)}, "weights", policy) is None


@pytest.mark.parametrize(
    ("flat", "phase", "arrays", "rule"),
    [
        ({"muscle.dim": 8192}, "train", {}, "policy.caps.dim"),
        ({"muscle.steps": 10_000}, "train", {}, "policy.caps.steps"),
        ({"muscle.batch-size": 4096, "public.size": 5000}, "train", {},
         "policy.caps.batch-size"),
        ({"muscle.partners": 500}, "train", {}, "policy.caps.partners"),
        ({"train.epochs": 1000}, "train", {}, "policy.caps.epochs"),
        ({"eval.probe-size": 5000}, "evaluate", {}, "policy.caps.probe-size"),
        ({}, "train", {ENCODE_INDICES: idx(1000, 32)}, "policy.caps.encode-batches"),
        ({}, "train", {ENCODE_INDICES: idx(4, 5000)}, "policy.caps.batch-size"),
        ({}, "align", {STEP_INDICES: idx(1000, 32)}, "policy.caps.steps"),
        ({}, "align", {PARTNERS: np.zeros((1, 100, 2, 2), "f4")},
         "policy.caps.partners"),
        ({}, "evaluate", {PROBE_INDICES: idx(5000)}, "policy.caps.probe-size"),
        # within every single cap, but the reply would be 256*1024*2048*4 B = 2 GiB
        ({"muscle.dim": 2048, "muscle.precision": "fp32",
          "muscle.batch-size": 1024}, "train", {ENCODE_INDICES: idx(256, 1024)},
         "policy.caps.reply-mb"),
    ],
)  # fmt: skip
def test_caps(flat, phase, arrays, rule):
    refusal = check(phase, run(**flat), arrays, "representation", SAFE)
    assert refusal is not None and refusal.rule == rule, refusal
    assert "cap" in refusal.reason


def test_reply_bytes_arithmetic_and_check():
    assert reply_bytes(10, 256, "fp16") == 10 * 256 * 2
    assert reply_bytes(10, 256, "fp32") == 10 * 256 * 4
    assert reply_bytes(10, 256, "int8") == 10 * (256 + 4)
    policy = ClientPolicy(caps={"reply-mb": 1})
    assert check_reply_bytes(MIB, policy) is None
    refusal = check_reply_bytes(MIB + 1, policy)
    assert refusal is not None and refusal.rule == "policy.caps.reply-mb"


def test_privacy_floor_is_never_lowered_by_the_server():
    policy = ClientPolicy(privacy={"min-noise": 0.3, "max-clip": 0.8})
    # the server asks for no noise and a loose clip: the floor applies
    cfg = with_floor(run(**{"privacy.noise": 0.0, "privacy.clip": 5.0}), policy)
    assert (cfg.privacy.noise, cfg.privacy.clip) == (0.3, 0.8)
    # the server asks for more: it gets more
    cfg = with_floor(run(**{"privacy.noise": 0.9, "privacy.clip": 0.5}), policy)
    assert (cfg.privacy.noise, cfg.privacy.clip) == (0.9, 0.5)
    # no floor: the very same object
    plain = run()
    assert with_floor(plain, SAFE) is plain
