"""The γ terms' share of the Muscle gradient *during training* (issue 25 item 3).

    python experiments/issue25/gamma_share_live.py OUT_DIR [fedmuscle run options...]

``gamma_share.py`` measures the share on synthetic representations of a chosen
alignment. This one measures it on the anchors and partner matrices that real clients
align with: it runs a federation in-process (``fedmuscle run --engine inprocess``,
the embedded default federation unless options say otherwise) and, at every call of
the Muscle loss on a client (``FedMuscle.align_loss``, method/algorithms/muscle.py),
also takes, in float64 and without touching the training, the gradient with respect
to the anchor of the loss at the run's τ' and at γ = 0 (τ' = τ: the sum of M pairwise
InfoNCE terms). Written per round to ``OUT_DIR/gamma_share_live.md`` (mean ± std over
the round's calls): the share ‖∇L(γ) − ∇L(0)‖ / ‖∇L(γ)‖, the cosine of the two
gradients, the ratio of their norms, and the cosine of matching samples between anchor
and partners (the ρ of ``gamma_share.py``). The run itself goes on unchanged (its
report lands in OUT_DIR).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from fedmuscle_flwr.cli import main as cli_main
from fedmuscle_flwr.method.algorithms import muscle as muscle_module
from fedmuscle_flwr.method.losses import muscle_loss

#: one row per call, in call order: (share, cosine, norm ratio, matching-sample cosine)
ROWS: list[tuple[float, float, float, float]] = []


def _anchor_grad(anchor: torch.Tensor, partners: torch.Tensor, tau: float,
                 tau_p: float) -> torch.Tensor:  # fmt: skip
    a = anchor.detach().double().clone().requires_grad_(True)
    muscle_loss(a, partners.detach().double(), tau, tau_p, method="grid").backward()
    assert a.grad is not None
    return a.grad


def watched(anchor: torch.Tensor, partners: torch.Tensor, tau: float,
            tau_partners: float, **kwargs: object) -> torch.Tensor:  # fmt: skip
    """``muscle_loss`` as the client calls it, plus the diagnostic on the side."""
    g1 = _anchor_grad(anchor, partners, tau, tau_partners)
    g0 = _anchor_grad(anchor, partners, tau, tau)
    share = float((g1 - g0).norm() / g1.norm())
    cos = float(F.cosine_similarity(g1.flatten(), g0.flatten(), dim=0))
    a = F.normalize(anchor.detach().double(), dim=-1)
    p = F.normalize(partners.detach().double(), dim=-1)
    rho = float((p * a[None]).sum(-1).mean())
    ROWS.append((share, cos, float(g1.norm() / g0.norm()), rho))
    return muscle_loss(anchor, partners, tau, tau_partners, **kwargs)  # type: ignore[arg-type]


def calls_per_round(run_dir: Path) -> dict[int, int]:
    """Round -> Muscle-loss calls: clients that aligned in it x steps per message."""
    config = json.loads((run_dir / "config.json").read_text())
    muscle = config["muscle"]
    per_message = (
        muscle["steps"] if muscle.get("sync", "per-round") == "per-round" else 1
    )
    counts: dict[int, int] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("phase") == "align" and row.get("client") != "server":
            counts[int(row["round"])] = counts.get(int(row["round"]), 0) + per_message
    return counts


def table(
    rows: list[tuple[float, float, float, float]], per_round: dict[int, int]
) -> str:
    """Markdown: one line per round, mean ± std over its calls."""
    lines = [
        "| round | calls | γ terms' share of the gradient | cosine(∇L(γ), ∇L(0)) "
        "| ‖∇L(γ)‖ / ‖∇L(0)‖ | cosine of matching samples (ρ) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    if sum(per_round.values()) != len(rows):
        raise SystemExit(f"{len(rows)} calls seen, {sum(per_round.values())} expected")
    start = 0
    for rnd, n in sorted(per_round.items()):
        group, start = rows[start : start + n], start + n
        cells = []
        for col in zip(*group, strict=True):
            t = torch.tensor(col, dtype=torch.float64)
            std = float(t.std()) if len(col) > 1 else 0.0
            cells.append(f"{float(t.mean()):.3f} ± {std:.3f}")
        lines.append(f"| {rnd} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    out, options = Path(sys.argv[1]), sys.argv[2:]
    muscle_module.muscle_loss = watched  # type: ignore[assignment]
    sys.argv = ["fedmuscle", "run", "--engine", "inprocess", "--output", str(out)]
    sys.argv += options
    try:
        cli_main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    configs = sorted(out.rglob("config.json"), key=lambda c: c.stat().st_mtime)
    run_dir = next(
        c.parent
        for c in reversed(configs)
        if json.loads(c.read_text()).get("algorithm") == "fedmuscle"
    )
    text = table(ROWS, calls_per_round(run_dir))
    (out / "gamma_share_live.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
