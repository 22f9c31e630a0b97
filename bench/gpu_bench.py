"""GPU check + benchmark of the Muscle loss kernels (run on the GPU machine).

    python bench/gpu_bench.py                 # checks, then the timing sweep
    python bench/gpu_bench.py --checks-only

Needs torch + CUDA (+ triton for the fused kernels); imports nothing else of the
project than fedmuscle_flwr.method.losses/kernels. Step 1 checks every CUDA kernel
(and every split precision of the tensor-core kernel) against the float64 torch
factorised kernel, itself checked against the float64 grid where that fits: loss
value and anchor gradient. Step 2 measures the machine's GEMM rates (the floor).
Step 3 times fwd+bwd (median of --repeats) for M = 1..5 at B = 32, 64 and M = 1..4
at B = 128, d = 256, each precision of the fused kernel at the large sizes, and
interleaves muscle with pairwise. Exit code 1 if a check of a default path fails.
Writes gpu_bench.json and gpu_bench.md to $OUT (default ./bench-out), after
every step, so a run cut short still leaves its numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from types import SimpleNamespace

import torch
from _common import loss_fns, make_inputs, muscle_loss, out_dir, time_fwd_bwd, write
from loss_bench import run_one, table

from fedmuscle_flwr.method.kernels import muscle_triton

SMALL = [(2, 32), (3, 32), (4, 16), (5, 8), (3, 48), (2, 64), (4, 32), (5, 32)]
LARGE = [(4, 64), (4, 100), (5, 64), (4, 128)]  # checked at the default taus only
NAMES = ["muscle", "online", "factorised", "triton", "grid", "pairwise", "aggregated"]
PRECS = muscle_triton.PRECISIONS
TARGETS = [(5, 64, 6.0), (4, 128, 3.0), (5, 32, 5.0), (4, 64, 10.0)]


def run_method(method: str, anchor, partners, tau: float, tau_p: float):
    """Loss by ``method``; "triton:PREC" runs the fused kernel in precision PREC."""
    kind, _, prec = method.partition(":")
    old = muscle_triton.PRECISION
    muscle_triton.PRECISION = prec or old
    try:
        return muscle_loss(anchor, partners, tau, tau_p, method=kind)
    finally:
        muscle_triton.PRECISION = old


def reference(m: int, b: int, tau: float, tau_p: float) -> dict:
    """float64 loss and gradient (factorised kernel), and its check against the grid."""
    anchor, partners = make_inputs(m, b, 256, "cuda", seed=m * 100 + b)
    a64 = anchor.double().requires_grad_()
    ref = muscle_loss(a64, partners.double(), tau, tau_p, method="factorised")
    (grad,) = torch.autograd.grad(ref, a64)
    out = {"anchor": anchor, "partners": partners, "value": ref.item(), "grad": grad}
    if b ** (m + 1) <= 2**24:
        grid = muscle_loss(a64, partners.double(), tau, tau_p, method="grid")
        out["ref_vs_grid"] = abs(grid.item() - ref.item())
    return out


def check(method: str, ref: dict, m: int, b: int, tau: float, tau_p: float) -> dict:
    rec = {"method": method, "M": m, "B": b, "tau": tau, "tau_p": tau_p}
    try:
        a32 = ref["anchor"].clone().requires_grad_()
        got = run_method(method, a32, ref["partners"], tau, tau_p)
        (grad,) = torch.autograd.grad(got, a32)
    except Exception as exc:  # a compile failure is a result, not the end of the run
        return {**rec, "ok": False, "error": repr(exc)[:300]}
    rec["value_err"] = abs(got.item() - ref["value"]) / max(1.0, abs(ref["value"]))
    rec["grad_err"] = ((grad.double() - ref["grad"]).abs().max()
                       / ref["grad"].abs().max()).item()  # fmt: skip
    rec["ref_vs_grid"] = ref.get("ref_vs_grid")
    ok = rec["value_err"] < 1e-5 and rec["grad_err"] < 1e-4
    rec["ok"] = bool(ok and (rec["ref_vs_grid"] or 0.0) < 1e-10
                     and torch.isfinite(grad).all())  # fmt: skip
    return rec


def check_methods(m: int, b: int) -> list[str]:
    """Every default path; every precision of the fused kernel at the large sizes."""
    if not muscle_triton.available():
        return ["factorised"]
    methods = ["factorised", "online", "auto", "triton"]
    if (m, b) in LARGE or (m, b) in ((3, 32), (5, 8)):
        methods += [f"triton:{p}" for p in PRECS if p != muscle_triton.PRECISION]
    big = b ** (m + 1) > 2**30  # too slow to matter; recorded in earlier runs
    return [k for k in methods if not (big and k in ("online", "factorised"))]


def run_checks() -> list[dict]:
    out = []
    for m, b in SMALL + LARGE:
        taus = [(0.2, 0.15)] + ([(0.05, 0.04)] if (m, b) in SMALL else [])
        for tau, tau_p in taus:
            ref = reference(m, b, tau, tau_p)
            for method in check_methods(m, b):
                rec = check(method, ref, m, b, tau, tau_p)
                print("check", rec, flush=True)
                out.append(rec)
            del ref
            torch.cuda.empty_cache()
    return out


def gemm_rates() -> dict:
    """TFLOP/s of an 8192^3 product in bf16, tf32 and fp32 (the machine's floor)."""
    out = {}
    x = torch.randn(8192, 8192, device="cuda")
    for name, dtype, tf32 in [("bf16", torch.bfloat16, False),
                              ("tf32", torch.float32, True),
                              ("fp32", torch.float32, False)]:  # fmt: skip
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = x.to(dtype)
        for _ in range(2):
            a @ a
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(5):
            a @ a
        torch.cuda.synchronize()
        out[name] = 2 * 8192**3 * 5 / (time.perf_counter() - t0) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def paired_ratio(m: int, b: int, repeats: int) -> dict:
    """Median over interleaved iterations of muscle time / pairwise time."""
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


def time_one(name: str, m: int, b: int, opts: SimpleNamespace) -> dict:
    """fwd+bwd times of one loss; "triton:PREC" is the fused kernel in PREC."""
    try:
        if not name.startswith("triton:"):
            return run_one(name, m, b, opts, 60 * 2**30, 1e13)
        anchor, partners = make_inputs(m, b, 256, "cuda")
        return time_fwd_bwd(
            lambda a, p: run_method(name, a, p, 0.2, 0.15),
            anchor, partners, "cuda", opts.repeats, opts.warmup, opts.budget_s,
        )  # fmt: skip
    except Exception as exc:  # a compile failure is a result, not the end of the run
        return {"skipped": f"error {type(exc).__name__}: {str(exc)[:120]}"}


def time_sizes(sizes: list[tuple[int, int]], repeats: int) -> list[dict]:
    opts = SimpleNamespace(device="cuda", d=256, repeats=repeats, warmup=3,
                           budget_s=4.0)  # fmt: skip
    results = []
    for m, b in sizes:
        cells = b ** (m + 1)
        names = [n for n in NAMES if not (n in ("triton", "online") and m < 2)]
        names = [n for n in names if not (n == "grid" and cells > 2**27)]
        names = [n for n in names if not (n == "online" and cells > 2**30)]
        if m >= 2 and cells > 2**25:  # every precision where the fused kernel runs
            names += [f"triton:{p}" for p in PRECS if p != muscle_triton.PRECISION]
        times = {n: time_one(n, m, b, opts) for n in names}
        results.append({"M": m, "B": b, "d": 256, "times": times})
        print(m, b, {k: v.get("median_ms", v) for k, v in times.items()}, flush=True)
    return results


def targets(results: list[dict]) -> str:
    t = {(r["M"], r["B"]): r["times"] for r in results if "times" in r}
    lines = ["| target | path | measured ms | met |", "|---|---|---|---|"]
    for m, b, goal in TARGETS:
        for name, rec in t.get((m, b), {}).items():
            if name in ("pairwise", "grid", "aggregated") or "median_ms" not in rec:
                continue
            v = rec["median_ms"]
            lines.append(
                f"| M={m}, B={b} ≤ {goal} ms | {name} | {v:.2f} | {v <= goal} |"
            )
    return "\n".join(lines) + "\n"


def check_table(checks: list[dict]) -> str:
    md = "| method | M | B | tau | value rel err | grad rel err | ok |\n"
    md += "|---" * 7 + "|\n"
    for c in checks:
        head = f"| {c['method']} | {c['M']} | {c['B']} | {c['tau']} |"
        if "error" in c:
            md += f"{head} {c['error'][:60]} | | False |\n"
        else:
            errs = f" {c['value_err']:.1e} | {c['grad_err']:.1e} |"
            md += f"{head}{errs} {c['ok']} |\n"
    return md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--checks-only", action="store_true")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "default_precision": muscle_triton.PRECISION}  # fmt: skip
    env["triton"] = getattr(muscle_triton.triton, "__version__", None)
    payload: dict = {"env": env}
    checks = run_checks()
    default = {"factorised", "online", "auto", "triton"}
    ok = all(c["ok"] for c in checks if c["method"] in default)
    payload["checks"] = checks
    verdict = "all passed" if ok else "FAILED"
    md = f"Environment: {env}\n\nDefault paths' checks: {verdict}\n\n"
    md += check_table(checks)
    write(out_dir(), "gpu_bench", payload, md)
    if not args.checks_only:
        payload["gemm_tflops"] = gemm_rates()
        md += f"\nGEMM rates (TFLOP/s, 8192^3): {payload['gemm_tflops']}\n"
        sizes = [(m, b) for b in (32, 64) for m in range(1, 6)]
        sizes += [(m, 128) for m in range(1, 5)]
        results = time_sizes(sizes, args.repeats)
        names = NAMES + [f"triton:{p}" for p in PRECS if p != muscle_triton.PRECISION]
        md += "\n" + table(results, names) + "\n" + targets(results)
        payload["results"] = results
        write(out_dir(), "gpu_bench", payload, md)
        pairs = [(1, 32), (1, 64), (1, 128), (3, 32), (5, 64), (4, 128)]
        paired = [paired_ratio(m, b, 4 * args.repeats) for m, b in pairs]
        md += "\nInterleaved muscle/pairwise (median of per-iteration ratios):\n\n"
        md += "| M | B | muscle ms | pairwise ms | ratio |\n|---|---|---|---|---|\n"
        md += "".join(
            f"| {p['M']} | {p['B']} | {p['muscle']:.2f} | {p['pairwise']:.2f}"
            f" | {p['median_ratio']:.2f}× |\n"
            for p in paired
        )
        payload["paired"] = paired
    write(out_dir(), "gpu_bench", payload, md)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
