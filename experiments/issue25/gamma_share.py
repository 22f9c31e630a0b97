"""How much of the Muscle loss's gradient do the γ-weighted higher-order terms carry?

    python experiments/issue25/gamma_share.py [--out FILE.md]

docs/results.md §7c's exploratory diagnostic (CPU, seconds). At the test's settings
(B = 32, M = 3, d = 256, τ = 0.2, τ' = 0.15, so γ = 1/τ' − 1/τ = 1.67) it compares the
gradient with respect to the anchor of the Muscle loss with that of the same loss at
γ = 0 (τ' = τ), which is the sum of M pairwise InfoNCE terms (method/losses.py). The
representations are synthetic unit rows whose matching samples agree across the
M + 1 clients at cosine ≈ ρ: z_i = normalise(√ρ s_i + √(1 − ρ) e_i), one shared s_i
per sample, independent noise e_i per client. Reported per ρ (mean ± std over draws):
share = ‖∇L(γ) − ∇L(0)‖ / ‖∇L(γ)‖, the cosine between the two gradients, the ratio of
their norms ‖∇L(γ)‖ / ‖∇L(0)‖, and the two losses. A share carried by a rescaling
(cosine ≈ 1) changes little under Adam, whose steps do not depend on the gradient's
scale.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from fedmuscle_flwr.method.losses import muscle_loss

B, M, D, TAU, TAU_P = 32, 3, 256, 0.2, 0.15
RHOS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95)
DRAWS = 10


def views(rho: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor (B, D) and partners (M, B, D), float64 unit rows, cosine ≈ rho."""
    shared = torch.randn(B, D, generator=gen, dtype=torch.float64)
    noise = torch.randn(M + 1, B, D, generator=gen, dtype=torch.float64)
    z = F.normalize(math.sqrt(rho) * shared + math.sqrt(1 - rho) * noise, dim=-1)
    return z[0], z[1:]


def grad(
    anchor: torch.Tensor, partners: torch.Tensor, tau_p: float
) -> tuple[torch.Tensor, float]:
    a = anchor.clone().requires_grad_(True)
    loss = muscle_loss(a, partners, TAU, tau_p, method="grid")
    loss.backward()
    assert a.grad is not None
    return a.grad, float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(25)
    lines = [
        f"B = {B}, M = {M}, d = {D}, τ = {TAU}, τ' = {TAU_P} "
        f"(γ = {1 / TAU_P - 1 / TAU:.2f}), {DRAWS} draws per ρ; mean ± std",
        "",
        "| ρ (cosine of matching samples) | gradient share of the γ terms "
        "| cosine(∇L(γ), ∇L(0)) | ‖∇L(γ)‖ / ‖∇L(0)‖ | L(γ) "
        "| L(0) = Σ pairwise InfoNCE |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rho in RHOS:
        rows = []
        for _ in range(DRAWS):
            anchor, partners = views(rho, gen)
            g1, l1 = grad(anchor, partners, TAU_P)
            g0, l0 = grad(anchor, partners, TAU)
            share = float((g1 - g0).norm() / g1.norm())
            cos = float(F.cosine_similarity(g1.flatten(), g0.flatten(), dim=0))
            rows.append((share, cos, float(g1.norm() / g0.norm()), l1, l0))
        cols = list(zip(*rows, strict=True))
        cells = []
        for col in cols:
            t = torch.tensor(col, dtype=torch.float64)
            cells.append(f"{float(t.mean()):.3f} ± {float(t.std()):.3f}")
        lines.append(f"| {rho} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
