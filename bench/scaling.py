"""Scaling: round time, CPU, memory and bytes as the federation grows (4 -> 100).

    python bench/scaling.py --clients 4,16,64 --rounds 2 --out bench/results
    python bench/scaling.py --clients 4,16,64 --engines sim,plain --out bench/results
    python bench/scaling.py --clients 4,16,64,100 --rounds 3 --stem scaling_100 \
        --out bench/results

Tiny clients (``_fed.write_roster``: small-cnn on Fashion-MNIST and an MLP on the
mosaics, alternating, 96 train / 100 test images each) under the ``tiny`` preset
(T = 8 steps, B = 16, d = 32, M = 2, fp16), evaluated every round so that every
round reports its bytes (the strategy counts them from train to evaluate), no
initial evaluation. Engines: ``sim`` = Flower simulation (Ray backend, 1 CPU per
client by default, i.e. 2 actors on 2 cores; ``--cpus-per-client`` changes the
number of actors), ``plain`` = the plain in-process loop of ``_fed.py`` (one
client after the other). For ``sim`` the memory of the whole process tree (the
driver, Ray's daemons and actors) is sampled every second (``_proctree.py``:
peak sum of PSS, and of RSS). Writes <stem>.json/.md to --out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
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


class LinkTiming:
    """Thread CPU seconds and calls of the simulation's LinkState hot spots.

    ``get_message_ins``: Flower's delivery loop (``vce_api.add_messages_to_queue``)
    asks it for every node every 0.1 s, and each call scans every stored message;
    ``get_message_res``: the ServerApp's pull of replies (``serverapp/rounds.py``,
    every ``federation.poll-s``). Both run in the driver process.
    """

    NAMES = ("get_message_ins", "get_message_res")

    def __init__(self) -> None:
        from flwr.server.superlink.linkstate.in_memory_linkstate import (
            InMemoryLinkState,
        )

        self.cls, self.saved = InMemoryLinkState, {}
        self.cpu_s = dict.fromkeys(self.NAMES, 0.0)
        self.calls = dict.fromkeys(self.NAMES, 0)

    def _wrap(self, name: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu_s[name] += time.thread_time() - t0
                self.calls[name] += 1

        return timed

    def __enter__(self) -> LinkTiming:
        for name in self.NAMES:
            self.saved[name] = getattr(self.cls, name)
            setattr(self.cls, name, self._wrap(name, self.saved[name]))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self.saved.items():
            setattr(self.cls, name, fn)

    def as_dict(self) -> dict[str, Any]:
        return {"cpu_s": self.cpu_s, "calls": self.calls}


def measure(
    engine: str, n: int, rounds: int, tmp: Path, sets: dict, cpus: float
) -> dict:
    import torch
    from _fed import (
        plain_federation,
        roster_profiles,
        run_config,
        simulate_timed,
        write_roster,
    )
    from _proctree import TreeMemory

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
    with TreeMemory() as memory, LinkTiming() as link:
        res = simulate_timed(run, cpus_per_client=cpus)
    return {
        "engine": engine,
        "clients": n,
        "cpus_per_client": cpus,
        "rounds": _rows_sim(res),
        "outside_rounds_s": res["total_s"] - sum(r["seconds"] for r in res["rounds"]),
        "startup_s": res["startup_s"],
        "total_s": res["total_s"],
        "memory": memory.as_dict(),
        "linkstate": link.as_dict(),
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
        "CPU s, last round (per client) | bytes up / round | bytes down / round | "
        "per client up / down | s outside rounds | peak PSS (RSS sum) | "
        "actors |\n" + "|---" * 12 + "|\n"
    )
    lines = []
    for r in recs:
        rows, n = r["rounds"], r["clients"]
        last = rows[-1]
        secs = ", ".join(f"{x['seconds']:.1f}" for x in rows)
        up, down = last.get("bytes-up"), last.get("bytes-down")
        per = f"{human(up / n)} / {human(down / n)}" if up and down else "—"
        cpu = last.get("cpu_s")
        cpu_txt = "—" if cpu is None else f"{cpu:.1f} ({cpu / n:.2f})"
        outside = r.get("outside_rounds_s")
        mem = r.get("memory")
        mem_txt = (
            f"{mem['peak_pss_mb'] / 1024:.2f} GiB ({mem['peak_rss_sum_mb'] / 1024:.2f})"
            if mem
            else "—"
        )
        actors = str(mem["peak_actors"]) if mem else "—"
        lines.append(
            f"| {n} | {r['engine']} | {secs} | {last['seconds']:.1f} | "
            f"{last['seconds'] / n:.2f} | {cpu_txt} | {human(up)} | {human(down)} | "
            f"{per} | {'—' if outside is None else f'{outside:.0f}'} | {mem_txt} | "
            f"{actors} |"
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
    ap.add_argument("--cpus-per-client", type=float, default=1.0)
    ap.add_argument("--stem", default="scaling", help="output file name")
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
    try:  # rosters, run folders and client states (4.3 MB per tiny client)
        recs = [
            measure(engine, n, args.rounds, tmp, sets, args.cpus_per_client)
            for n in map(int, args.clients.split(","))
            for engine in args.engines.split(",")
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in recs:
        secs = [x["seconds"] for x in r["rounds"]]
        r["median_s"] = statistics.median(secs)
    md = (
        f"Run {env['date_utc']}, flwr {env['flwr']}, torch {env['torch']}, "
        f"{env['cpus']} cores, {args.threads} torch thread(s), "
        f"{args.cpus_per_client:g} Ray CPU per client, load average "
        f"{env['loadavg_1m']} (start) → {os.getloadavg()[0]:.2f} (end).\n\n"
    )
    payload = {"env": env, "args": vars(args), "results": recs}
    write(out_dir(args.out or "bench-out"), args.stem, payload, md + table(recs, 3))


if __name__ == "__main__":
    main()
