"""The tiny preset in Flower simulation at each wire precision, via ``fedmuscle run``.

    python bench/precision_tiny.py --out bench/results

Runs, one after the other (Flower simulation, Ray backend)::

    fedmuscle run --preset tiny --rounds 3 --algorithm fedmuscle \\
        --set muscle.precision=<fp32|fp16|int8> --output <tmp>/<precision>

and collects each run's final per-client metrics and the strategy's byte counts
of the last round (train -> align -> evaluate) into precision_tiny.json/.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PRECISIONS = ("fp32", "fp16", "int8")
CLI = [sys.executable, "-c", "from fedmuscle_flwr.cli import main; main()"]


def run_one(precision: str, rounds: int, out: Path, timeout: float) -> dict[str, Any]:
    cmd = [
        *CLI, "run", "--preset", "tiny", "--rounds", str(rounds),
        "--algorithm", "fedmuscle", "--set", f"muscle.precision={precision}",
        "--output", str(out / precision),
    ]  # fmt: skip
    t0 = time.time()
    with (out / f"{precision}.log").open("w") as log:
        code = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
        )
    if code.returncode != 0:
        raise RuntimeError(f"{precision}: exit {code.returncode}; see {out}")
    run_dir = next((out / precision).glob("*/fedmuscle"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    last = [r for r in rows if r.get("phase") == "round"][-1]
    final = json.loads((run_dir / "summary.json").read_text())["clients"]
    return {
        "precision": precision,
        "seconds": time.time() - t0,
        "metrics": {
            c: {"name": m["metric-name"], "value": m["metric"]}
            for c, m in final.items()
        },
        "last_round": last,
    }


def table(recs: list[dict[str, Any]]) -> str:
    clients = sorted(recs[0]["metrics"])
    head = "| precision | " + " | ".join(
        f"{c} ({recs[0]['metrics'][c]['name']})" for c in clients
    )
    head += " | probe +sim | probe MI bound | bytes up (round) | bytes down (round) |\n"
    head += "|---" * (len(clients) + 5) + "|\n"
    lines = []
    for r in recs:
        last = r["last_round"]
        cells = [f"{r['metrics'][c]['value']:.4f}" for c in clients]
        lines.append(
            f"| {r['precision']} | "
            + " | ".join(cells)
            + f" | {last['probe-positive-sim']:.4f} | {last['probe-mi-bound']:.3f}"
            f" | {int(last['bytes-up']):,} | {int(last['bytes-down']):,} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(BENCH))
    from _common import out_dir, write

    tmp = Path(tempfile.mkdtemp(prefix="fm-prec-tiny-"))
    os.environ.setdefault("FEDMUSCLE_STATE_DIR", str(tmp / "state"))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    recs = [run_one(p, args.rounds, tmp, args.timeout) for p in PRECISIONS]
    md = (
        f"Run {started}, `fedmuscle run --preset tiny --rounds {args.rounds} "
        f"--algorithm fedmuscle --set muscle.precision=...` (Flower simulation), "
        f"load average {load:.1f} → {os.getloadavg()[0]:.1f}.\n\n"
    )
    write(
        out_dir(args.out or "bench-out"),
        "precision_tiny",
        {"results": recs},
        md + table(recs),
    )


if __name__ == "__main__":
    main()
