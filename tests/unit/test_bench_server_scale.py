"""bench/server_scale.py runs the real strategy and reports what the issue asks.

Run as a child process: the bench wraps library functions to time them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_server_scale_reports_rounds_phases_and_memory(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "server_scale.py"),
         "--clients", "40", "--rounds", "2", "--out", str(tmp_path)],
        env=env, check=True, capture_output=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    got = json.loads((tmp_path / "server_scale.json").read_text())
    assert got["clients"] == 40 and got["status"] == "completed"
    assert len(got["per_round"]) == 2  # start-up apart
    assert all(r["server_cpu_s"] > 0 for r in got["per_round"])
    assert got["startup"]["server_s"] > 0
    assert got["server_cpu_s_median_round"] > 0
    assert got["peak_rss_mb"] >= got["rss_start_mb"] > 0
    phases = got["phases_s_per_round"]
    for phase in ("decode/validate", "planner", "relay", "probe metrics", "recording"):
        assert phases[phase] > 0, phase
    # 40 uploads and 40 payloads a round were moved: the bytes were counted
    rows = [
        json.loads(line)
        for line in (Path(got["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    ]
    server = [r for r in rows if r.get("phase") == "round"]
    assert len(server) == 2 and all(r["clients"] == 40 for r in server)
    assert all(r["bytes-down"] > 40 * 20 * 3 * 32 * 256 * 2 for r in server)
    shutil.rmtree(Path(got["run_dir"]).parent)  # the bench's own temporary folder
