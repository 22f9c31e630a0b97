"""Server work per round at N clients: the real FedMuscle strategy, synthetic clients.

    python bench/server_scale.py --clients 1000 --rounds 2 --out DIR

Runs the real ServerApp logic (:func:`fedmuscle_flwr.serverapp.app.serve`: the
FedMuscle strategy, its reply desk, planner, relay, probe metrics and recorder)
over the in-process grid (:class:`fedmuscle_flwr.launch.inprocess.InProcessGrid`)
with N synthetic clients that answer every message at once with a valid random
reply (unit-row representations of the asked public indices, the phase's
metrics, a client identity): no training, so what is timed is the server's work.
Client time (building the replies) is measured and subtracted: ``server_s``
is the wall time of the rounds minus the clients' time, ``server_cpu_s`` the
process's CPU time minus the clients' (the figure to read on a loaded
machine). Phases are timed by wrapping the functions that do them
(``PHASES``; a nested call counts for its own phase, the clients' answers
for none); "grid" is the in-process delivery, "other" the rest (Flower's
Message objects, the round loop). Writes DIR/server_scale.json with ``clients``,
``server_s_per_round``, ``peak_rss_mb`` and ``phases_s_per_round``.

``peak_rss_mb`` is the whole process's peak (``ru_maxrss``): the server, the
in-process grid and the synthetic clients. What is not the server's is small:
the clients' pool of rows (public size x d float32, 5 MB at the default) and
one instruction and reply in flight; the grid holds the clients' encoded
replies between a chunk's push and the pull, and those same bytes are what the
server pulls and keeps (the float16 bank is a view of them), so they count
once. ``rss_start_mb`` is the process before the first round (Python, torch,
Flower, the code: the fixed part).

Settings: the default preset (B = 32, d = 256, M = 3, T = 20 steps per round,
per-round sync, fp16 wire) with ``eval.every = 1`` (every round trains, aligns
and evaluates) and no initial evaluation; ``--set key=value`` overrides.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flwr.app import ArrayRecord, Context, Message

from fedmuscle_flwr.config.files import resolve_run_config
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.launch.inprocess import InProcessGrid
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.serverapp.app import serve
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import decode, record_of

#: (module, attribute, phase): the functions whose time makes up each phase
PHASES = [
    ("fedmuscle_flwr.serverapp.replies", "ReplyDesk.take", "decode/validate"),
    ("fedmuscle_flwr.method.planner", "public_batches", "planner"),
    ("fedmuscle_flwr.method.planner", "probe_indices", "planner"),
    ("fedmuscle_flwr.method.planner", "sample_partners", "planner"),
    ("fedmuscle_flwr.method.algorithms.muscle", "FedMuscle.relay", "relay"),
    ("fedmuscle_flwr.method.algorithms.base", "Algorithm.relay", "relay"),
    ("fedmuscle_flwr.method.planner", "gather", "relay"),
    ("fedmuscle_flwr.wire.protocol", "encode_instruction", "relay"),
    ("fedmuscle_flwr.serverapp.phases", "RoundPhases._message", "relay"),
    ("fedmuscle_flwr.method.robust", "screen", "screen"),
    ("fedmuscle_flwr.serverapp.strategy", "alignment", "probe metrics"),
    ("fedmuscle_flwr.serverapp.phases", "alignment", "probe metrics"),
    ("fedmuscle_flwr.serverapp.replies", "ReplyDesk.record", "recording"),
    ("fedmuscle_flwr.runs.metrics", "RunRecorder.record", "recording"),
    ("fedmuscle_flwr.runs.checkpoint", "RunSession.save", "recording"),
    ("fedmuscle_flwr.launch.inprocess", "InProcessGrid.push_messages", "grid"),
]


#: the synthetic clients' own phase: measured, then left out of the server's
CLIENTS = "clients"


class Timers:
    """Seconds per phase; a nested wrapped call counts for its own phase only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list[float]] = []  # [start, seconds of nested calls]

    def wrap(self, fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append([time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                start, nested = self.stack.pop()
                spent = time.perf_counter() - start
                self.seconds[phase] += spent - nested
                if self.stack:
                    self.stack[-1][1] += spent

        return timed

    def install(self) -> list[str]:
        """Wrap every function of :data:`PHASES` that exists; return those wrapped."""
        done = []
        for module, attr, phase in PHASES:
            try:
                owner: Any = importlib.import_module(module)
            except ImportError:
                continue
            *path, name = attr.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            if owner is None or not hasattr(owner, name):
                continue
            setattr(owner, name, self.wrap(getattr(owner, name), phase))
            done.append(f"{module}.{attr}")
        return done


class SyntheticClients:
    """Answers each instruction with a valid random reply; times itself.

    The representations come from a pool of random unit rows (one per public
    index), so building a reply is a gather, not a fresh random draw. The
    instruction's arrays are decoded and checked (its run config is not re-read).
    """

    def __init__(self, run: RunConfig, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        pool = rng.standard_normal((run.public.size, run.muscle.dim)).astype(np.float32)
        self.pool = pool / np.linalg.norm(pool, axis=1, keepdims=True)
        self.precision = run.muscle.precision
        self.run = run
        self.payloads = get_algorithm(run.algorithm).payloads(run.muscle)
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.rng = rng

    def __call__(self, msg: Message, context: Context) -> Message:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return self._answer(msg, context)
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.process_time() - c0

    def _answer(self, msg: Message, context: Context) -> Message:
        kind = msg.metadata.message_type
        # as the real client reads it (protocol.decode_instruction): record_of,
        # not content.array_records, whose view keeps the message's records in
        # a reference cycle until the collector runs
        record = record_of(msg.content, p.ARRAYS, ArrayRecord)
        assert record is not None
        phase = Phase.of_message_type(kind)
        specs = p.instruction_specs(self.run, phase, self.payloads)
        arrays = decode(record, specs, where=kind)
        key = p.PROBE_INDICES if kind == p.EVALUATE else p.ENCODE_INDICES
        idx = arrays.get(key, np.zeros((0, 0), np.int64))
        idx = idx[None, :] if idx.ndim == 1 else idx  # the probe: one batch
        pid = int(context.node_config["partition-id"])
        identity = {
            p.CLIENT_NAME: f"c{pid:05d}",
            p.MODEL_NAME: "mlp",
            p.TASK_KIND: "classification",
            p.METRIC_NAME: "accuracy",
        }
        loss = float(self.rng.uniform(0.5, 2.0))
        metrics = {
            p.TRAIN: {"task-loss": loss, p.NUM_EXAMPLES: 100.0},
            p.ALIGN: {"align-loss": loss, p.NUM_EXAMPLES: 100.0},
            p.EVALUATE: {"metric": float(self.rng.uniform()), "test-loss": loss},
        }[kind]
        z = self.pool[idx] if idx.size else None
        reply = p.Reply(metrics, identity, z, idx if idx.size else None)
        return Message(p.encode_reply(reply, self.precision), reply_to=msg)


def mark_rounds(clients: SyntheticClients) -> list[tuple[float, ...]]:
    """Note (wall, process CPU, clients' wall, clients' CPU) at round boundaries.

    The first mark is taken when round 1 opens (its first ``open_train``):
    before it is the start-up after ``serve`` is called (the run folder, the
    public set, waiting for the nodes), reported on its own. Then one mark as
    each round ends, when its checkpoint is saved (``RunSession.save``, once
    per round, after its evaluation).
    """
    from fedmuscle_flwr.runs.checkpoint import RunSession
    from fedmuscle_flwr.serverapp.phases import RoundPhases

    marks: list[tuple[float, ...]] = []
    save, open_train = RunSession.save, RoundPhases.open_train

    def mark() -> None:
        now = (time.perf_counter(), time.process_time())
        marks.append((*now, clients.seconds, clients.cpu_seconds))

    @functools.wraps(save)
    def saved(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = save(self, *args, **kwargs)
        mark()
        return out

    @functools.wraps(open_train)
    def opened(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not marks:
            mark()
        return open_train(self, *args, **kwargs)

    RunSession.save = saved  # type: ignore[method-assign]
    RoundPhases.open_train = opened  # type: ignore[method-assign]
    return marks


def server_spans(marks: list[tuple[float, ...]]) -> list[dict[str, float]]:
    """Server wall and CPU seconds between successive marks (clients' taken out)."""
    return [
        {
            "server_s": (b[0] - a[0]) - (b[2] - a[2]),
            "server_cpu_s": (b[1] - a[1]) - (b[3] - a[3]),
        }
        for a, b in itertools.pairwise(marks)
    ]


def current_rss_mb() -> float:
    """The process's resident memory now (Linux ``/proc``; NaN elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def make_run(clients: int, rounds: int, out: Path, sets: list[str]) -> RunConfig:
    flat: dict[str, Any] = {
        "preset": "default",
        "num-rounds": rounds,
        "eval.every": 1,
        "eval.initial": False,
        "federation.min-clients": clients,
        "output-dir": str(out),
        "run-name": f"scale-{clients}",
    }
    for item in sets:
        key, _, value = item.partition("=")
        flat[key] = json.loads(value) if value[:1] in "0123456789[{tf-" else value
    return resolve_run_config(flat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--set", action="append", default=[], help="dotted key=value")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    timers = Timers()
    wrapped = timers.install()
    runs = Path(tempfile.mkdtemp(prefix="server-scale-"))
    run = make_run(args.clients, args.rounds, runs, args.set)
    clients = SyntheticClients(run)
    marks = mark_rounds(clients)
    # the clients answer inside the grid's push, itself inside the reply desk's
    # take (the replies stream in while the phase is pushed): timed as nested
    # phases, so each phase counts only its own time
    grid = InProcessGrid(timers.wrap(clients, CLIENTS), args.clients)
    load0, rss0 = os.getloadavg(), current_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    run_dir = serve(grid, run)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    server = wall - clients.seconds
    phases = {
        k: v / args.rounds for k, v in sorted(timers.seconds.items()) if k != CLIENTS
    }
    phases["other"] = server / args.rounds - sum(phases.values())
    summary = json.loads((run_dir / "summary.json").read_text())
    startup, *per_round = server_spans([(t0, c0, 0.0, 0.0), *marks])
    steady = [r["server_cpu_s"] for r in per_round]
    out = {
        "clients": args.clients,
        "rounds": args.rounds,
        "server_s_per_round": server / args.rounds,
        "server_cpu_s_per_round": (cpu - clients.cpu_seconds) / args.rounds,
        "startup": startup,
        "per_round": per_round,
        "server_cpu_s_per_round_after_startup": sum(steady) / len(steady),
        "server_cpu_s_median_round": statistics.median(steady),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_start_mb": rss0,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "phases_s_per_round": phases,
        "client_s_per_round": clients.seconds / args.rounds,
        "wall_s": wall,
        "process_cpu_s": cpu,
        "status": summary.get("status"),
        "round_seconds": [r.get("seconds") for r in summary.get("rounds", [])],
        "settings": {
            "B": run.muscle.batch_size,
            "d": run.muscle.dim,
            "M": run.muscle.partners,
            "T": run.muscle.steps,
            "sync": run.muscle.sync,
            "wire": run.muscle.precision,
            "probe": run.eval.probe_size,
            "set": args.set,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_before": load0,
            "load_after": os.getloadavg(),
        },
        "wrapped": wrapped,
        "run_dir": str(run_dir),
    }
    (args.out / "server_scale.json").write_text(json.dumps(out, indent=2))
    keys = (
        "clients",
        "server_s_per_round",
        "server_cpu_s_per_round_after_startup",
        "server_cpu_s_median_round",
        "peak_rss_mb",
        "phases_s_per_round",
    )
    print(json.dumps({k: out[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
