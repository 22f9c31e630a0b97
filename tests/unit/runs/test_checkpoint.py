"""Checkpoint and resume (checkpoint.py + server_app.serve), scripted clients."""

import hashlib
import json

import numpy as np
import pytest

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch.inprocess import InProcessGrid
from fedmuscle_flwr.runs.checkpoint import (
    CHECKPOINT,
    ResumeError,
    _essential,
    check_resumable,
    config_hash,
    load_checkpoint,
)
from fedmuscle_flwr.runs.metrics import SERVER_ROW, read_rows, read_summary
from fedmuscle_flwr.serverapp.app import serve
from fedmuscle_flwr.wire import protocol as p
from tests.faulty import Structured

BASE = {
    "num-rounds": 4,
    "muscle.batch-size": 8,
    "muscle.dim": 8,
    "muscle.steps": 2,
    "muscle.partners": 2,
    "public.size": 400,
    "eval.probe-size": 8,
    "federation.min-clients": 3,
    "federation.poll-s": 0.001,
    "run-name": "r",
}


class Crash(Exception):
    """The server process dies."""


def config(tmp_path, **flat):
    return RunConfig.from_flat({**BASE, "output-dir": str(tmp_path), **flat})


def serve_until(run, crash_at=None, nodes=3):
    """Serve ``run``; raise Crash when the server is about to send ``crash_at``."""
    client = Structured()
    grid = InProcessGrid(client, nodes, first_id=101)
    client.register(grid.contexts)
    push = grid.push_messages

    def push_or_crash(messages):
        messages = list(messages)
        ins = p.decode_instruction(
            messages[0].content, messages[0].metadata.message_type
        )
        if (ins.server_round, messages[0].metadata.message_type) == crash_at:
            raise Crash
        return push(messages)

    grid.push_messages = push_or_crash
    return serve(grid, run), client


def asked(client):
    """What every instruction asked, in order: (round, kind, node, indices)."""
    out = []
    for node, kind, ins in client.seen:
        key = p.PROBE_INDICES if kind == p.EVALUATE else p.ENCODE_INDICES
        steps = ins.arrays.get(p.STEP_INDICES, np.zeros(0))
        out.append(
            (ins.server_round, kind, node, ins.arrays[key].tolist(), steps.tolist())
        )
    return out


def test_resume_after_crash_mid_round_every_round_exactly_once(tmp_path):
    # Prepare: an uninterrupted reference run
    ref_dir, ref_client = serve_until(config(tmp_path / "ref"))
    run = config(tmp_path / "crash")
    # Execute: the server dies before the align phase of round 3, then resumes
    with pytest.raises(Crash):
        serve_until(run, crash_at=(3, p.ALIGN))
    run_dir = tmp_path / "crash" / "r"
    ckpt = load_checkpoint(run_dir)
    assert ckpt.round == 2 and [h["round"] for h in ckpt.history] == [0, 1, 2]
    partial = read_rows(run_dir)
    assert any(r["round"] == 3 for r in partial)  # round 3 had started
    resumed = run.model_copy(
        update={"checkpoint": run.checkpoint.model_copy(update={"resume": True})}
    )
    _, client = serve_until(resumed)
    # Assert: each round once in the metrics, in order; the resumed segment asked
    # exactly what the uninterrupted run asked in rounds 3 and 4 (RNG rebuilt)
    rows = read_rows(run_dir)
    server = [r["round"] for r in rows if r["client"] == SERVER_ROW]
    assert server == [0, 1, 2, 3, 4]
    trains = [(r["round"], r["client"]) for r in rows if r.get("phase") == "train"]
    assert len(trains) == len(set(trains)) == 4 * 3
    ref_asked = [a for a in asked(ref_client) if a[0] >= 3]
    assert asked(client) == ref_asked
    summary = read_summary(run_dir)
    assert summary["segments"] == 2
    assert [h["round"] for h in summary["rounds"]] == [0, 1, 2, 3, 4]
    assert load_checkpoint(run_dir).round == 4
    assert load_checkpoint(run_dir).uid == ckpt.uid != load_checkpoint(ref_dir).uid


def test_crash_before_anything_completed_restarts_at_round_0(tmp_path):
    run = config(tmp_path)
    with pytest.raises(Crash):
        serve_until(run, crash_at=(0, p.EVALUATE))
    resumed = run.model_copy(
        update={"checkpoint": run.checkpoint.model_copy(update={"resume": True})}
    )
    run_dir, _ = serve_until(resumed)
    server = [r["round"] for r in read_rows(run_dir) if r["client"] == SERVER_ROW]
    assert server == [0, 1, 2, 3, 4]


def test_config_mismatch_is_refused_with_the_differences(tmp_path):
    run_dir, _ = serve_until(config(tmp_path, **{"num-rounds": 1}))
    changed = config(tmp_path, **{"num-rounds": 1, "muscle.lr": 0.1})
    changed = changed.model_copy(
        update={"checkpoint": changed.checkpoint.model_copy(update={"resume": True})}
    )
    with pytest.raises(
        ResumeError, match=r"muscle.lr: 0.001 \(saved\) != 0.1 \(given\)"
    ):
        check_resumable(changed, run_dir)
    with pytest.raises(ResumeError, match="muscle.lr"):
        serve_until(changed)
    # operational keys may change between segments
    patient = config(tmp_path, **{"num-rounds": 1, "federation.phase-timeout-s": 9.0})
    patient = patient.model_copy(
        update={"checkpoint": patient.checkpoint.model_copy(update={"resume": True})}
    )
    assert check_resumable(patient, run_dir).round == 1
    assert config_hash(patient) == config_hash(config(tmp_path, **{"num-rounds": 1}))


def test_fresh_run_refuses_a_folder_with_a_checkpoint(tmp_path):
    run_dir, _ = serve_until(config(tmp_path, **{"num-rounds": 1}))
    with pytest.raises(ResumeError, match="already holds a run.*--resume"):
        serve_until(config(tmp_path, **{"num-rounds": 1}))
    assert json.loads((run_dir / CHECKPOINT).read_text())["round"] == 1


def test_resuming_a_finished_run_only_writes_the_summary(tmp_path):
    run = config(tmp_path, **{"num-rounds": 1})
    run_dir, _ = serve_until(run)
    before = read_rows(run_dir)
    resumed = run.model_copy(
        update={"checkpoint": run.checkpoint.model_copy(update={"resume": True})}
    )
    _, client = serve_until(resumed)
    assert client.seen == [] and read_rows(run_dir) == before


def test_checkpoint_document(tmp_path):
    run_dir, _ = serve_until(config(tmp_path, **{"num-rounds": 1}))
    doc = json.loads((run_dir / CHECKPOINT).read_text())
    assert doc["format"] == 1 and doc["round"] == 1
    assert doc["rng"]["seed"] == 0 and "default_rng" in doc["rng"]["streams"]
    assert doc["rows"] == len(read_rows(run_dir))
    assert set(doc["history"][-1]) >= {"round", "clients", "rejected", "failed",
                                       "timed-out", "quarantined", "seconds"}  # fmt: skip
    assert not list(run_dir.glob("*.tmp"))
    (run_dir / CHECKPOINT).write_text("{not json")
    with pytest.raises(ResumeError, match="unreadable checkpoint"):
        load_checkpoint(run_dir)


def test_resume_across_a_version_that_added_a_config_key(tmp_path, caplog):
    # Prepare: a checkpoint as a version without robust.norm-tolerance wrote it
    # (its config lacks the key; its hash was taken without it)
    run_dir, _ = serve_until(config(tmp_path, **{"num-rounds": 1}))
    doc = json.loads((run_dir / CHECKPOINT).read_text())
    del doc["config"]["robust"]["norm-tolerance"]
    old = {k: v for k, v in _essential(config(tmp_path, **{"num-rounds": 1})).items()
           if k != "robust.norm-tolerance"}  # fmt: skip
    text = json.dumps(old, sort_keys=True, separators=(",", ":"))
    doc["config-hash"] = hashlib.sha256(text.encode()).hexdigest()
    (run_dir / CHECKPOINT).write_text(json.dumps(doc))

    def resumed(**flat):
        run = config(tmp_path, **{"num-rounds": 1, **flat})
        update = {"checkpoint": run.checkpoint.model_copy(update={"resume": True})}
        return run.model_copy(update=update)

    # Execute + Assert: the default is accepted (with a warning naming the key),
    # another value is refused naming the key as not saved
    assert check_resumable(resumed(), run_dir).round == 1
    assert "without robust.norm-tolerance=0.05" in caplog.text
    with pytest.raises(ResumeError, match=r"norm-tolerance: 0.05 \(default, not saved"):
        check_resumable(resumed(**{"robust.norm-tolerance": 0.2}), run_dir)
