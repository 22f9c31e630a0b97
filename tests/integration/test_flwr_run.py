"""``flwr run .`` as the README documents it: Flower's CLI, its managed local
SuperLink (simulation), our ServerApp and ClientApp, the FAB built from this folder.

The managed SuperLink listens on ports from ``FLWR_LOCAL_SUPERLINK_HTTP_API_PORT``
and ``FLWR_LOCAL_CONTROL_API_PORT`` (free ones here) and stays up after ``flwr
run`` returns: the fixture stops it (its command line checked first).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedmuscle_flwr.launch.deploy.processes import free_port
from fedmuscle_flwr.runs.metrics import SERVER_ROW, read_rows, read_summary

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


def _flwr() -> str:
    """Flower's CLI next to the running interpreter (no PATH needed)."""
    return str(Path(sys.executable).parent / "flwr")


def _superlinks(home: Path) -> list[int]:
    """Pids of ``flower-superlink`` processes whose state lies in ``home``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"flower-superlink" in c for c in cmd[:2]) and any(
            str(home).encode() in c for c in cmd
        ):
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def flower_env(tmp_path: Path, state_dir: Path) -> Iterator[dict[str, str]]:
    home = tmp_path / "flwr-home"  # outside the app folder (the FAB would pack it)
    env = dict(
        os.environ,
        FLWR_HOME=str(home),
        FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=str(free_port()),
        FLWR_LOCAL_CONTROL_API_PORT=str(free_port()),
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_TELEMETRY_ENABLED="0",
        PYTHONPATH=str(ROOT / "src"),
    )
    yield env
    for pid in _superlinks(home):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _superlinks(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in _superlinks(home):
        os.kill(pid, signal.SIGKILL)


def test_the_fab_holds_code_and_profiles_only(tmp_path, flower_env):
    # Execute: the bundle `flwr run .` ships (Flower's own builder; `flwr build`
    # would also insist on the checkout folder's name being a valid app name,
    # which a clone in a temporary folder is not)
    fab = tmp_path / "app.fab"
    code = (
        "import sys; from pathlib import Path\n"
        "from flwr.cli.build import build_fab_from_disk\n"
        "Path(sys.argv[2]).write_bytes(build_fab_from_disk(Path(sys.argv[1])))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(fab)],
        cwd=tmp_path,
        env=flower_env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    # Assert: no experiments, benchmarks or docs; far below Flower's 10 MB cap
    names = zipfile.ZipFile(fab).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {".info", "src", "clients", "server", "README.md", "pyproject.toml"}
    assert any(n.startswith("src/fedmuscle_flwr/") for n in names)
    assert any(n.startswith("server/") for n in names)
    assert fab.stat().st_size < 1_500_000


@pytest.mark.slow
def test_flwr_run_local_runs_every_roster_client(tmp_path, flower_env):
    # Prepare: the README's command on the tiny preset, one round
    out = tmp_path / "runs"
    cmd = [
        _flwr(), "run", str(ROOT), "local", "--stream",
        "--federation-config", "num-supernodes=3 client-resources-num-cpus=1",
        "--run-config", f'preset="tiny" num-rounds=1 output-dir="{out}"',
    ]  # fmt: skip
    # Execute
    done = subprocess.run(
        cmd, env=flower_env, capture_output=True, text=True, timeout=900
    )
    # Assert: the run finished with all 3 clients of the roster, no warning about
    # missing SuperNodes, and the Flower environment was not rebuilt
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = out.iterdir()
    summary = read_summary(run_dir)
    assert sorted(summary["clients"]) == ["fmnist-cnn", "fmnist-vit", "mosaic-mlp"]
    rows = [r for r in read_rows(run_dir) if r["client"] == SERVER_ROW]
    assert [r["round"] for r in rows] == [0, 1]
    assert all(r["clients"] == 3 for r in rows)
    assert "num-supernodes=" not in done.stdout
