"""The embedded runtime: a federation in Flower's simulation engine on this machine.

``fedmuscle run`` validates the config, then calls :func:`simulate` once per
algorithm; each call is a full Flower simulation (Ray backend, virtual
SuperNodes, the same ServerApp and ClientApp as a deployment).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from logging import DEBUG
from pathlib import Path

from flwr.simulation import run_simulation

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.config.files import load_roster
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.logs import PACKAGE_LOGGER
from fedmuscle_flwr.serverapp.app import make_server_app, name_run

log = logging.getLogger(__name__)


@contextmanager
def _quiet_actors(quiet: bool) -> Iterator[None]:
    """While on: Ray's actors (they inherit the environment) log our warnings only.

    Their ClientApps call :func:`~fedmuscle_flwr.runs.logs.ensure_console_logging`,
    which reads these variables; Flower's actor notices go down to errors.
    """
    env = {"FEDMUSCLE_LOG_LEVEL": "WARNING", "FEDMUSCLE_FLWR_LOG_LEVEL": "ERROR"}
    saved = {k: os.environ.get(k) for k in env}
    if quiet:
        os.environ.update({k: os.environ.get(k) or v for k, v in env.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _deliberate_api(record: logging.LogRecord) -> bool:
    """Drop Flower's notice that ``run_simulation`` is deprecated (twice per run).

    The embedded engine runs a ServerApp built in this process (one per
    algorithm, around an already validated config), which ``flwr run`` cannot.
    """
    message = record.getMessage()
    return not ("DEPRECATED" in message and "run_simulation" in message)


def ray_init_args() -> dict[str, object]:
    """Ray's ``init`` arguments: a Ray of this machine, or the cluster at $RAY_ADDRESS.

    With ``RAY_ADDRESS`` set (``host:port`` of a running head, e.g. ``ray start
    --head --port 6379`` on one machine and ``ray start --address host:6379`` on
    the others) ``ray.init`` joins that cluster, whose CPUs are its nodes' own:
    ``num_cpus`` must not be given then (docs/deployment.md, "A Ray cluster").
    """
    init_args: dict[str, object] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
    }
    if os.environ.get("RAY_ADDRESS"):
        log.info("joining the Ray cluster at RAY_ADDRESS=%s", os.environ["RAY_ADDRESS"])
    else:
        init_args["num_cpus"] = os.cpu_count() or 1
    return init_args


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
    init_args = ray_init_args()
    backend = {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": gpus_per_client},
        "init_args": init_args,
    }
    logging.getLogger("flwr").addFilter(_deliberate_api)
    log.info(
        "%s: starting Flower's simulation engine (Ray, %d virtual SuperNodes, "
        "%g CPU each); the first round waits for Ray's start-up",
        run.algorithm,
        num_clients,
        cpus_per_client,
    )
    with _quiet_actors(not logging.getLogger(PACKAGE_LOGGER).isEnabledFor(DEBUG)):
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
