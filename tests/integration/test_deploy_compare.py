"""``fedmuscle server --compare local``: a deployment carries its own Local baseline.

Real processes on loopback (Flower 1.39): the server runs the tiny preset's FedMuscle
run, then the Local run on the same SuperLink, and two warm ``fedmuscle client
--exit-after-run`` stay for both runs and leave after the second. The session folder
holds both runs and one report whose Δ column, mean Δ row and Δ plot are filled, as
``fedmuscle run`` writes them; a good run prints no roster advice and no SuperNode retry
warnings, and the clients remove the state of their finished runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fedmuscle_flwr.launch.deploy.processes import free_port
from fedmuscle_flwr.wire.flower_compat import SUPERNODE_LOST
from tests.integration.test_deployment import Procs, client_args, server_args

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = ["fmnist-cnn", "mosaic-mlp"]


@pytest.fixture
def procs(tmp_path: Path):
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def test_server_runs_local_after_fedmuscle_on_the_same_clients(
    tmp_path: Path, procs: Procs
) -> None:
    # Prepare: an insecure server with --compare local, two clients
    fleet, control = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    args = server_args(tmp_path, fleet, control, "--insecure", "--compare", "local",
                       "--set", "federation.min-clients=2")  # fmt: skip
    server = procs.start("server", args)
    clients = [
        procs.start(name, client_args(tmp_path, fleet, i, name, "--insecure",
                                      "--exit-after-run", "--wait-server-exit", "120"))
        for i, name in enumerate(CLIENTS)
    ]  # fmt: skip
    # Execute
    assert server.wait(900) == 0, procs.log("server")[-4000:]
    codes = [c.wait(180) for c in clients]
    # Assert: both runs in one session folder, the clients stayed for both
    assert codes == [0, 0], [procs.log(name)[-3000:] for name in CLIENTS]
    (session,) = (tmp_path / "runs").iterdir()
    for algorithm in ("fedmuscle", "local"):
        summary = json.loads((session / algorithm / "summary.json").read_text())
        assert set(summary["clients"]) == set(CLIENTS), summary
        assert all(row["round"] == 3 for row in summary["clients"].values())
    report = (session / "report.md").read_text()
    assert "No finished `local` run" not in report
    rows = {
        r.split("|")[1].strip(): r for r in report.splitlines() if r.startswith("| ")
    }
    for name in [*CLIENTS, "**mean Δ**"]:
        assert re.search(r"\| \**[+-]\d+\.\d\** \|$", rows[name]), rows[name]
    assert (session / "plots" / "delta.png").stat().st_size > 0
    # quiet when all is well; no state left of the finished runs
    assert "num-supernodes" not in procs.log("server")
    for name in ["server", *CLIENTS]:  # --insecure is one INFO line, not a warning
        alarms = re.findall(r".*\b(?:WARN(?:ING)?|ERROR|CRITICAL)\b.*", procs.log(name))
        assert not alarms and "Traceback" not in procs.log(name), (name, alarms[:5])
    assert "TLS is OFF (--insecure)" in procs.log("server")
    assert "1 of 2" in procs.log("server") and "2 of 2" in procs.log("server")
    for i, name in enumerate(CLIENTS):
        log = procs.log(name)
        assert SUPERNODE_LOST not in log and "Traceback" not in log
        assert "removed the state of the 2 finished run(s)" in log
        assert not [p for p in (tmp_path / f"state-{i}").rglob("*") if p.is_file()]
