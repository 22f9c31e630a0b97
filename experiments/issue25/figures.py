"""Figures of the pre-registered tests (docs/results.md §7, §7b, §7c) as PNGs.

    python experiments/issue25/figures.py OUT_DIR TEST=RESULTS_DIR...

TEST is ``lowlabel``, ``crossmodal`` or ``taskhet`` (the run group of the folder's runs,
as experiments/issue16/fairtest.py finds them), optionally ``GROUP:NAME`` to name the
figures NAME (``taskhet:taskhet-7d=...`` for §7d, whose runs are group ``taskhet``
too), or ``GROUP:NAME:ARM`` to take another arm than FedMuscle as the one every other is
compared with (``taskhet:taskhet-7e:fedmuscle-perstep=...`` for §7e). For each test:

* ``<test>-paired.png``: per seed, FedMuscle's (or ARM's) mean Δ minus each other
  method's (points; against Local: its mean Δ itself), one dot per seed, the mean
  with its 95 % t-interval as a bar;
* ``<test>-per-round.png``: the mean over clients and seeds of the task metric after
  each evaluated round, one line per method (the tests evaluate rounds 18-20 only).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

_SPEC = importlib.util.spec_from_file_location(
    "fairtest16", Path(__file__).parents[1] / "issue16" / "fairtest.py"
)
assert _SPEC is not None and _SPEC.loader is not None
base = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(base)


def paired(
    runs: dict, group: str, anchor: str = "fedmuscle"
) -> dict[str, dict[int, float]]:
    """Method -> seed -> ``anchor``'s mean Δ minus the method's (Local: its Δ)."""
    seeds = sorted(s for g, s, a in runs if g == group and a == "local")
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for s in seeds:
        ref = runs[(group, s, "local")]
        if (group, s, anchor) not in runs:
            continue
        fm = base.delta(runs[(group, s, anchor)], ref)
        out["Local"][s] = fm
        for g, s2, a in runs:
            if g == group and s2 == s and a not in ("local", anchor):
                out[a][s] = fm - base.delta(runs[(g, s, a)], ref)
    return dict(out)


def plot_paired(
    diffs: dict[str, dict[int, float]],
    title: str,
    path: Path,
    anchor: str = "FedMuscle",
) -> None:
    fig = Figure(figsize=(1.1 * len(diffs) + 2.5, 3.6))
    ax = fig.add_subplot()
    for i, per_seed in enumerate(diffs.values()):
        values = list(per_seed.values())
        mean, lo, hi = base.interval(values)
        ax.scatter([i] * len(values), values, s=14, color="0.45", zorder=3)
        ax.errorbar(
            [i + 0.18],
            [mean],
            yerr=[[mean - lo], [hi - mean]],
            fmt="o",
            color="C0" if lo > 0 else ("C3" if hi < 0 else "k"),
            capsize=4,
        )
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xticks(range(len(diffs)), [f"− {n}" for n in diffs], rotation=30, ha="right")
    ax.set_ylabel(f"{anchor} − method,\nmean Δ over clients (points)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def per_round(root: Path, group: str) -> dict[str, dict[int, float]]:
    """Method -> round -> mean metric over clients and seeds (evaluated rounds)."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for metrics in root.rglob("metrics.jsonl"):
        if not (metrics.parent / "summary.json").is_file():
            continue
        tag = next((p for p in metrics.parts if base.TAG.match(p)), None)
        m = base.TAG.match(tag) if tag else None
        if m is None or m["group"] != group:
            continue
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            if row.get("phase") == "evaluate" and int(row.get("round", 0)) > 0:
                acc[m["algorithm"]][int(row["round"])].append(float(row["metric"]))
    return {
        a: {r: sum(v) / len(v) for r, v in sorted(rs.items())} for a, rs in acc.items()
    }


def plot_rounds(curves: dict[str, dict[int, float]], title: str, path: Path) -> None:
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    for name, curve in sorted(curves.items()):
        style = {"lw": 2.2} if name == "fedmuscle" else {"lw": 1.2}
        ax.plot(list(curve), list(curve.values()), marker="o", label=name, **style)
    rounds = sorted({r for curve in curves.values() for r in curve})
    ax.set_xticks(rounds)
    ax.set_xlabel("round")
    ax.set_ylabel("task metric, mean over clients and seeds")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for spec in sys.argv[2:]:
        test, _, folder = spec.partition("=")
        group, _, named = test.partition(":")
        name, _, anchor = named.partition(":")
        name, anchor = name or group, anchor or "fedmuscle"
        root = Path(folder)
        runs = base.find_runs(root)
        diffs = paired(runs, group, anchor)
        n = max((len(v) for v in diffs.values()), default=0)
        plot_paired(
            diffs,
            f"{name}: paired per seed (n ≤ {n}), mean and 95 % CI",
            out / f"{name}-paired.png",
            "FedMuscle" if anchor == "fedmuscle" else anchor,
        )
        plot_rounds(
            per_round(root, group),
            f"{name}: metric per evaluated round",
            out / f"{name}-per-round.png",
        )
        print(f"{name}: {out / f'{name}-paired.png'}, {out / f'{name}-per-round.png'}")


if __name__ == "__main__":
    main()
