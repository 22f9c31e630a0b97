"""Accuracy effect of the wire precision (fp32 / fp16 / int8-with-scale), over seeds.

    python bench/precision_bench.py --seeds 0,1,2,3,4 --rounds 3 --out bench/results

Runs the ``tiny`` preset with the ``tiny`` roster (3 clients: small-cnn and vit-tiny
on Fashion-MNIST, an MLP on the mosaics) in the plain in-process loop of ``_fed.py``
for every (seed, precision). That loop encodes and decodes every instruction and
reply with the project's codec, so the precision acts exactly as in a Flower run,
and it gives the same per-client metrics as the Flower simulation
(``flower_overhead.py`` checks this). Reports the final per-client metric, the
probe alignment and the bytes of the last round, per precision: the mean over
seeds, and the mean and spread of the difference to fp32 at the same seed.
Writes precision_bench.json/.md to --out (default $OUT or ./bench-out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PRECISIONS = ("fp32", "fp16", "int8")


def one(seed: int, precision: str, rounds: int, roster: str) -> dict[str, Any]:
    from _fed import plain_federation, roster_profiles, run_config

    run = run_config(
        "tiny",
        **{"num-rounds": rounds, "seed": seed, "muscle.precision": precision},
        **{"federation.roster": roster},
    ).model_copy(update={"run_name": f"s{seed}-{precision}"})
    rows = plain_federation(run, roster_profiles(roster))
    last = rows[-1]
    return {
        "seed": seed,
        "precision": precision,
        "metrics": {c: m["metric"] for c, m in last["clients"].items()},
        "alignment": last["alignment"],
        "bytes-up": last["bytes-up"],
        "bytes-down": last["bytes-down"],
    }


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def table(recs: list[dict[str, Any]]) -> str:
    clients = sorted(recs[0]["metrics"])
    seeds = sorted({r["seed"] for r in recs})
    at = {(r["seed"], r["precision"]): r for r in recs}
    head = "| precision | " + " | ".join(clients)
    head += " | mean of clients | Δ mean vs fp32 (same seed) | probe +sim | "
    head += "probe MI bound | bytes up / round | bytes down / round |\n"
    head += "|---" * (len(clients) + 7) + "|\n"
    lines = []
    for prec in PRECISIONS:
        rows = [at[s, prec] for s in seeds]
        cells = [_mean_sd([r["metrics"][c] for r in rows]) for c in clients]
        means = [statistics.mean(r["metrics"].values()) for r in rows]
        base = [statistics.mean(at[s, "fp32"]["metrics"].values()) for s in seeds]
        delta = _mean_sd([m - b for m, b in zip(means, base, strict=True)])
        pos = _mean_sd([r["alignment"]["probe-positive-sim"] for r in rows])
        mi = _mean_sd([r["alignment"]["probe-mi-bound"] for r in rows])
        lines.append(
            f"| {prec} | "
            + " | ".join(cells)
            + f" | {_mean_sd(means)} | {delta} | {pos} | {mi} | "
            f"{rows[0]['bytes-up']:,} | {rows[0]['bytes-down']:,} |"
        )
    per_seed = ["", "| seed | " + " | ".join(PRECISIONS) + " |", "|---" * 4 + "|"]
    for s in seeds:
        cells = [
            ", ".join(f"{at[s, p]['metrics'][c]:.3f}" for c in clients)
            for p in PRECISIONS
        ]
        per_seed.append(f"| {s} | " + " | ".join(cells) + " |")
    note = f"\nPer seed, metric of {', '.join(clients)}:\n"
    return head + "\n".join(lines) + "\n" + note + "\n".join(per_seed) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--roster", default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fm-precision-"))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    os.environ["FEDMUSCLE_STATE_DIR"] = str(tmp / "state")
    sys.path.insert(0, str(BENCH))
    import torch
    from _common import out_dir, write
    from _fed import environment

    torch.set_num_threads(args.threads)
    env = environment()
    recs = []
    for seed in map(int, args.seeds.split(",")):
        for prec in PRECISIONS:
            recs.append(one(seed, prec, args.rounds, args.roster))
            print(recs[-1], flush=True)
    md = (
        f"Run {env['date_utc']}, torch {env['torch']}, {args.threads} thread(s); "
        f"preset tiny, roster {args.roster}, {args.rounds} rounds, seeds "
        f"{args.seeds}; mean ± sd over seeds.\n\n"
    )
    payload = {"env": env, "args": vars(args), "results": recs}
    write(
        out_dir(args.out or "bench-out"), "precision_bench", payload, md + table(recs)
    )


if __name__ == "__main__":
    main()
