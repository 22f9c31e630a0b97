"""Shared machinery of the federation benchmarks (flower_overhead.py, scaling.py).

* :func:`plain_federation`: FedMuscle rounds in a plain in-process Python loop. The
  server side is :mod:`fedmuscle_flwr.method.planner` (public batches, partner
  sampling, compact/aggregated payloads, probe alignment), the client side is the
  flwr-free :func:`fedmuscle_flwr.clientapp.runner.run_phase` (ClientRuntime build,
  state restore, phase, state save). Instructions and replies go through the project's
  codec (``protocol.encode_*``/``decode_*``: the same bytes, checks and precision
  effects as a Flower run) but no Flower Message, Grid, SuperLink or Ray is used.
  Bytes are counted as the strategy counts them. Message order and every seed
  follow ``FedMuscle.start`` (serverapp/strategy.py).
* :func:`simulate_timed`: one Flower simulation (``fedmuscle_flwr.launch.simulation``,
  Ray backend) with the driver's per-round and per-phase log records captured
  (their arguments carry the unrounded seconds).
* :func:`write_roster`: a roster TOML of N tiny clients.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fedmuscle_flwr.clientapp.runner import run_phase
from fedmuscle_flwr.clientapp.state import open_store
from fedmuscle_flwr.config.files import load_preset, load_profile, load_roster
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method import planner as agg
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.alignment import alignment
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.method.seeds import rng_for
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import record_nbytes

#: the two tiny profiles the scaling benchmarks cycle through
TINY_PROFILES = ("fmnist-cnn", "mosaic-mlp")


def environment() -> dict[str, Any]:
    """Versions and machine state recorded with every result."""
    import flwr
    import torch

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "flwr": flwr.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def write_roster(
    path: Path,
    n: int,
    profiles: Sequence[str] = TINY_PROFILES,
    max_train: int = 96,
    max_test: int = 100,
) -> Path:
    """A roster of ``n`` clients cycling through ``profiles`` with small data caps.

    Each client gets its own iid partition of its profile's dataset: the
    profile's partitions (``fmnist-cnn``: 8 of Fashion-MNIST's 60,000 training
    images) as long as they suffice, else one per client of that profile (100
    clients: 50 partitions of Fashion-MNIST, 50 of the 12,000 mosaics).
    """
    names = [profiles[i % len(profiles)] for i in range(n)]
    parts = {
        name: max(load_profile(name).data.partition.num_partitions, names.count(name))
        for name in set(names)
    }
    lines = [f"# {n} tiny clients, written by bench/_fed.py"]
    for i, name in enumerate(names):
        sets: dict[str, object] = {
            "data.max-train": max_train,
            "data.max-test": max_test,
        }
        if parts[name] > 1:  # iid partitions
            sets["data.partition.num-partitions"] = parts[name]
            sets["data.partition.index"] = (i // len(profiles)) % parts[name]
        body = ", ".join(f'"{k}" = {v}' for k, v in sets.items())
        lines += ["[[clients]]", f'profile = "{name}"', f"set = {{ {body} }}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_config(preset: str, **flat: Any) -> RunConfig:
    """A preset with dotted overrides (as ``fedmuscle run --set`` applies them)."""
    from fedmuscle_flwr.config.schema import deep_merge, unflatten

    return RunConfig.from_mapping(deep_merge(load_preset(preset), unflatten(flat)))


# ------------------------------------------------------------------ plain loop
class _Wire:
    """Encode -> decode both ways like the apps; count bytes like the strategy."""

    def __init__(self, run: RunConfig, profiles: Sequence[ClientProfile]) -> None:
        self.run, self.profiles = run, profiles
        self.store = open_store(Path(os.environ["FEDMUSCLE_STATE_DIR"]))
        self.up = self.down = 0
        self.bank: dict[int, np.ndarray] = {}  # node -> (K, B, d), as the strategy's

    def call(
        self,
        node: int,
        kind: str,
        server_round: int,
        step: int,
        arrays: dict[str, np.ndarray],
        sent: np.ndarray,
    ) -> p.Reply:
        ins = p.Instruction(self.run, server_round, step, arrays)
        content = p.encode_instruction(ins)
        self.down += record_nbytes(content.array_records[p.ARRAYS])
        ins = p.decode_instruction(content, kind)
        phase = Phase.of_message_type(kind)
        reply = run_phase(
            phase, ins, self.profiles[node], self.store, self.run.run_name, node
        )
        out = p.encode_reply(reply, self.run.muscle.precision)
        self.up += record_nbytes(out.array_records[p.REPS])
        return p.decode_reply(out, self.run, sent, where=f"node {node}")


def _evaluate(wire: _Wire, rnd: int, probe: np.ndarray) -> dict[str, Any]:
    arrays = {p.PROBE_INDICES: probe}
    replies = {
        n: wire.call(n, p.EVALUATE, rnd, 0, arrays, probe[None, :])
        for n in range(len(wire.profiles))
    }
    reps = {n: r.z[0] for n, r in replies.items() if r.z is not None}
    align = alignment(reps, wire.run.muscle)
    clients = {wire.profiles[n].name: dict(r.metrics) for n, r in replies.items()}
    return {"alignment": align.as_dict() if align else {}, "clients": clients}


def _align(
    wire: _Wire, rnd: int, step: int, batches: np.ndarray
) -> dict[int, np.ndarray]:
    """One phase-2 message per client (strategy.configure_align's choices)."""
    run, bank = wire.run, wire.bank
    per_round = run.muscle.sync == "per-round"
    t = batches.shape[0]
    steps = range(0, t) if per_round else range(step, step + 1)
    nxt = batches[0:0] if per_round else batches[step + 1 : step + 2]
    order = sorted(bank, key=lambda n: (wire.profiles[n].name, n))
    sampled = [
        agg.sample_partners(order, run.muscle.partners, run.seed, rnd, s) for s in steps
    ]
    rng = rng_for(run.seed, 0x5F1E, rnd, step)
    new_bank = {}
    for node in order:
        partners = [choice[node] for choice in sampled]
        if not partners[0]:
            continue
        compact = agg.compact_payload(bank, partners, rng)  # (S, M, B, d)
        arrays = {p.STEP_INDICES: batches[steps.start : steps.stop]}
        arrays[p.ENCODE_INDICES] = nxt
        if run.muscle.downlink == "compact":
            arrays[p.PARTNERS] = compact
        else:
            arrays[p.AGGREGATE], arrays[p.LOG_ALPHA] = agg.aggregated_payload(
                compact, run.muscle
            )
        reply = wire.call(node, p.ALIGN, rnd, step, arrays, nxt)
        if reply.z is not None:
            new_bank[node] = reply.z
    return new_bank


def plain_federation(
    run: RunConfig, profiles: Sequence[ClientProfile]
) -> list[dict[str, Any]]:
    """All rounds of ``run`` in a plain loop; one record per round (+ round 0).

    Each record: ``seconds`` (train -> align -> evaluate when due, as the
    driver times a round), ``cpu_s`` (CPU seconds of this process in the round),
    ``phases`` (seconds per phase), ``bytes-up``/
    ``bytes-down`` (since the round's train phase, as the strategy counts),
    and the evaluation's alignment and per-client metrics when evaluated.
    """
    wire = _Wire(run, profiles)
    nodes = range(len(profiles))
    algorithm = get_algorithm(run.algorithm)
    t_align = algorithm.align_steps(run)
    messages = (1 if run.muscle.sync == "per-round" else t_align) if t_align else 0
    probe = agg.probe_indices(run.seed, run.eval.probe_size, run.public.size)
    rows: list[dict[str, Any]] = []
    if run.eval.initial:
        t0 = time.perf_counter()
        row = {"round": 0, **_evaluate(wire, 0, probe)}
        rows.append(row | {"seconds": time.perf_counter() - t0})
    for rnd in range(1, run.num_rounds + 1):
        wire.up = wire.down = 0
        phases: dict[str, float] = {}
        t0, cpu0 = time.perf_counter(), time.process_time()
        b = run.muscle.batch_size
        batches = agg.public_batches(run.seed, rnd, t_align, b, run.public.size)
        k = t_align if run.muscle.sync == "per-round" else min(t_align, 1)
        asked = {p.ENCODE_INDICES: batches[:k]}
        replies = [wire.call(n, p.TRAIN, rnd, 0, asked, batches[:k]) for n in nodes]
        wire.bank = {
            n: r.z for n, r in zip(nodes, replies, strict=True) if r.z is not None
        }
        phases["train"] = time.perf_counter() - t0
        for step in range(messages):
            wire.bank = _align(wire, rnd, step, batches)
        phases["align"] = time.perf_counter() - t0 - phases["train"]
        row = {"round": rnd}
        if rnd % run.eval.every == 0 or rnd == run.num_rounds:
            row |= _evaluate(wire, rnd, probe)
            phases["evaluate"] = time.perf_counter() - t0 - sum(phases.values())
        seconds = time.perf_counter() - t0
        rows.append(
            row
            | {"seconds": seconds, "cpu_s": time.process_time() - cpu0}
            | {"phases": phases}
            | {"bytes-up": wire.up, "bytes-down": wire.down}
        )
    return rows


# ------------------------------------------------------------------ simulation
def tree_cpu_seconds(root: int | None = None) -> float:
    """user+system CPU seconds of ``root`` (default: this process) and descendants.

    Robust to other users' load, unlike wall time. Ray's daemons and actors and
    Flower's processes are descendants of the process that started them.
    """
    from fedmuscle_flwr.launch.deploy.processes import descendants

    root = os.getpid() if root is None else root
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in [root, *descendants(root)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def actor_threads() -> list[dict[str, str]]:
    """OMP_NUM_THREADS and OS thread count of the Ray ClientApp actors."""
    from fedmuscle_flwr.launch.deploy.processes import descendants

    out = []
    for pid in descendants(os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"ClientAppActor" not in cmd:
                continue
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        omp = [e.decode() for e in env if e.startswith(b"OMP_NUM_THREADS=")]
        threads = re.search(r"Threads:\s+(\d+)", status)
        out.append(
            {"omp": ",".join(omp), "threads": threads.group(1) if threads else "?"}
        )
    return out


class _DriverLog(logging.Handler):
    """Keeps the driver's records, each stamped with the process tree's CPU time."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.actors: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.tree_cpu = tree_cpu_seconds()
        self.records.append(record)
        if not self.actors and record.msg.startswith("round %d done"):
            self.actors = actor_threads()


@contextmanager
def driver_records() -> Iterator[_DriverLog]:
    """Capture the round records of the strategy (the ServerApp runs in-process)."""
    logger = logging.getLogger("fedmuscle_flwr.serverapp.strategy")
    handler, level = _DriverLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _cpu(record: logging.LogRecord) -> float:
    return float(getattr(record, "tree_cpu", 0.0))


def rounds_from_records(records: Sequence[logging.LogRecord]) -> dict[str, Any]:
    """Startup, per-round seconds and per-phase seconds from the driver's log."""
    start = next(r.created for r in records if "clients connected" in r.msg)
    rounds: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    last = start
    cpu_mark = next(_cpu(r) for r in records if "clients connected" in r.msg)
    for rec in records:
        args: Any = rec.args
        cpu = _cpu(rec)
        if rec.msg.startswith("round %d done"):
            row = {"round": args[0], "seconds": args[1], "cpu_s": cpu - cpu_mark}
            rounds.append(row)
            cpu_mark = cpu
        elif rec.msg.startswith("round %d"):
            if args[0] == 0:
                cpu_mark = cpu  # round 1 starts after the initial evaluation
            kind = rec.msg.split()[2].rstrip(":")  # train / align / evaluate
            phases.append({"round": args[0], "phase": kind, "end": rec.created})
    out: dict[int, dict[str, float]] = {}
    for ph in phases:
        seconds = ph["end"] - last
        last = ph["end"]
        out.setdefault(ph["round"], {})
        out[ph["round"]][ph["phase"]] = out[ph["round"]].get(ph["phase"], 0) + seconds
    for r in rounds:
        r["phases"] = out.get(r["round"], {})
    return {"connected_at": start, "rounds": rounds, "round0": out.get(0, {})}


def simulate_timed(run: RunConfig, cpus_per_client: float) -> dict[str, Any]:
    """One Flower simulation; wall time split into startup, rounds and the rest."""
    from fedmuscle_flwr.launch.simulation import simulate
    from fedmuscle_flwr.runs.metrics import read_summary

    t0 = time.time()
    with driver_records() as log:
        run_dir = simulate(run, cpus_per_client=cpus_per_client)
    total = time.time() - t0
    timing = rounds_from_records(log.records)
    timing["actors"] = log.actors
    timing["startup_s"] = timing.pop("connected_at") - t0
    timing["total_s"] = total
    timing["cpus_per_client"] = cpus_per_client
    timing["final"] = read_summary(run_dir)["clients"]
    timing["server_rows"] = server_rows(run_dir)
    return timing


def server_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The strategy's per-evaluation rows (alignment, bytes) of a run folder."""
    import json

    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("phase") == "round":
            rows.append(rec)
    return rows


def roster_profiles(roster: str) -> tuple[ClientProfile, ...]:
    """The roster's profiles (names made unique, as simulation does)."""
    return load_roster(roster)
