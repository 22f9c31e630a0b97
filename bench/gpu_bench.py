"""GPU check + benchmark of the Muscle loss kernels (run on the GPU machine).

    python bench/gpu_bench.py                 # checks, then the timing sweep
    python bench/gpu_bench.py --checks-only

Needs torch + CUDA (+ triton for the fused kernel); imports nothing else of the
project than fedmuscle_flwr.method.losses/kernels. Step 1 checks the Triton kernel and
the torch kernels on CUDA against float64 references (values and gradients) and
stops with exit code 1 if any check fails. Step 2 times fwd+bwd (median of
--repeats) for M = 1..5, B = 32, 64, d = 256, and rates the issue-7 targets.
Writes gpu_bench.json and gpu_bench.md to $OUT (default ./bench-out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from types import SimpleNamespace

import torch
from _common import loss_fns, make_inputs, muscle_loss, out_dir, time_fwd_bwd, write
from loss_bench import run_one, table

from fedmuscle_flwr.method.kernels import muscle_triton

CHECKS = [(2, 32), (3, 32), (4, 16), (5, 8), (3, 48), (2, 64), (4, 32), (5, 32)]
NAMES = ["muscle", "online", "factorised", "triton", "grid", "pairwise", "aggregated"]


def check(method: str, m: int, b: int, tau: float, tau_p: float) -> dict:
    """fp32 kernel vs the float64 torch factorised kernel (itself vs the grid)."""
    anchor, partners = make_inputs(m, b, 256, "cuda", seed=m * 100 + b)
    a32 = anchor.clone().requires_grad_()
    a64 = anchor.double().requires_grad_()
    ref = muscle_loss(a64, partners.double(), tau, tau_p, method="factorised")
    (ref_grad,) = torch.autograd.grad(ref, a64)
    got = muscle_loss(a32, partners, tau, tau_p, method=method)
    (grad,) = torch.autograd.grad(got, a32)
    rec = {"method": method, "M": m, "B": b, "tau": tau, "tau_p": tau_p}
    rec["value_err"] = abs(got.item() - ref.item()) / max(1.0, abs(ref.item()))
    rec["grad_err"] = (
        (grad.double() - ref_grad).abs().max() / ref_grad.abs().max()
    ).item()
    if b ** (m + 1) <= 2**24:  # the float64 reference itself vs the explicit grid
        grid = muscle_loss(
            anchor.double(), partners.double(), tau, tau_p, method="grid"
        )
        rec["ref_vs_grid"] = abs(grid.item() - ref.item())
    ok = rec["value_err"] < 1e-5 and rec["grad_err"] < 1e-4
    rec["ok"] = bool(
        ok and rec.get("ref_vs_grid", 0.0) < 1e-10 and torch.isfinite(grad).all()
    )
    return rec


def run_checks() -> list[dict]:
    methods = ["factorised"]
    methods += ["triton", "online", "auto"] if muscle_triton.available() else []
    out = []
    for method in methods:
        for m, b in CHECKS:
            if method in ("triton", "online") and m < 2:
                continue
            for tau, tau_p in [(0.2, 0.15), (0.05, 0.04)]:
                rec = check(method, m, b, tau, tau_p)
                print("check", rec, flush=True)
                out.append(rec)
    return out


def paired_ratio(m: int, b: int, repeats: int) -> dict:
    """Median over interleaved iterations of muscle time / pairwise time.

    Alternating the two losses in one loop cancels the slow drift of the host's
    per-launch overhead, which dominates both at these sizes.
    """
    anchor, partners = make_inputs(m, b, 256, "cuda")
    fns = loss_fns()
    pair = [fns["muscle"], fns["pairwise"]]
    ratios, times = [], {"muscle": [], "pairwise": []}
    for k in range(repeats + 5):
        dts = [time_fwd_bwd(f, anchor, partners, "cuda", 1, 0, 60.0) for f in pair]
        if k >= 5:
            ratios.append(dts[0]["median_ms"] / dts[1]["median_ms"])
            times["muscle"].append(dts[0]["median_ms"])
            times["pairwise"].append(dts[1]["median_ms"])
    med = {n: statistics.median(v) for n, v in times.items()}
    return {"M": m, "B": b, "median_ratio": statistics.median(ratios), **med}


def targets(results: list[dict]) -> str:
    t = {(r["M"], r["B"]): r["times"] for r in results}

    def med(m: int, b: int, name: str) -> float | None:
        rec = t.get((m, b), {}).get(name, {})
        return rec.get("median_ms")

    lines = ["| target | measured | met |", "|---|---|---|"]
    mus, pair = med(3, 32, "muscle"), med(3, 32, "pairwise")
    if mus and pair:
        r = mus / pair
        lines.append(f"| M=3, B=32 within 1.5× of pairwise | {r:.2f}× | {r <= 1.5} |")
    for m, b, goal in [(5, 32, 5.0), (4, 64, 10.0)]:
        for name in ("muscle", "online", "triton", "factorised"):
            v = med(m, b, name)
            if v is not None:
                lines.append(
                    f"| M={m}, B={b} ≤ {goal} ms ({name}) | {v:.2f} ms | {v <= goal} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--checks-only", action="store_true")
    p.add_argument("--ms", default="1,2,3,4,5")
    p.add_argument("--bs", default="32,64")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    env["triton"] = getattr(muscle_triton.triton, "__version__", None)
    checks = run_checks()
    ok = all(c["ok"] for c in checks)
    md = f"Environment: {env}\n\nChecks: {'all passed' if ok else 'FAILED'}\n\n"
    md += "| method | M | B | tau | value rel err | grad rel err | ok |\n"
    md += "|---" * 7 + "|\n"
    md += "".join(
        f"| {c['method']} | {c['M']} | {c['B']} | {c['tau']} | {c['value_err']:.1e}"
        f" | {c['grad_err']:.1e} | {c['ok']} |\n"
        for c in checks
    )
    results = []
    if ok and not args.checks_only:
        opts = SimpleNamespace(
            device="cuda", d=256, repeats=args.repeats, warmup=3, budget_s=20.0
        )
        fused = ("triton", "online")
        names = [n for n in NAMES if n not in fused or muscle_triton.available()]
        for b in map(int, args.bs.split(",")):
            for m in map(int, args.ms.split(",")):
                times = {
                    n: run_one(n, m, b, opts, 60 * 2**30, 1e13)
                    for n in names
                    if not (n in fused and m < 2)
                }
                results.append({"M": m, "B": b, "d": 256, "times": times})
                print(
                    m,
                    b,
                    {k: v.get("median_ms", v) for k, v in times.items()},
                    flush=True,
                )
        md += "\n" + table(results, names) + "\n" + targets(results)
        paired = [paired_ratio(m, 32, 4 * args.repeats) for m in (2, 3, 4)]
        md += "\nInterleaved muscle/pairwise (median of per-iteration ratios):\n\n"
        md += "| M | B | muscle ms | pairwise ms | ratio |\n|---|---|---|---|---|\n"
        md += "".join(
            f"| {p['M']} | {p['B']} | {p['muscle']:.2f} | {p['pairwise']:.2f}"
            f" | {p['median_ratio']:.2f}× |\n"
            for p in paired
        )
        results.append({"paired": paired})
    payload = {"env": env, "checks": checks, "results": results}
    write(out_dir(), "gpu_bench", payload, md)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
