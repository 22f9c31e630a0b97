"""The embedded runtime: a federation in Flower's simulation engine on this machine.

``fedmuscle run`` validates the config, then calls :func:`simulate` once per
algorithm; each call is a full Flower simulation (Ray backend, virtual
SuperNodes, the same ServerApp and ClientApp as a deployment).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flwr.simulation import run_simulation

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.config.files import load_roster
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.serverapp.app import make_server_app, name_run

log = logging.getLogger(__name__)


def simulate(
    run: RunConfig,
    *,
    cpus_per_client: float | None = None,
    gpus_per_client: float = 0.0,
) -> Path:
    """Run ``run`` with one virtual SuperNode per roster entry; return its folder.

    Each virtual client reserves ``cpus_per_client`` of Ray's CPUs (default: the
    run's ``client-threads``, 1 when that is 0).
    """
    if cpus_per_client is None:
        cpus_per_client = float(run.client_threads or 1)
    run = name_run(run)
    num_clients = len(load_roster(run.federation.roster))
    run = run.model_copy(
        update={
            "federation": run.federation.model_copy(update={"min_clients": num_clients})
        }
    )
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    backend = {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": gpus_per_client},
        "init_args": {"num_cpus": os.cpu_count() or 1, "include_dashboard": False},
    }
    log.info("simulating %s with %d clients", run.algorithm, num_clients)
    run_simulation(
        server_app=make_server_app(run),
        client_app=client_app,
        num_supernodes=num_clients,
        backend_config=backend,  # type: ignore[arg-type]
    )
    run_dir = Path(run.output_dir).expanduser() / run.run_name
    if not (run_dir / "summary.json").is_file():
        raise RuntimeError(f"the simulation of {run.run_name} wrote no summary")
    return run_dir
