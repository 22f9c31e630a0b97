"""Deployed rounds vs in-process rounds of the same work (issue 12's targets).

    # default preset, its 4 clients; tiny preset, its 3 clients; 10 tiny clients
    python bench/deployed_rounds.py --preset default --rounds 3 --out bench/results
    python bench/deployed_rounds.py --preset tiny --rounds 3 \\
        --variants warm,flower-waits,stock --out bench/results
    python bench/deployed_rounds.py --preset tiny --clients 10 --rounds 2 \\
        --set federation.wait-clients-s=900 --out bench/results

Runs the run config once in-process (``launch.inprocess.run_inprocess``: the real
ServerApp logic and ClientApp in one process, clients one after the other) and
once per deployment variant on loopback: ``fedmuscle server --insecure`` plus
one ``fedmuscle client --insecure --exit-after-run`` per roster entry, with

* ``warm``: the default client (resident ClientApp, shortened SuperNode waits);
* ``flower-waits``: warm, but the SuperNode keeps Flower's 3 s idle sleep and
  0.5 s reply wait (``--supernode-idle-s 3 --supernode-reply-s 0.5``): the
  difference to ``warm`` is those sleeps' share of a round;
* ``stock``: ``--no-warm``, Flower's stock SuperNode, one ``flwr-clientapp``
  process per message.

A round is timed by the driver (``round k done in X s``, train -> align ->
evaluate when due); rounds 1..R are compared (round 0 is the initial evaluation,
which pays the clients' start). Also recorded: model builds per client, every
client's exit status, the final per-client
metrics (the same in every mode: the same work), and the 1-minute load average
before and after each part. Torch runs with one thread everywhere. Model builds:
the model summary (DEBUG) in-process, ``built model X for run K`` for a warm
client, one per ``flwr-clientapp`` process for a stock SuperNode.
Writes deployed_rounds_<preset>_<N>.json/.md to --out (default ./bench-out).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "from fedmuscle_flwr.cli import main; main()"]
#: one per model build: the model summary (DEBUG, in-process), a warm client's
#: ``built model X for run K`` line, a stock SuperNode's ClientApp process start
_BUILD = re.compile(r"model \S+: F=\d+")
_DEPLOYED_BUILD = re.compile(r"built model \S+ for run|Start `flwr-clientapp` process")
VARIANTS = {
    "warm": [],
    "flower-waits": [
        "--supernode-idle-s",
        "3",
        "--supernode-reply-s",
        "0.5",
        "--supernode-pull-backoff-s",
        "1",
    ],
    "stock": ["--no-warm"],
}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def inprocess_timed(run: Any) -> dict[str, Any]:
    """The in-process engine, with the driver's round times."""
    from _fed import driver_records, rounds_from_records

    from fedmuscle_flwr.launch.inprocess import run_inprocess
    from fedmuscle_flwr.runs.metrics import read_summary

    builds: list[str] = []

    class _Builds(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if _BUILD.search(record.getMessage()):
                builds.append(record.getMessage())

    model_log = logging.getLogger("fedmuscle_flwr.models.client_model")
    handler, level = _Builds(), model_log.level
    model_log.addHandler(handler)
    model_log.setLevel(logging.DEBUG)
    load0, t0 = _load(), time.time()
    try:
        with driver_records() as rec:
            run_dir = run_inprocess(run)
    finally:
        model_log.removeHandler(handler)
        model_log.setLevel(level)
    timed = rounds_from_records(rec.records)
    return {
        "total_s": time.time() - t0,
        "rounds": [
            {"round": r["round"], "seconds": r["seconds"]} for r in timed["rounds"]
        ],
        "builds": len(builds),
        "final": read_summary(run_dir)["clients"],
        "load": [load0, _load()],
    }


def deployed_timed(
    run: Any, profiles: Any, tmp: Path, variant: str, timeout: float
) -> dict[str, Any]:
    """``fedmuscle server`` + one ``fedmuscle client`` per profile, on loopback."""
    from flower_overhead import _profile_file, _rounds_from_text

    from fedmuscle_flwr.launch.deploy.processes import (
        Managed,
        flower_env,
        free_port,
        process_group,
    )
    from fedmuscle_flwr.launch.deploy.server import write_run_config
    from fedmuscle_flwr.runs.metrics import read_summary

    fleet, control = free_port(), free_port()
    preset = write_run_config(run, tmp / "preset.toml")
    server_cmd = [
        *CLI, "server", "--insecure", "--preset", str(preset),
        "--address", f"127.0.0.1:{fleet}", "--control-address", f"127.0.0.1:{control}",
        "--output", str(tmp / "runs"), "--workdir", str(tmp / "server"),
    ]  # fmt: skip
    load0, t0 = _load(), time.time()
    with process_group() as procs:
        server = Managed("server", server_cmd, flower_env(tmp / "home"), tmp / "srv")
        procs.append(server)
        clients = []
        for i, prof in enumerate(profiles):
            cmd = [
                *CLI, "client", "--insecure", "--exit-after-run",
                "--server", f"127.0.0.1:{fleet}", "--profile", _profile_file(prof, tmp),
                "--state-dir", str(tmp / f"state-{i}"), *VARIANTS[variant],
            ]  # fmt: skip
            home = tmp / f"client-{i}"
            clients.append(Managed(f"client-{i}", cmd, flower_env(home), home / "out"))
            procs.append(clients[-1])
        deadline = time.time() + timeout
        while (code := server.poll()) is None and time.time() < deadline:
            dead = [c for c in clients if c.poll() not in (None, 0)]
            if dead:
                raise RuntimeError(f"{dead[0].name} failed; see {dead[0].log_path}")
            time.sleep(1.0)
        for c in clients:  # --exit-after-run: they end by themselves
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.wait(120)
    total = time.time() - t0
    if code != 0:
        raise RuntimeError(f"server exited {code}; see {tmp / 'srv'}")
    log_text = (tmp / "server" / "logs" / "serverapp.log").read_text()
    run_dir = next((tmp / "runs").iterdir())
    return {
        "total_s": total,
        "rounds": _rounds_from_text(log_text),
        "builds": [
            len(_DEPLOYED_BUILD.findall(c.log_path.read_text())) if c.log_path else None
            for c in clients
        ],
        "client_exit": [c.proc.returncode for c in clients],
        "final": read_summary(run_dir)["clients"],
        "load": [load0, _load()],
    }


def _steady(res: dict[str, Any]) -> list[float]:
    return [r["seconds"] for r in res["rounds"] if r["round"] >= 1]


def markdown(payload: dict[str, Any]) -> str:
    env = payload["env"]
    base = statistics.mean(_steady(payload["results"]["in-process"]))
    lines = [
        f"# Deployed vs in-process rounds: preset {payload['preset']}, "
        f"{payload['clients']} clients, {payload['num_rounds']} rounds",
        "",
        f"{env['date_utc']}, flwr {env['flwr']}, torch {env['torch']}, "
        f"{env['cpus']} CPUs, 1 torch thread",
        "",
        "| mode | rounds 1..R s | mean s/round | × in-process | + s/round | "
        "model builds | client exits | load before/after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in payload["results"].items():
        steady = _steady(res)
        mean = statistics.mean(steady)
        lines.append(
            f"| {name} | {', '.join(f'{s:.1f}' for s in steady)} | {mean:.2f} | "
            f"{mean / base:.2f}× | {mean - base:+.2f} | {res['builds']} | "
            f"{res.get('client_exit', '-')} | {res['load'][0]} / {res['load'][1]} |"
        )
    lines += ["", f"same final metrics in every mode: {payload['same']}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--clients", type=int, default=0, help="0: the preset's roster")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default="warm", help=",".join(VARIANTS))
    ap.add_argument("--set", action="append", default=[], help="dotted key=value")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fm-deployed-"))
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    os.environ["FEDMUSCLE_STATE_DIR"] = str(tmp / "state")
    for key in ("FLWR_DISABLE_UPDATE_CHECK", "FLWR_TELEMETRY_ENABLED"):
        os.environ.setdefault(key, "1" if "UPDATE" in key else "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(BENCH))
    import torch
    from _common import out_dir, write
    from _fed import environment, roster_profiles, run_config, write_roster

    from fedmuscle_flwr.config.files import load_preset

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    roster = str(load_preset(args.preset)["federation"]["roster"])
    if args.clients:
        roster = str(write_roster(tmp / "roster.toml", args.clients))
    profiles = roster_profiles(roster)
    sets: dict[str, Any] = dict(kv.split("=", 1) for kv in args.set)
    run = run_config(
        args.preset,
        **{"num-rounds": args.rounds, "federation.roster": roster},
        **{"federation.min-clients": len(profiles), "device": "cpu"},
        **{"output-dir": str(tmp / "runs"), **sets},
    )
    env = environment()
    results: dict[str, dict[str, Any]] = {}
    for variant in filter(None, args.variants.split(",")):
        results[f"deployed, {variant}"] = deployed_timed(
            run, profiles, tmp / variant, variant, args.timeout
        )
        print(variant, _steady(results[f"deployed, {variant}"]), flush=True)
    results["in-process"] = inprocess_timed(
        run.model_copy(update={"run_name": "inprocess"})
    )
    print("in-process", _steady(results["in-process"]), flush=True)
    from flower_overhead import _same_metrics

    base = results["in-process"]["final"]
    payload = {
        "env": env,
        "preset": args.preset,
        "clients": len(profiles),
        "num_rounds": args.rounds,
        "sets": sets,
        "results": results,
        "same": {name: _same_metrics(base, r["final"]) for name, r in results.items()},
    }
    stem = f"deployed_rounds_{args.preset}_{len(profiles)}"
    write(out_dir(args.out or "bench-out"), stem, payload, markdown(payload))


if __name__ == "__main__":
    main()
