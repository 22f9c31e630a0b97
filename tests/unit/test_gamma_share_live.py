"""experiments/issue25/gamma_share_live.py: the per-round table of the live diagnostic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.unit.scripts import load

live = load("experiments/issue25/gamma_share_live.py", "gamma_share_live")


def test_calls_per_round_are_aligning_clients_times_steps(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"muscle": {"steps": 5}}))
    rows = [
        {"round": 1, "client": "a", "phase": "align"},
        {"round": 1, "client": "b", "phase": "align"},
        {"round": 1, "client": "a", "phase": "train"},
        {"round": 2, "client": "a", "phase": "align"},
        {"round": 2, "client": "server", "phase": "align"},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert live.calls_per_round(tmp_path) == {1: 10, 2: 5}
    cfg = {"muscle": {"steps": 5, "sync": "per-step"}}  # one call per step message
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert live.calls_per_round(tmp_path) == {1: 2, 2: 1}


def test_table_groups_calls_in_order_and_refuses_a_count_mismatch() -> None:
    rows = [(0.1, 0.9, 1.0, 0.2)] * 2 + [(0.3, 0.7, 1.2, 0.5)] * 3
    text = live.table(rows, {1: 2, 2: 3})
    assert "| 1 | 2 | 0.100 ± 0.000 | 0.900 ± 0.000 |" in text
    assert "| 2 | 3 | 0.300 ± 0.000 | 0.700 ± 0.000 | 1.200 ± 0.000 |" in text
    with pytest.raises(SystemExit, match="5 calls seen, 4 expected"):
        live.table(rows, {1: 2, 2: 2})


def test_the_watched_loss_is_the_loss_and_records_the_share() -> None:
    gen = torch.Generator().manual_seed(0)
    anchor = torch.nn.functional.normalize(torch.randn(8, 16, generator=gen), dim=-1)
    partners = torch.nn.functional.normalize(
        torch.randn(3, 8, 16, generator=gen), dim=-1
    )
    live.ROWS.clear()
    a = anchor.clone().requires_grad_(True)
    got = live.watched(a, partners, 0.2, 0.15)
    want = live.muscle_loss(anchor, partners, 0.2, 0.15)
    assert torch.allclose(got, want) and got.requires_grad
    ((share, cos, ratio, rho),) = live.ROWS
    assert 0 < share < 1 and -1 <= cos <= 1 and ratio > 0 and abs(rho) < 1
    same = live.watched(anchor, partners, 0.2, 0.2)  # tau' = tau: gamma = 0
    assert torch.allclose(same, live.muscle_loss(anchor, partners, 0.2, 0.2))
    assert live.ROWS[-1][0] == pytest.approx(0.0, abs=1e-12)
    assert live.ROWS[-1][1] == pytest.approx(1.0)
