"""Honest clients' mean Δ under a negating or random client, over several seeds.

The federation of the CI poisoning tests (tests/integration/test_faults.py:
small CNN x2 + MLP honest, a small-CNN fourth client, 2 rounds, in process);
per seed: clean (3 honest), the fourth client honest, negated and random with
the screen on and off. Prints one JSON row per seed, then the means and the
paired differences (docs/reliability.md §2.3).

    python bench/poison_seeds.py [--seeds 0-9] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.faulty import ATTACKER, HONEST  # noqa: E402
from tests.integration.test_faults import federate, honest_delta  # noqa: E402

MIXED = [*HONEST, ATTACKER]
OFF = {"robust.enabled": False}
RUNS: dict[str, dict[str, Any]] = {
    "clean": {"entries": HONEST},
    "4th-honest": {"entries": MIXED},
    "negated-on": {"entries": MIXED, "poison": "negated"},
    "negated-off": {"entries": MIXED, "poison": "negated", **OFF},
    "random-on": {"entries": MIXED, "poison": "random"},
    "random-off": {"entries": MIXED, "poison": "random", **OFF},
}
PAIRS = [
    ("negated-on", "clean"),
    ("negated-off", "clean"),
    ("negated-on", "negated-off"),
    ("4th-honest", "clean"),
    ("random-off", "clean"),
]


def one_seed(seed: int, rounds: int) -> dict[str, tuple[float, list[int]]]:
    tmp = Path(tempfile.mkdtemp(prefix=f"poison-{seed}-"))
    os.environ["FEDMUSCLE_STATE_DIR"] = str(tmp / "state")  # fresh models per seed
    length = {"num-rounds": rounds, "eval.every": rounds}
    local = federate(tmp, "local", HONEST, algorithm="local", seed=seed, **length)
    row = {}
    for name, kw in RUNS.items():
        res = federate(tmp, name, seed=seed, **length, **kw)
        flagged = [int(h["quarantined"]) for h in res["history"].values()]
        row[name] = (round(honest_delta(res, local), 2), flagged)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="FIRST-LAST")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    first, last = (int(x) for x in args.seeds.split("-"))
    logging.disable(logging.WARNING)
    rows = {}
    for seed in range(first, last + 1):
        rows[seed] = one_seed(seed, args.rounds)
        print(seed, json.dumps(rows[seed]), flush=True)
    for name in RUNS:
        print(f"mean {name}: {statistics.mean(r[name][0] for r in rows.values()):+.2f}")
    for a, b in PAIRS:
        d = [r[a][0] - r[b][0] for r in rows.values()]
        se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
        up = sum(x > 0 for x in d)
        print(f"{a} - {b}: {statistics.mean(d):+.2f} ± {se:.2f} ({up}/{len(d)})")


if __name__ == "__main__":
    main()
