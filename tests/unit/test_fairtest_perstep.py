"""experiments/issue25/fairtest.py ``--family perstep`` (docs/results.md §7e).

The runs are §7d's recorded Local, FedMuscle and pairwise runs (seeds 5-9); the per-step
arm is FedMuscle's runs with every evaluated metric scaled by a known factor per seed,
so each per-seed difference, the intervals and the Holm family can be checked by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.unit.scripts import load

ROOT = Path(__file__).parents[2]
RECORDED = ROOT / "experiments/results/issue25/taskhet-7d"
fairtest = load("experiments/issue25/fairtest.py", "fairtest25")

SEEDS = (5, 6, 7, 8, 9)
#: per-step metric = FedMuscle's x (1 + GAIN[seed] / 100), every client and round
GAIN = {5: 1.0, 6: 0.5, 7: 1.5, 8: 0.8, 9: 1.2}


def _copy(src: Path, dest: Path, gain: float = 0.0) -> None:
    shutil.copytree(src, dest)
    for metrics in dest.rglob("metrics.jsonl"):
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        for row in rows:
            if row.get("phase") == "evaluate":
                row["metric"] = row["metric"] * (1 + gain / 100)
        metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("th7e")
    for s in SEEDS:
        for arm in ("local", "fedmuscle", "pairwise"):
            _copy(RECORDED / f"taskhet.s{s}.{arm}", root / f"taskhet.s{s}.{arm}")
        _copy(
            RECORDED / f"taskhet.s{s}.fedmuscle",
            root / f"taskhet.s{s}.fedmuscle-perstep",
            GAIN[s],
        )
    return root


def test_the_perstep_family_tests_s1_and_s2_and_moves_h1_h2_to_secondary(
    runs: Path,
) -> None:
    res = fairtest.analyse(runs, "perstep")
    hyp = res["hypotheses"]
    assert list(hyp) == [
        "S1 per-step > FedMuscle (per-round)",
        "S2 per-step > pairwise",
    ]
    # per-step − FedMuscle is the known gain on every client's relative difference:
    # ((1+g)m - L)/L - (m - L)/L = g m / L, so it equals g x (1 + FedMuscle's Δ)
    fm = res["arms"]["fedmuscle"]["per-seed"]
    s1 = hyp["S1 per-step > FedMuscle (per-round)"]
    assert s1["n"] == len(SEEDS)
    for s in SEEDS:
        runs_ = fairtest.base.find_runs(runs)
        ref, fed = runs_[("taskhet", s, "local")], runs_[("taskhet", s, "fedmuscle")]
        want = sum(GAIN[s] * fed[c] / ref[c] for c in ref) / len(ref)
        assert s1["per-seed"][s] == pytest.approx(want, rel=1e-9)
        assert fm[s] == pytest.approx(
            sum((fed[c] - ref[c]) / ref[c] * 100 for c in ref) / len(ref)
        )
    # Holm over exactly the two: the smaller p is doubled, the larger kept (if larger)
    ps = sorted((v["p"], k) for k, v in hyp.items())
    assert hyp[ps[0][1]]["p-holm"] == pytest.approx(min(1.0, 2 * ps[0][0]))
    assert hyp[ps[1][1]]["p-holm"] == pytest.approx(
        max(min(1.0, 2 * ps[0][0]), ps[1][0])
    )
    assert s1["supported"] == (s1["p-holm"] < 0.05)
    assert s1["mean"] > 0.4 and s1["p"] < 0.01  # a consistent ~1 % gain is detected
    sec = res["secondary"]
    assert "H1 FedMuscle > Local" in sec and "H2 FedMuscle > pairwise" in sec
    assert "per-step − fedmuscle, loners" in sec and "per-step − pairwise, twins" in sec
    assert res["family"] == "perstep"


def test_the_default_family_is_unchanged_by_a_perstep_arm(runs: Path) -> None:
    res = fairtest.analyse(runs)
    assert list(res["hypotheses"]) == [
        "H1 FedMuscle > Local",
        "H2 FedMuscle > pairwise",
    ]
    assert res["secondary"]["per-step − FedMuscle (per-round)"]["n"] == len(SEEDS)


def test_the_perstep_family_without_its_arm_tests_nothing(tmp_path: Path) -> None:
    for arm in ("local", "fedmuscle"):
        _copy(RECORDED / f"taskhet.s5.{arm}", tmp_path / f"taskhet.s5.{arm}")
    res = fairtest.analyse(tmp_path, "perstep")
    assert res["hypotheses"] == {}
    assert "H1 FedMuscle > Local" in res["secondary"]


def test_an_unknown_family_is_refused(runs: Path) -> None:
    with pytest.raises(ValueError, match="family"):
        fairtest.analyse(runs, "h5")
