"""The fused kernel in one launch vs two (issue 26), on one warm GPU, in one run.

    cd bench && python gpu_one_launch.py     # writes $OUT/one_launch.json

``muscle_triton.ONE_LAUNCH`` forms Y and the gradient's sums in one pass (2 products
per tail); ``False`` is the former form (Y, then Y again and the gradient: 3
products). Checks both against float64 (gpu_bench.check: value error < 1e-5
relative, gradient error < 1e-4 of its max), then times fwd+bwd of both and of
pairwise InfoNCE interleaved per iteration (the same inputs, d = 256), and the
one-launch kernel at 4 and 8 warps per program. Run on an H100 on 2026-12-07
(docs/performance.md §3d, bench/results/gpu_one_launch/h100-20261207.json).
"""

import json
import os
import statistics
import time

import torch
from _common import loss_fns, make_inputs, time_fwd_bwd
from gpu_bench import check, reference

from fedmuscle_flwr.method.kernels import muscle_triton as mt

CHECKS = [(2, 64, 0.2, 0.15), (5, 8, 0.05, 0.04), (5, 64, 0.2, 0.15)]
CHECKS += [(4, 128, 0.2, 0.15), (3, 128, 0.2, 0.15)]  # few: each config compiles
SIZES = [(5, 64), (4, 128), (3, 128), (5, 32), (4, 64)]
BUDGET_S = float(os.environ.get("ONE_LAUNCH_BUDGET_S", "240"))


def checks() -> list[dict]:
    out = []
    for m, b, tau, tau_p in CHECKS:
        ref = reference(m, b, tau, tau_p)
        for one in (True, False):
            mt.ONE_LAUNCH = one
            rec = {**check("triton", ref, m, b, tau, tau_p), "one_launch": one}
            rec = {k: v for k, v in rec.items() if k != "method"}
            print("check", rec, flush=True)
            out.append(rec)
        del ref
        torch.cuda.empty_cache()
    mt.ONE_LAUNCH = True
    return out


def interleaved(m: int, b: int, repeats: int) -> dict:
    """Per iteration: one launch, two launches, pairwise; medians and ratios."""
    anchor, partners = make_inputs(m, b, 256, "cuda")
    fns = loss_fns()
    times: dict[str, list[float]] = {"one": [], "two": [], "pairwise": []}
    for k in range(repeats + 3):
        for name in times:
            mt.ONE_LAUNCH = name != "two"
            fn = fns["pairwise" if name == "pairwise" else "muscle"]
            dt = time_fwd_bwd(fn, anchor, partners, "cuda", 1, 0, 60.0)["median_ms"]
            if k >= 3:
                times[name].append(dt)
    mt.ONE_LAUNCH = True
    med = {n: statistics.median(v) for n, v in times.items()}
    ratio = [o / t for o, t in zip(times["one"], times["two"], strict=True)]
    vs_pair = [o / p for o, p in zip(times["one"], times["pairwise"], strict=True)]
    rec = {"M": m, "B": b, "repeats": repeats}
    rec.update({f"{n}_ms": v for n, v in med.items()})
    rec["one_over_two"] = statistics.median(ratio)
    rec["one_over_pairwise"] = statistics.median(vs_pair)
    return rec


def main() -> None:
    t0 = time.time()
    out: dict = {"device": torch.cuda.get_device_name(), "prec": mt.PRECISION}
    out["torch"], out["triton"] = torch.__version__, mt.triton.__version__
    out["checks"] = checks()
    out["all_ok"] = all(c["ok"] for c in out["checks"])
    out["timings"] = []
    for m, b in SIZES:
        if time.time() - t0 > BUDGET_S:
            break
        rec = interleaved(m, b, 20)
        print("time", rec, flush=True)
        out["timings"].append(rec)
    out["warps"] = []
    for m, b in [(5, 64), (4, 128)]:
        for w in (4, 8):
            if time.time() - t0 > BUDGET_S:
                break
            mt.WARPS, mt.ONE_LAUNCH = w, True
            a, p = make_inputs(m, b, 256, "cuda")
            r = time_fwd_bwd(loss_fns()["muscle"], a, p, "cuda", 15, 3, 20.0)
            print("warps", m, b, w, r, flush=True)
            out["warps"].append({"M": m, "B": b, "warps": w, **r})
    mt.WARPS = None
    out["wall_s"] = time.time() - t0
    with open(os.path.join(os.environ.get("OUT", "."), "one_launch.json"), "w") as fh:
        fh.write(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
