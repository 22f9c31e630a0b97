"""Shared helpers of the loss benchmarks: inputs, timing, memory estimates, tables.

Imports only torch/numpy and fedmuscle_flwr.method.losses (no flwr, no pydantic), so the
scripts run on the GPU machine from a bare working tree.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fedmuscle_flwr.method.losses import (
    build_aggregate,
    muscle_loss,
    muscle_loss_from_aggregate,
    pairwise_infonce,
)

TAU, TAU_P = 0.2, 0.15
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_inputs(m: int, b: int, d: int, device: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    anchor = F.normalize(torch.randn(b, d, generator=gen), dim=-1)
    partners = F.normalize(torch.randn(m, b, d, generator=gen), dim=-1)
    return anchor.to(device), partners.to(device)


def loss_fns(method: str | None = None) -> dict[str, LossFn]:
    fns: dict[str, LossFn] = {
        "muscle": lambda a, p: muscle_loss(a, p, TAU, TAU_P),
        "pairwise": lambda a, p: pairwise_infonce(a, p, TAU),
        "aggregated": lambda a, p: muscle_loss_from_aggregate(
            a, *build_aggregate(p, TAU, TAU_P)
        ),
    }
    for name in ("factorised", "grid", "triton", "online"):
        fns[name] = lambda a, p, k=name: muscle_loss(a, p, TAU, TAU_P, method=k)
    return fns if method is None else {method: fns[method]}


def bytes_needed(name: str, m: int, b: int, d: int) -> int:
    """Peak working memory (float32 bytes, rough upper estimate) of one fwd+bwd."""
    t = b**m
    if name == "aggregated":  # S (T, D), logits + softmax + grad (B, T), build temps
        return 4 * (3 * t * d + 4 * b * t)
    if name == "grid":  # the (B, T) grid, its exp and the autograd copies
        return 4 * 6 * b * t if b * t <= 2**26 else 4 * 6 * 2**26
    if name == "before":  # the previous grid kernel
        name = "grid"
    if name in ("muscle", "factorised"):  # W, its log and the GEMM output
        return 4 * 4 * min(t, 2**26)
    if name == "triton":
        return 4 * 4 * t // b
    if name == "online":  # tile terms and tail masses, B^(M-1) each
        return 4 * 4 * t // b + 4 * t
    return 4 * 8 * m * b * b


def flops_needed(name: str, m: int, b: int, d: int) -> float:
    """Rough work of one fwd+bwd (elementwise ops or multiply-adds)."""
    t = float(b**m)
    name = "grid" if name == "before" else name
    if name == "pairwise":
        return 6.0 * m * b * b * d
    work = {"grid": 12 * b * t * m, "online": 12 * b * t, "aggregated": 6 * b * t * d}
    return work.get(name, 6 * b * t)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_fwd_bwd(
    fn: LossFn,
    anchor,
    partners,
    device: str,
    repeats: int,
    warmup: int,
    budget_s: float,
) -> dict[str, float | int]:
    """min/median/max milliseconds of loss + backward; fewer repeats if slow."""
    times: list[float] = []
    for k in range(warmup + repeats):
        a = anchor.detach().clone().requires_grad_()
        sync(device)
        t0 = time.perf_counter()
        fn(a, partners).backward()
        sync(device)
        dt = time.perf_counter() - t0
        if k >= warmup or dt * (warmup + repeats) > budget_s:
            times.append(dt * 1e3)
        if sum(times) > budget_s * 1e3 and len(times) >= 1:
            break
    return {
        "min_ms": min(times),
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "repeats": len(times),
    }


def out_dir(default: str = "bench-out") -> Path:
    path = Path(os.environ.get("OUT") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fmt(rec: dict | None) -> str:
    if rec is None:
        return "—"
    if "skipped" in rec:
        return f"skip ({rec['skipped']})"
    return f"{rec['median_ms']:.2f} [{rec['min_ms']:.2f}–{rec['max_ms']:.2f}]"


def write(path: Path, stem: str, payload: dict, markdown: str) -> None:
    (path / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    (path / f"{stem}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {path / stem}.json and .md")
