"""Scaling: round time and bytes per round as the federation grows (4 -> 16 -> 64).

    python bench/scaling.py --clients 4,16,64 --rounds 2 --out bench/results
    python bench/scaling.py --clients 4,16,64 --engines sim,plain --out bench/results

Tiny clients (``_fed.write_roster``: small-cnn on Fashion-MNIST and an MLP on the
mosaics, alternating, 96 train / 100 test images each) under the ``tiny`` preset
(T = 8 steps, B = 16, d = 32, M = 2, fp16), evaluated every round so that every
round reports its bytes (the strategy counts them from train to evaluate), no
initial evaluation. Engines: ``sim`` = Flower simulation (Ray backend, 1 CPU per
client, i.e. 2 actors on 2 cores), ``plain`` = the plain in-process loop of
``_fed.py`` (one client after the other). Writes scaling.json/.md to --out.
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


def _rows_sim(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-round seconds, CPU seconds and bytes of a simulation."""
    by_round = {r["round"]: r for r in res["server_rows"]}
    return [
        {
            "round": r["round"],
            "seconds": r["seconds"],
            "cpu_s": r.get("cpu_s"),
            "bytes-up": by_round.get(r["round"], {}).get("bytes-up"),
            "bytes-down": by_round.get(r["round"], {}).get("bytes-down"),
        }
        for r in res["rounds"]
    ]


def measure(engine: str, n: int, rounds: int, tmp: Path, sets: dict) -> dict:
    import torch
    from _fed import (
        plain_federation,
        roster_profiles,
        run_config,
        simulate_timed,
        write_roster,
    )

    roster = str(write_roster(tmp / f"roster-{n}.toml", n))
    run = run_config(
        "tiny",
        **{"num-rounds": rounds, "federation.roster": roster},
        **{"eval.every": 1, "eval.initial": False, "output-dir": str(tmp / "runs")},
        **sets,
    )
    if engine == "plain":
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        run = run.model_copy(update={"run_name": f"plain-{n}"})
        rows = plain_federation(run, roster_profiles(roster))
        return {"engine": engine, "clients": n, "rounds": rows}
    res = simulate_timed(run, cpus_per_client=1.0)
    return {
        "engine": engine,
        "clients": n,
        "rounds": _rows_sim(res),
        "outside_rounds_s": res["total_s"] - sum(r["seconds"] for r in res["rounds"]),
    }


def human(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def table(recs: list[dict[str, Any]], messages_per_client: int) -> str:
    head = (
        "| clients | engine | round s (1..R) | last round s | s per client | "
        "CPU s, last round | bytes up / round | bytes down / round | "
        "per client up / down | s outside rounds |\n" + "|---" * 10 + "|\n"
    )
    lines = []
    for r in recs:
        rows, n = r["rounds"], r["clients"]
        last = rows[-1]
        secs = ", ".join(f"{x['seconds']:.1f}" for x in rows)
        up, down = last.get("bytes-up"), last.get("bytes-down")
        per = f"{human(up / n)} / {human(down / n)}" if up and down else "—"
        cpu = "—" if last.get("cpu_s") is None else f"{last['cpu_s']:.1f}"
        outside = r.get("outside_rounds_s")
        lines.append(
            f"| {n} | {r['engine']} | {secs} | {last['seconds']:.1f} | "
            f"{last['seconds'] / n:.2f} | {cpu} | {human(up)} | {human(down)} | "
            f"{per} | {'—' if outside is None else f'{outside:.0f}'} |"
        )
    note = (
        f"\n{messages_per_client} messages per client per round "
        "(train, align, evaluate).\n"
    )
    return head + "\n".join(lines) + "\n" + note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="4,16,64")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--engines", default="sim")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="dotted key=value")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fm-scaling-"))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    os.environ["FEDMUSCLE_STATE_DIR"] = str(tmp / "state")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    sys.path.insert(0, str(BENCH))
    from _common import out_dir, write
    from _fed import environment

    sets = dict(kv.split("=", 1) for kv in args.set)
    env = environment()
    recs = [
        measure(engine, n, args.rounds, tmp, sets)
        for n in map(int, args.clients.split(","))
        for engine in args.engines.split(",")
    ]
    for r in recs:
        secs = [x["seconds"] for x in r["rounds"]]
        r["median_s"] = statistics.median(secs)
    md = (
        f"Run {env['date_utc']}, flwr {env['flwr']}, torch {env['torch']}, "
        f"{env['cpus']} cores, {args.threads} torch thread(s), load average "
        f"{env['loadavg_1m']} (start) → {os.getloadavg()[0]:.2f} (end).\n\n"
    )
    payload = {"env": env, "args": vars(args), "results": recs}
    write(out_dir(args.out or "bench-out"), "scaling", payload, md + table(recs, 3))


if __name__ == "__main__":
    main()
