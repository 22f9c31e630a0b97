"""The policy around one message (issue 23): the upload kind per phase, the floor
logged once, state pruned before a new run, the reply cap on what was computed,
one run key per Flower run."""

from __future__ import annotations

import logging

import numpy as np
import torch
from flwr.app import Context, RecordDict

from fedmuscle_flwr.clientapp.app import bind_run_key
from fedmuscle_flwr.clientapp.guard import (
    admit,
    admit_reply,
    admit_state,
    reply_nbytes,
    upload_space,
)
from fedmuscle_flwr.clientapp.retention import run_folders
from fedmuscle_flwr.clientapp.state import ClientStateStore
from fedmuscle_flwr.config.files import load_preset
from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import deep_merge, unflatten
from fedmuscle_flwr.wire.messages import (
    ENCODE_INDICES,
    PROBE_INDICES,
    Instruction,
    Reply,
)


def instruction(**flat) -> Instruction:
    run = RunConfig.from_mapping(deep_merge(load_preset("tiny"), unflatten(flat)))
    return Instruction(run, 1, 0, {ENCODE_INDICES: np.zeros((2, 8), np.int64),
                                   PROBE_INDICES: np.arange(8)})  # fmt: skip


def test_upload_kind_per_phase():
    assert upload_space("logits", "train") == "logits"
    assert upload_space("logits", "align") == "logits"
    assert upload_space("logits", "evaluate") == "representation"  # probe rows
    assert upload_space("weights", "train") == "weights"
    assert upload_space("weights", "align") == "representation"  # a download
    # a fedmd run's evaluation is allowed, its training is not
    ins = instruction(algorithm="fedmd")
    assert admit("evaluate", ins, ClientPolicy())[1] is None
    assert admit("train", ins, ClientPolicy())[1].rule == "policy.uploads"


def test_floor_applied_and_logged_once(caplog):
    policy = ClientPolicy(privacy={"min-noise": 0.25})
    ins = instruction(**{"privacy.noise": 0.0, "seed": 911})
    with caplog.at_level(logging.INFO):
        first, refusal = admit("train", ins, policy)
        second, _ = admit("train", ins, policy)
    assert refusal is None and first.run.privacy.noise == 0.25
    assert second.run == first.run
    assert caplog.text.count("this client's floor applies") == 1
    untouched, _ = admit("train", instruction(), ClientPolicy())
    assert untouched.run.privacy.noise == 0.0


def test_state_pruned_before_a_new_run_and_capped(tmp_path):
    store = ClientStateStore(tmp_path)
    for i in range(4):
        store.save(f"old-{i}", 1, {"w": torch.zeros(1000)})
    policy = ClientPolicy(caps={"keep-runs": 2})
    assert admit_state(tmp_path, "new-run", policy) is None
    assert len(run_folders(tmp_path)) == 1  # + the new run's = 2
    tiny = ClientPolicy(caps={"keep-runs": 2, "state-mb": 1e-4})  # 105 bytes
    assert admit_state(tmp_path, "other-run", tiny) is None  # old runs go first
    assert run_folders(tmp_path) == []
    store.save("big", 1, {"w": torch.zeros(1000)})  # the run itself is too big
    refusal = admit_state(tmp_path, "big", tiny)
    assert refusal is not None and refusal.rule == "policy.caps.state-mb"


def test_reply_cap_on_what_was_computed():
    z = np.zeros((4, 256, 1000), np.float32)  # logits: (K, B, C), C from the model
    reply = Reply({}, {}, z, np.zeros((4, 256), np.int64))
    assert reply_nbytes(reply, "fp16") == z.size * 2 + 4 * 256 * 8
    assert admit_reply(reply, "fp16", ClientPolicy()) is None  # ~2 MiB
    refusal = admit_reply(reply, "fp32", ClientPolicy(caps={"reply-mb": 1}))
    assert refusal is not None and refusal.rule == "policy.caps.reply-mb"
    weights = Reply({}, {}, weights={"w": np.zeros(2**19, np.float32)})
    assert admit_reply(weights, "fp16", ClientPolicy(caps={"reply-mb": 1})) is not None


def test_one_run_key_per_flower_run():
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                  run_config={})  # fmt: skip
    assert bind_run_key(ctx, "run-a") is None
    assert bind_run_key(ctx, "run-a") is None
    refusal = bind_run_key(ctx, "run-b")
    assert refusal is not None and refusal.rule == "policy.run-key"
    assert "'run-a'" in refusal.reason and "'run-b'" in refusal.reason
