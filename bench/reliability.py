"""Reliability figures for docs/reliability.md: privacy noise and poisoning vs Δ.

Every run is a real federation (real models, real ClientApp handlers, the real
strategy) on the in-process grid, so the numbers are those of a deployment with
the same seeds, without Flower's process and network overhead.

    python bench/reliability.py privacy [--noise 0,0.05,0.1,0.3,1] [--seed 0]
    python bench/reliability.py poison  [--attacks random,permuted,collapsed,negated]

``privacy``: the tiny preset (server/tiny.toml and clients/rosters/tiny.toml), a
``local`` reference run, then FedMuscle with ``privacy.noise`` σ ∈ the list;
prints mean Δ and the final probe alignment per σ.
``poison``: three cheap honest clients (small CNN x2, MLP) and a fourth that
uploads transformed representations; honest clients' mean Δ for a clean run,
the attacked run with the screen (``robust``) on, and with it off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ.setdefault("FEDMUSCLE_STATE_DIR", tempfile.mkdtemp(prefix="fm-state-"))

from tests.faulty import ATTACKER, HONEST, poisoning, write_roster  # noqa: E402

from fedmuscle_flwr.cli.common import build_run_config  # noqa: E402
from fedmuscle_flwr.clientapp.app import app as client_app  # noqa: E402
from fedmuscle_flwr.config.files import load_roster  # noqa: E402
from fedmuscle_flwr.config.run import RunConfig  # noqa: E402
from fedmuscle_flwr.launch.inprocess import InProcessGrid  # noqa: E402
from fedmuscle_flwr.runs.metrics import (  # noqa: E402
    SERVER_ROW,
    RunRecorder,
    delta_rows,
    mean_delta,
)
from fedmuscle_flwr.serverapp.strategy import FedMuscle  # noqa: E402


def federate(run: RunConfig, attacker: int = -1, poison: str = "") -> dict[str, Any]:
    """One run on the in-process grid; node ``attacker`` poisons its uploads."""

    handler = poisoning(client_app, attacker, poison) if poison else client_app
    n = len(load_roster(run.federation.roster))
    rec = RunRecorder(Path(run.output_dir) / run.run_name)
    history: dict[int, Any] = {}
    t0 = time.perf_counter()
    grid = InProcessGrid(handler, n, first_id=101)
    strategy = FedMuscle(run, rec, on_round=lambda r, s, _: history.update({r: s}))
    strategy.start(grid=grid)
    server = [r for r in rec.rows if r["client"] == SERVER_ROW]
    return {
        "final": rec.final_metrics(),
        "history": history,
        "probe": server[-1],
        "seconds": time.perf_counter() - t0,
    }


def delta(res: dict[str, Any], local: dict[str, Any], only: set[str]) -> float:
    ours = {c: r for c, r in res["final"].items() if c in only}
    return mean_delta(delta_rows(ours, local["final"]))


def privacy(args: argparse.Namespace, out: Path) -> None:
    base = {
        "output-dir": str(out),
        "device": "cpu",
        "federation.poll-s": 0.01,
        "seed": args.seed,
        "robust.enabled": True,  # to count the screen's false positives under noise
    }
    local = federate(
        build_run_config(
            "tiny", None, {**base, "algorithm": "local", "run-name": "local"}
        )
    )
    names = set(local["final"])
    print(
        "| privacy.noise σ | noise norm ≈ σ√d | mean Δ % | probe pos−neg sim "
        "| clients flagged | s |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for sigma in [float(s) for s in args.noise.split(",")]:
        sets = {**base, "run-name": f"noise-{sigma}", "privacy.noise": sigma}
        run = build_run_config("tiny", None, sets)
        res = federate(run)
        gap = res["probe"]["probe-positive-sim"] - res["probe"]["probe-negative-sim"]
        norm = sigma * np.sqrt(run.muscle.dim)
        flagged = sum(h["quarantined"] for h in res["history"].values())
        print(
            f"| {sigma:g} | {norm:.2f} | {delta(res, local, names):+.1f} | "
            f"{gap:.3f} | {flagged:.0f} | {res['seconds']:.0f} |",
            flush=True,
        )
    metrics = {c: round(r["metric"], 4) for c, r in local["final"].items()}
    print(f"local reference: {json.dumps(metrics)}")


def poison(args: argparse.Namespace, out: Path) -> None:
    honest = write_roster(out / "honest.toml", HONEST, max_train=96)
    mixed = write_roster(out / "mixed.toml", [*HONEST, ATTACKER], max_train=96)
    base = {
        "num-rounds": args.rounds, "public.size": 300, "muscle.steps": 6,
        "muscle.batch-size": 16, "muscle.dim": 32, "muscle.partners": 2,
        "muscle.lr": 3e-3, "eval.probe-size": 16, "eval.initial": False,
        "eval.every": args.rounds, "output-dir": str(out), "device": "cpu",
        "federation.poll-s": 0.01,
    }  # fmt: skip

    def cfg(name: str, roster: Path, **flat: Any) -> RunConfig:
        n = len(load_roster(str(roster)))
        return RunConfig.from_flat(
            {**base, "run-name": name, "federation.roster": str(roster),
             "federation.min-clients": n, **flat}
        )  # fmt: skip

    local = federate(cfg("local", honest, algorithm="local"))
    names = set(local["final"])
    clean = federate(cfg("clean", honest))
    print(f"clean run: honest mean Δ = {delta(clean, local, names):+.2f} %")
    print("| attack | screen | rounds flagged | honest mean Δ % | Δ − clean | s |")
    print("|---|---|---:|---:|---:|---:|")
    for attack in args.attacks.split(","):
        for screen in (True, False):
            run = cfg(f"{attack}-{screen}", mixed, **{"robust.enabled": screen})
            res = federate(run, attacker=3, poison=attack)
            flagged = sum(1 for h in res["history"].values() if h["quarantined"])
            d = delta(res, local, names)
            print(
                f"| {attack} | {'on' if screen else 'off'} | {flagged}/{args.rounds} "
                f"| {d:+.2f} | {d - delta(clean, local, names):+.2f} "
                f"| {res['seconds']:.0f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    pr = sub.add_parser("privacy")
    pr.add_argument("--noise", default="0,0.05,0.1,0.3,1")
    pr.add_argument("--seed", type=int, default=0)
    po = sub.add_parser("poison")
    po.add_argument("--attacks", default="random,permuted,collapsed,negated")
    po.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fm-rel-") as tmp:
        {"privacy": privacy, "poison": poison}[args.what](args, Path(tmp))


if __name__ == "__main__":
    main()
