"""Issue 25's task-heterogeneous test (docs/results.md §7c): selection and analysis.

    python experiments/issue25/fairtest.py select SWEEP_DIR    # tune-* runs -> options
    python experiments/issue25/fairtest.py analyse ROOT [--family perstep]
        [--md OUT.md] [--json OUT.json]

Runs are found as in experiments/issue16/fairtest.py
(``<group>.s<seed>.<algorithm>`` folders with a finished ``metrics.jsonl``); the
score of a client is the mean of its last 3 evaluations, Δ per client vs Local of
the same seed (%), averaged over clients.
Tuning groups read ``tune-lr<rate>[-kdt<temperature>]``. Primary hypotheses are
one-sided paired t-tests over the seeds, Holm-corrected as one family: H1-H4 of
§7c/§7d (family ``fedmuscle``, the default), or S1-S2 of §7e (family ``perstep``:
FedMuscle with per-step synchronisation against FedMuscle per-round and against
pairwise InfoNCE; H1 and H2 are then secondary).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "fairtest16", Path(__file__).parents[1] / "issue16" / "fairtest.py"
)
assert _SPEC is not None and _SPEC.loader is not None
base = importlib.util.module_from_spec(_SPEC)
sys.modules["fairtest16"] = base
_SPEC.loader.exec_module(base)

GROUP = "taskhet"
LONERS = ("mnist-20", "noun-lora-20", "verb-lora-20")
TWINS = ("fmnist-a-20", "fmnist-b-20", "mosaic-a-200", "mosaic-b-200")
LOGIT = ("fedmd", "feddf", "cofed")
#: arms in the pre-registered order (the secondary per-step arm last)
ARMS = ("fedmuscle", "pairwise", "public-only", "feddf", "cofed", "fedmd")
PERSTEP = "fedmuscle-perstep"
TUNE = re.compile(r"^tune-lr(?P<lr>[0-9.e+-]+?)(?:-kdt(?P<kdt>[0-9.]+))?$")
ALPHA = 0.05
FAMILIES = ("fedmuscle", "perstep")


def options(group: str) -> tuple[float, float, str]:
    """(lr, kd temperature or 0, the --set options) of a tuning group name."""
    m = TUNE.match(group)
    if m is None:
        raise ValueError(f"not a tuning group: {group!r}")
    opts = f"--set muscle.lr={m['lr']}"
    if m["kdt"]:
        opts += f" --set muscle.kd-temperature={m['kdt']}"
    return float(m["lr"]), float(m["kdt"] or 0), opts


def select(root: Path) -> dict[str, str]:
    """Print every tuning run's validation score and each method's selected options.

    Highest mean-over-clients validation score wins; ties go to the smaller rate,
    then the smaller temperature.
    """
    cands: dict[str, list[tuple[float, float, float, str]]] = {}
    for (group, seed, algorithm), sc in sorted(base.find_runs(root).items()):
        if not group.startswith("tune-") or not sc:
            continue
        lr, kdt, opts = options(group)
        value = sum(sc.values()) / len(sc)
        print(
            f"tune {algorithm} {group} seed {seed}: mean validation metric {value:.4f}"
        )
        cands.setdefault(algorithm, []).append((-value, lr, kdt, opts))
    chosen = {}
    for algorithm, rows in sorted(cands.items()):
        value, _, _, opts = min(rows)
        chosen[algorithm] = opts
        print(f"SELECTED {algorithm} {opts} ({-value:.4f})")
    return chosen


def _interval(values: list[float]) -> dict[str, float]:
    mean, lo, hi = base.interval(values) if values else (math.nan,) * 3
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(values)}


def analyse(root: Path, family: str = "fedmuscle") -> dict[str, object]:
    """Everything the pre-registration reports, as one JSON-able mapping.

    ``family`` names the Holm family of primary hypotheses (module docstring).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    runs = base.find_runs(root)
    seeds = sorted(s for g, s, a in runs if g == GROUP and a == "local")
    ref = {s: runs[(GROUP, s, "local")] for s in seeds}
    order = ("fmnist-a-20", "fmnist-b-20", "mnist-20", "mosaic-a-200", "mosaic-b-200")
    rank = {c: i for i, c in enumerate(order + LONERS[1:])}
    clients = sorted(ref[seeds[0]], key=lambda c: rank.get(c, 99)) if seeds else []
    arms = [a for a in (*ARMS, PERSTEP) if any((GROUP, s, a) in runs for s in seeds)]

    def d(arm: str, s: int, sub: tuple[str, ...] | None = None) -> float:
        return base.delta(runs[(GROUP, s, arm)], ref[s], sub)

    per_arm: dict[str, object] = {}
    for arm in arms:
        got = [s for s in seeds if (GROUP, s, arm) in runs]
        per_arm[arm] = {
            "seeds": got,
            "all": _interval([d(arm, s) for s in got]),
            "per-seed": {s: d(arm, s) for s in got},
            "loners": _interval([d(arm, s, LONERS) for s in got]),
            "twins": _interval([d(arm, s, TWINS) for s in got]),
            "clients": {
                c: _interval(
                    [
                        (runs[(GROUP, s, arm)][c] - ref[s][c]) / ref[s][c] * 100
                        for s in got
                    ]
                )
                for c in clients
            },
        }

    def diff(x: str, sub: tuple[str, ...] | None = None, a: str = "fedmuscle") -> dict:
        got = [s for s in seeds if (GROUP, s, a) in runs and (GROUP, s, x) in runs]
        values = [d(a, s, sub) - d(x, s, sub) for s in got]
        return {
            **_interval(values),
            "p": base.paired_p(values),
            "per-seed": dict(zip(got, values, strict=True)),
        }

    logit_ran = [a for a in LOGIT if a in per_arm]
    best = max(logit_ran, key=lambda a: per_arm[a]["all"]["mean"], default=None)  # type: ignore[index]
    hyp: dict[str, dict] = {}
    if "fedmuscle" in per_arm:
        vals = list(per_arm["fedmuscle"]["per-seed"].values())  # type: ignore[index]
        hyp["H1 FedMuscle > Local"] = {**_interval(vals), "p": base.paired_p(vals)}
        for key, other in (
            ("H2 FedMuscle > pairwise", "pairwise"),
            (f"H3 FedMuscle > best logit baseline ({best})", best),
            ("H4 FedMuscle > public-only", "public-only"),
        ):
            if other in per_arm:
                hyp[key] = diff(other)  # type: ignore[arg-type]
    secondary: dict[str, dict] = {}
    if family == "perstep":
        secondary.update(hyp)
        hyp = {}
        if PERSTEP in per_arm:
            for key, other in (
                ("S1 per-step > FedMuscle (per-round)", "fedmuscle"),
                ("S2 per-step > pairwise", "pairwise"),
            ):
                if other in per_arm:
                    hyp[key] = diff(other, None, PERSTEP)
    adjusted = base.holm({k: v["p"] for k, v in hyp.items()})
    for k, v in hyp.items():
        v["p-holm"] = adjusted.get(k, math.nan)
        v["supported"] = bool(v["p-holm"] < ALPHA)
    for other in ("local", *[a for a in arms if a != "fedmuscle"]):
        for name, sub in (("loners", LONERS), ("twins", TWINS)):
            if other == "local" and "fedmuscle" in per_arm:
                got = per_arm["fedmuscle"]["seeds"]  # type: ignore[index]
                secondary[f"FedMuscle − Local, {name}"] = _interval(
                    [d("fedmuscle", s, sub) for s in got]
                )
            elif other != "local" and "fedmuscle" in per_arm:
                secondary[f"FedMuscle − {other}, {name}"] = diff(other, sub)
    if PERSTEP in per_arm:
        if family == "fedmuscle":
            secondary["per-step − FedMuscle (per-round)"] = diff(
                "fedmuscle", None, PERSTEP
            )
            if "pairwise" in per_arm:
                secondary["per-step − pairwise"] = diff("pairwise", None, PERSTEP)
        for name, sub in (("loners", LONERS), ("twins", TWINS)):
            for other in ("fedmuscle", "pairwise"):
                if other in per_arm:
                    secondary[f"per-step − {other}, {name}"] = diff(other, sub, PERSTEP)
    return {
        "seeds": seeds,
        "clients": clients,
        "arms": per_arm,
        "family": family,
        "hypotheses": hyp,
        "best-logit": best,
        "secondary": secondary,
        "local-scores": {
            c: sum(ref[s][c] for s in seeds) / len(seeds) for c in clients
        },
    }


def _ci(v: dict) -> str:
    return f"{v['mean']:+.2f} [{v['lo']:+.2f}, {v['hi']:+.2f}]"


def markdown(res: dict) -> str:
    """The tables of docs/results.md §7c's outcome."""
    clients = res["clients"]
    lines = [
        f"Seeds with a Local run: {res['seeds']}",
        "",
        "| method | all 7 clients [95 % CI] | loners | twinned | n | "
        + " | ".join(clients)
        + " |",
        "|---" * (5 + len(clients)) + "|",
        "| Local (score) | | | | | "
        + " | ".join(f"{res['local-scores'][c]:.3f}" for c in clients)
        + " |",
    ]
    for arm, a in res["arms"].items():
        cells = " | ".join(f"{a['clients'][c]['mean']:+.1f}" for c in clients)
        lines.append(
            f"| {arm} | {_ci(a['all'])} | {_ci(a['loners'])} | "
            f"{_ci(a['twins'])} | {a['all']['n']} | {cells} |"
        )
    lines += [
        "",
        "| hypothesis (one-sided, paired over seeds) | difference, points [95 % CI] "
        "| n | p | p (Holm) | supported at 0.05 |",
        "|---|---|---|---|---|---|",
    ]
    for k, v in res["hypotheses"].items():
        lines.append(
            f"| {k} | {_ci(v)} | {v['n']} | {v['p']:.4f} | {v['p-holm']:.4f} "
            f"| {'yes' if v['supported'] else 'no'} |"
        )
    lines += [
        "",
        "| secondary (not corrected) | points [95 % CI] | n |",
        "|---|---|---|",
    ]
    for k, v in res["secondary"].items():
        lines.append(f"| {k} | {_ci(v)} | {v['n']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("select").add_argument("root", type=Path)
    an = sub.add_parser("analyse")
    an.add_argument("root", type=Path)
    an.add_argument("--family", choices=FAMILIES, default="fedmuscle")
    an.add_argument("--md", type=Path)
    an.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.cmd == "select":
        select(args.root)
        return
    res = analyse(args.root, args.family)
    text = markdown(res)
    print(text)
    if args.md:
        args.md.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
