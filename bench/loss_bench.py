"""Muscle loss forward+backward vs pairwise InfoNCE vs the aggregated (S^n) form.

Usage (CPU here; CUDA on the GPU machine):
    python bench/loss_bench.py --device cpu --repeats 5 --out bench-out
    python bench/loss_bench.py --device cuda --repeats 30 \
        --losses muscle,pairwise,aggregated,triton

Prints a markdown table (median [min–max] ms over the repeats) and writes
loss_bench_<device>.json/.md to --out (default $OUT or ./bench-out). Sizes whose
working memory exceeds --mem-gb, or whose work exceeds --max-work on this device,
are skipped and marked as such.
"""

from __future__ import annotations

import argparse
import platform

import torch
from _common import (
    TAU,
    TAU_P,
    bytes_needed,
    flops_needed,
    fmt,
    loss_fns,
    make_inputs,
    out_dir,
    time_fwd_bwd,
    write,
)

EXTRA: dict = {}  # extra losses by name (--baseline-file)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--ms", default="1,2,3,4,5")
    p.add_argument("--bs", default="32,64")
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--losses", default="muscle,pairwise,aggregated")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--budget-s", type=float, default=20.0, help="per (loss, size)")
    p.add_argument("--mem-gb", type=float, default=None, help="default 4 cpu, 60 gpu")
    p.add_argument("--max-work", type=float, default=None, help="default 2e11 / 1e13")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument(
        "--baseline-file",
        default=None,
        help="a losses.py of another revision: its muscle_loss is timed as 'before'",
    )
    return p.parse_args()


def add_baseline(path: str) -> None:
    """Register the muscle_loss of ``path`` as the loss 'before'."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("losses_before", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    EXTRA["before"] = lambda a, p: mod.muscle_loss(a, p, TAU, TAU_P)


def run_one(name, m, b, args, mem, work) -> dict:
    if bytes_needed(name, m, b, args.d) > mem:
        gb = bytes_needed(name, m, b, args.d) / 2**30
        return {"skipped": f"needs ~{gb:.0f} GB"}
    if flops_needed(name, m, b, args.d) > work:
        return {"skipped": "too slow here"}
    anchor, partners = make_inputs(m, b, args.d, args.device)
    fn = EXTRA[name] if name in EXTRA else loss_fns(name)[name]
    try:
        return time_fwd_bwd(
            fn, anchor, partners, args.device, args.repeats, args.warmup, args.budget_s
        )
    except (torch.OutOfMemoryError, MemoryError):
        return {"skipped": "out of memory"}
    finally:
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


def ratio(t: dict, x: str, y: str) -> str:
    """Median of loss x over median of loss y, when both ran."""
    if "median_ms" in t.get(x, {}) and "median_ms" in t.get(y, {}):
        return f"{t[x]['median_ms'] / t[y]['median_ms']:.1f}×"
    return "—"


def table(results: list[dict], names: list[str]) -> str:
    head = "| M | B | " + " | ".join(f"{n} ms" for n in names)
    head += " | aggregated / muscle | muscle / pairwise |\n"
    head += "|---" * (len(names) + 4) + "|\n"
    rows = []
    for r in results:
        t = r["times"]
        cells = [fmt(t.get(n)) for n in names]
        row = f"| {r['M']} | {r['B']} | " + " | ".join(cells)
        agg, pair = ratio(t, "aggregated", "muscle"), ratio(t, "muscle", "pairwise")
        rows.append(row + f" | {agg} | {pair} |")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device.startswith("cuda")
    mem = (args.mem_gb or (60.0 if gpu else 4.0)) * 2**30
    work = args.max_work or (1e13 if gpu else 2e11)
    names = args.losses.split(",")
    if args.baseline_file:
        add_baseline(args.baseline_file)
        names.insert(1, "before")
    results = []
    for b in map(int, args.bs.split(",")):
        for m in map(int, args.ms.split(",")):
            times = {n: run_one(n, m, b, args, mem, work) for n in names}
            results.append({"M": m, "B": b, "d": args.d, "times": times})
            print(m, b, {n: fmt(v) for n, v in times.items()}, flush=True)
    env = {
        "device": torch.cuda.get_device_name()
        if gpu
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
    }
    md = f"Environment: {env}\n\n" + table(results, names)
    path = out_dir(args.out or "bench-out")
    write(
        path,
        f"loss_bench_{args.device.split(':')[0]}",
        {"env": env, "results": results},
        md,
    )


if __name__ == "__main__":
    main()
