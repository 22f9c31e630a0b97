"""A hostile server: a real Flower ServerApp that sends issue 23's attacks (tests only).

The mirror of ``tests/hostile.py`` (a hostile client): a server with control of
its own ServerApp, using only what the FedMuscle protocol lets it say (valid
instructions, any run config), tries to make an unmodified client give away
per-sample outputs of its private data, its weights, its disk or its paths.
Each attack is one instruction to every connected node; what comes back is
written, reply by reply, to a JSON file (``out`` in the settings file the run
config's ``preset`` names), which the test then reads:
``tests/integration/test_hostile_server.py``.

Attacks (issue 23's table; ``fedmuscle client`` with ``mnist5k-cnn``, whose
private data are MNIST-5k images):

``private-as-public`` / ``private-as-public-eval``
    ``public.dataset = "mnist-5k-public"`` (the client's own files), every
    public row asked for (train: K x B encode indices; evaluate: a big probe);
``logits`` / ``weights``
    ``algorithm = "fedmd"`` (logits per public sample) / ``"fedavg"`` (the model);
``privacy-off`` / ``privacy-floor``
    evaluate with ``privacy.noise = 0`` and with the client's floor: equal replies
    mean the floor was applied to the first;
``huge-dim`` / ``huge-encode`` / ``huge-probe``
    ``muscle.dim = 8192``; 1000 encode batches; ``eval.probe-size = 5000``;
``new-run-key``
    a new ``run-name`` (a new state folder) per message.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

from fedmuscle_flwr.config.files import load_preset
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import deep_merge, unflatten
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.flower_compat import shorten_pull_backoff

app = ServerApp()

#: the honest run every attack starts from (small: the test runs on 2 cores)
BASE = {
    "run-name": "hostile-server",
    "public.size": 400,
    "train.epochs": 1,
    "train.max-batches": 2,
    "muscle.dim": 16,
    "muscle.batch-size": 8,
    "muscle.steps": 2,
    "eval.probe-size": 16,
    "device": "cpu",
}


def run_config(**flat: Any) -> RunConfig:
    """The tiny preset with :data:`BASE` and ``flat`` on top."""
    merged = deep_merge(load_preset("tiny"), unflatten({**BASE, **flat}))
    return RunConfig.from_mapping(merged)


def _rows(k: int, b: int, n: int) -> np.ndarray:
    return (np.arange(k * b, dtype=np.int64) % n).reshape(k, b)


def attacks() -> list[tuple[str, str, p.Instruction]]:
    """(name, message type, instruction) in the order they are sent."""
    ins = p.Instruction
    honest = run_config()
    own = run_config(**{"public.dataset": "mnist-5k-public", "public.size": 5000,
                        "muscle.batch-size": 100, "eval.probe-size": 1000})  # fmt: skip
    floor = 0.3  # the test client's privacy.min-noise
    out: list[tuple[str, str, p.Instruction]] = [
        ("honest-train", p.TRAIN, ins(honest, 1, 0, {p.ENCODE_INDICES: _rows(2, 8, 400)})),
        ("honest-eval", p.EVALUATE, ins(honest, 1, 0, {p.PROBE_INDICES: np.arange(16)})),
        ("private-as-public", p.TRAIN,
         ins(own, 1, 0, {p.ENCODE_INDICES: _rows(50, 100, 5000)})),
        ("private-as-public-eval", p.EVALUATE,
         ins(own, 1, 0, {p.PROBE_INDICES: np.arange(1000)})),
        ("logits", p.TRAIN, ins(run_config(algorithm="fedmd"), 1, 0,
                                {p.ENCODE_INDICES: _rows(2, 8, 400)})),
        ("weights", p.TRAIN, ins(run_config(algorithm="fedavg"), 1, 0,
                                 {p.ENCODE_INDICES: _rows(0, 8, 400)})),
        ("privacy-off", p.EVALUATE, ins(run_config(**{"privacy.noise": 0.0}), 1, 0,
                                        {p.PROBE_INDICES: np.arange(16)})),
        ("privacy-floor", p.EVALUATE, ins(run_config(**{"privacy.noise": floor}), 1, 0,
                                          {p.PROBE_INDICES: np.arange(16)})),
        ("huge-dim", p.TRAIN, ins(run_config(**{"muscle.dim": 8192}), 1, 0,
                                  {p.ENCODE_INDICES: _rows(2, 8, 400)})),
        ("huge-encode", p.TRAIN, ins(honest, 1, 0,
                                     {p.ENCODE_INDICES: _rows(1000, 8, 400)})),
        ("huge-probe", p.EVALUATE,
         ins(run_config(**{"eval.probe-size": 5000, "public.size": 5000}), 1, 0,
             {p.PROBE_INDICES: np.arange(5000)})),
    ]  # fmt: skip
    for i in range(4):  # a new state folder per message
        renamed = run_config(**{"run-name": f"fresh-{i}"})
        out.append((f"new-run-key-{i}", p.TRAIN,
                    ins(renamed, 1, 0, {p.ENCODE_INDICES: _rows(1, 8, 400)})))  # fmt: skip
    return out


def describe(reply: Message) -> dict[str, Any]:
    """What came back, as the server sees it: error text, records, array shapes."""
    if reply.has_error():
        return {"error": reply.error.reason, "code": int(reply.error.code)}
    content = reply.content
    arrays = {
        f"{name}/{key}": {"shape": list(arr.shape), "dtype": str(arr.dtype)}
        for name, record in content.array_records.items()
        for key, arr in record.items()
    }
    configs = {name: dict(rec) for name, rec in content.config_records.items()}
    metrics = {name: dict(rec) for name, rec in content.metric_records.items()}
    probe = content.array_records.get(p.REPS)
    digest = None
    if probe is not None and p.Z in probe:
        digest = np.asarray(probe[p.Z].numpy(), dtype=np.float64).round(6).tolist()
    return {"arrays": arrays, "configs": configs, "metrics": metrics, "z": digest}


def exchange(grid: Grid, msg: Message, timeout: float) -> Message | None:
    """Push one message, poll for its reply (``None`` after ``timeout``)."""
    (mid,) = grid.push_messages([msg])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = list(grid.pull_messages([mid]))
        if got:
            return got[0]
        time.sleep(0.05)
    return None


def settings(context: Context) -> Mapping[str, Any]:
    """The test's settings file (its path is the run config's ``preset``)."""
    return tomllib.loads(Path(str(context.run_config["preset"])).read_text())


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Send every attack to every node; write what came back."""
    shorten_pull_backoff()  # as our own ServerApp does: replies pulled at once
    cfg = settings(context)
    out = Path(cfg["out"])
    deadline = time.monotonic() + float(cfg.get("wait-s", 120))
    while not (nodes := sorted(grid.get_node_ids())):
        if time.monotonic() > deadline:
            raise TimeoutError("no client connected")
        time.sleep(0.1)
    seen: list[dict[str, Any]] = []
    for name, kind, ins in attacks():
        for node in nodes:
            msg = Message(
                p.encode_instruction(ins), dst_node_id=node, message_type=kind
            )
            reply = exchange(grid, msg, float(cfg.get("reply-s", 60)))
            got = {"timed-out": True} if reply is None else describe(reply)
            seen.append({"attack": name, "node": node, **got})
            out.write_text(json.dumps(seen, indent=1))
