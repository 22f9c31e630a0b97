"""Issue 16's fair test (docs/results.md §7): tuning selection and the paired analysis.

    python experiments/issue16/fairtest.py select SWEEP_DIR    # tuning runs -> lr
    python experiments/issue16/fairtest.py analyse RESULTS_DIR [--md OUT.md]

Also the statistics of issue 25's test (experiments/issue25/fairtest.py): one-sided
paired t-test p-values (:func:`paired_p`) and Holm's correction (:func:`holm`).

A run is ``<group>.s<seed>.<algorithm>`` (sweep.sh tag) with its ``metrics.jsonl``
somewhere below the folder of that name (sweep output) or under
``RESULTS_DIR/<group>/seed-<seed>/<algorithm>/`` (collect.py layout).
The score of a client in a run is the mean of its metric over its last 3
evaluations; Δ is (score − score of Local, same seed) / score of Local × 100 %,
averaged over clients per seed; intervals are 95 % Student t over the seeds'
paired differences.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import defaultdict
from pathlib import Path

TAG = re.compile(r"^(?P<group>[\w-]+)\.s(?P<seed>\d+)\.(?P<algorithm>[\w-]+)$")
LAST = 3
#: the low-label clients of the rosters (lowlabel; crossmodal: the 20-per-class ones)
LOW_LABEL = (
    "effnet0-20",
    "effnet0b-20",
    "cnn-50",
    "vit-50",
    "noun-lora-20",
    "verb-lora-20",
)
#: two-sided 95 % Student t quantiles by degrees of freedom
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
        8: 2.306, 9: 2.262, 10: 2.228}  # fmt: skip

Scores = dict[str, float]  # client -> score


#: exploratory (not pre-registered): score only these rounds, accept unfinished runs
ROUNDS: tuple[int, ...] = ()


def scores(metrics: Path) -> Scores:
    """Client -> mean metric of its last :data:`LAST` evaluations (after round 0).

    With :data:`ROUNDS` set: the mean over exactly those rounds' evaluations.
    """
    per: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for line in metrics.read_text().splitlines():
        row = json.loads(line)
        rnd = int(row.get("round", 0))
        wanted = not ROUNDS or rnd in ROUNDS
        if row.get("phase") == "evaluate" and rnd > 0 and wanted:
            per[row["client"]].append((rnd, float(row["metric"])))
    need = len(ROUNDS) or LAST
    out = {}
    for client, evals in per.items():
        last = sorted(evals)[-need:]
        if len(last) == need:
            out[client] = sum(m for _, m in last) / need
    return out


def find_runs(root: Path) -> dict[tuple[str, int, str], Scores]:
    """(group, seed, algorithm) -> scores, for every finished run below ``root``."""
    runs: dict[tuple[str, int, str], Scores] = {}
    for metrics in root.rglob("metrics.jsonl"):
        if not ROUNDS and not (metrics.parent / "summary.json").is_file():
            continue  # unfinished
        parts = metrics.parts
        key = None
        for i, part in enumerate(parts):
            m = TAG.match(part)
            if m:
                key = (m["group"], int(m["seed"]), m["algorithm"])
            elif part.startswith("seed-") and i >= 1 and part[5:].isdigit():
                key = (parts[i - 1], int(part[5:]), parts[i + 1])
        sc = scores(metrics) if key is not None else {}
        if key is not None and sc:
            runs[key] = sc
    return runs


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval (nan bounds for fewer than 2 values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975.get(n - 1, 1.96) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (one-sided p-value).

    Exact: the regularised incomplete beta function I_x(df/2, 1/2) at
    x = df / (df + t²), by its continued fraction (Numerical Recipes' betacf).
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)  # P(|T| > |t|) / 2
    return tail if t >= 0 else 1.0 - tail


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )  # fmt: skip
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def paired_p(values: list[float]) -> float:
    """One-sided p-value of "mean > 0" for paired differences (t-test, n − 1 df)."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if sd == 0:
        return 0.0 if mean > 0 else 1.0
    return t_sf(mean / (sd / math.sqrt(n)), n - 1)


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values of one family (reject where < α).

    Sorted ascending, the i-th (0-based) of m is multiplied by m − i, then made
    monotone (running maximum) and capped at 1. Untested hypotheses (nan) are left
    out of the family.
    """
    tested = sorted((p, k) for k, p in pvalues.items() if not math.isnan(p))
    m, running, out = len(tested), 0.0, {}
    for i, (p, key) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        out[key] = running
    return out


def delta(run: Scores, ref: Scores, clients: tuple[str, ...] | None = None) -> float:
    """Mean over clients of the relative difference to ``ref``, %."""
    names = [c for c in ref if clients is None or c in clients]
    return sum((run[c] - ref[c]) / ref[c] * 100 for c in names) / len(names)


def select(sweep: Path) -> None:
    """Print each tuned algorithm's validation score per lr and the chosen lr."""
    runs = find_runs(sweep)
    best: dict[str, tuple[float, str]] = {}
    for (group, seed, algorithm), sc in sorted(runs.items()):
        if not group.startswith("tune-") or not sc:
            continue
        value = sum(sc.values()) / len(sc)
        lr = group.removeprefix("tune-")
        print(f"tune {algorithm} {lr} seed {seed}: mean validation metric {value:.4f}")
        if algorithm not in best or value > best[algorithm][0]:
            best[algorithm] = (value, lr)
    for algorithm, (value, lr) in sorted(best.items()):
        print(f"SELECTED {algorithm} {lr} ({value:.4f})")


#: (group, its Local group): the tests of docs/results.md §7 and §7b
GROUPS = (
    ("lowlabel", "lowlabel"),
    ("lowlabel-z", "lowlabel-z"),
    ("crossmodal", "crossmodal"),
)


def _fmt(values: list[float]) -> str:
    mean, lo, hi = interval(values)
    return f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}] (n={len(values)})"


def analyse(root: Path, md: Path | None) -> None:
    """Per-client table, Δ vs Local with intervals, FedMuscle vs each method."""
    runs = find_runs(root)
    lines: list[str] = []
    for group, ref_group in GROUPS:
        seeds = sorted({s for g, s, a in runs if g == group and a == "local"})
        algos = sorted({a for g, _, a in runs if g == group} - {"local"})
        if not seeds:
            continue
        ref = {s: runs[(ref_group, s, "local")] for s in seeds}
        clients = list(ref[seeds[0]])
        lines.append(f"### {group}: Δ vs Local of the same roster (%), seeds {seeds}")
        lines.append("")
        head = "| method | mean Δ, all clients [95 % CI] | low-label clients |"
        lines += [head + " " + " | ".join(clients) + " |"]
        lines.append("|---" * (3 + len(clients)) + "|")
        loc = [sum(ref[s][c] for s in seeds) / len(seeds) for c in clients]
        lines.append(
            "| Local (score) | | | " + " | ".join(f"{v:.4f}" for v in loc) + " |"
        )
        for a in ["fedmuscle", *[x for x in algos if x != "fedmuscle"]]:
            got = [s for s in seeds if (group, s, a) in runs]
            if not got:
                continue
            d_all = [delta(runs[(group, s, a)], ref[s]) for s in got]
            d_low = [delta(runs[(group, s, a)], ref[s], LOW_LABEL) for s in got]
            per = [
                sum((runs[(group, s, a)][c] - ref[s][c]) / ref[s][c] * 100 for s in got)
                / len(got)
                for c in clients
            ]
            lines.append(
                f"| {a} | {_fmt(d_all)} | {_fmt(d_low)} | "
                + " | ".join(f"{v:+.1f}" for v in per)
                + " |"
            )
        lines.append("")
        base = [s for s in seeds if (group, s, "fedmuscle") in runs]
        rows = []
        for a in algos:
            if a == "fedmuscle":
                continue
            got = [s for s in base if (group, s, a) in runs]
            if got:
                diff = [
                    delta(runs[(group, s, "fedmuscle")], ref[s])
                    - delta(runs[(group, s, a)], ref[s])
                    for s in got
                ]
                rows.append(f"| FedMuscle − {a} | {_fmt(diff)} |")
        if rows:
            lines += ["| paired per-seed difference of mean Δ (points) | [95 % CI] |"]
            lines += ["|---|---|", *rows, ""]
    if ("lowlabel", 0, "fedmuscle") in runs:
        both = [
            s
            for s in range(10)
            if all(
                k in runs
                for k in [
                    ("lowlabel", s, "fedmuscle"),
                    ("lowlabel-z", s, "fedmuscle"),
                    ("lowlabel", s, "local"),
                ]
            )
        ]
        if both:
            loc = {s: runs[("lowlabel", s, "local")] for s in both}
            diff = [
                delta(runs[("lowlabel-z", s, "fedmuscle")], loc[s])
                - delta(runs[("lowlabel", s, "fedmuscle")], loc[s])
                for s in both
            ]
            lines += [
                "Ablation, both against the features-head Local: FedMuscle with the "
                f"head on z − FedMuscle with the head on features: {_fmt(diff)} points",
                "",
            ]
    text = "\n".join(lines)
    print(text)
    if md is not None:
        md.write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("select").add_argument("root", type=Path)
    an = sub.add_parser("analyse")
    an.add_argument("root", type=Path)
    an.add_argument("--md", type=Path)
    an.add_argument(
        "--rounds",
        default="",
        help="exploratory, not the pre-registered metric: score the mean over these "
        "rounds (e.g. 18,19) and accept runs the device limit stopped after them",
    )
    args = parser.parse_args()
    global ROUNDS
    if getattr(args, "rounds", ""):
        ROUNDS = tuple(int(r) for r in args.rounds.split(","))
    if args.cmd == "select":
        select(args.root)
    else:
        analyse(args.root, args.md)


if __name__ == "__main__":
    main()
