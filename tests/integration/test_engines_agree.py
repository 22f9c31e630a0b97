"""The in-process engine and Flower's simulation engine give the same numbers.

Same preset (``tiny``), same seed: every metric row of every client and round is
the same, whichever engine delivered the messages (only the timings differ).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmuscle_flwr.cli.common import build_run_config
from fedmuscle_flwr.launch.engines import get_engine
from fedmuscle_flwr.runs.metrics import read_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _rows(engine: str, out: Path) -> dict[tuple, dict]:
    run = build_run_config(
        "tiny",
        None,
        {
            "num-rounds": 1,
            "eval.every": 1,
            "output-dir": str(out),
            "run-name": engine,
        },
    )
    run_dir = get_engine(engine).run(run)
    return {
        (r["round"], r["client"], r.get("phase"), r.get("step")): {
            k: v for k, v in r.items() if not k.endswith("-seconds")
        }
        for r in read_rows(run_dir)
    }


def test_inprocess_and_simulation_agree_on_the_tiny_preset(tmp_path, state_dir):
    # Execute
    inprocess = _rows("inprocess", tmp_path)
    simulation = _rows("simulation", tmp_path)
    # Assert: the same rows (3 clients: evaluate, train, align; server rounds) ...
    assert sorted(inprocess, key=str) == sorted(simulation, key=str)
    assert len(inprocess) == 3 + 1 + 3 * 3 + 1
    # ... with the same values, to the last bits of the float sums
    for key, row in inprocess.items():
        other = simulation[key]
        numbers = {k for k, v in row.items() if isinstance(v, float)}
        assert {k: v for k, v in other.items() if k not in numbers} == {
            k: v for k, v in row.items() if k not in numbers
        }, key
        for k in numbers:
            assert other[k] == pytest.approx(row[k], rel=1e-9, abs=1e-12), (key, k)
    server = inprocess[(1, "*", "round", None)]
    assert server["clients"] == 3 and server["probe-positive-sim"] > 0
