"""Flower ServerApp: validate the run config once, run the federation, save results.

``flwr run .`` uses the module-level ``app`` (run config from
``[tool.flwr.app.config]``: a ``preset`` plus dotted overrides); ``fedmuscle run``
builds one with :func:`make_server_app` around an already validated config.
:func:`serve` checkpoints after every round and, with ``checkpoint.resume``,
continues a run from its checkpoint (:mod:`fedmuscle_flwr.runs.checkpoint`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedmuscle_flwr.config.files import load_roster, resolve_run_config
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.data.fingerprint import public_fingerprint
from fedmuscle_flwr.data.registry import load_public
from fedmuscle_flwr.runs.checkpoint import open_run
from fedmuscle_flwr.runs.logs import PROGRESS_LOGGER, ensure_console_logging
from fedmuscle_flwr.runs.metrics import COMPLETED, round_line, round_table, run_status
from fedmuscle_flwr.serverapp.heap import keep_freed_memory, start_up_frozen
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from fedmuscle_flwr.wire.flower_compat import shorten_pull_backoff

log = logging.getLogger(__name__)
#: one line per finished round (``fedmuscle run`` shows these, or a progress bar)
progress = logging.getLogger(PROGRESS_LOGGER)


def name_run(run: RunConfig) -> RunConfig:
    """Give the run a concrete, unique name (its folder and its clients' state key)."""
    if run.run_name:
        return run
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return run.model_copy(update={"run_name": f"{stamp}-{run.algorithm}"})


def serve(grid: Grid, run: RunConfig) -> Path:
    """Run (or resume) every round of ``run`` on ``grid``; return the run folder."""
    keep_freed_memory()  # the relay's buffers reused, not faulted in afresh
    run = name_run(run)
    run_dir = Path(run.output_dir).expanduser() / run.run_name
    session = open_run(run, run_dir)
    run = session.run
    recorder = session.recorder
    recorder.write_config(run.model_dump(by_alias=True))

    def on_round(server_round: int, summary: Mapping[str, float], secs: float) -> None:
        session.names = strategy.book.to_json()  # bindings kept across --resume
        session.save(server_round, summary, secs)
        (line,) = round_table(recorder.rows, [{"round": server_round, **summary}])
        extra = {"round": server_round, "total": run.num_rounds}
        progress.info("%s", round_line(line, run.num_rounds), extra=extra)

    fingerprint = announce_public(run)
    strategy = FedMuscle(
        run,
        recorder,
        on_round=on_round,
        completed=session.completed,
        public_fingerprint=fingerprint,
    )
    strategy.restore_names(session.names)
    t0 = time.perf_counter()
    with start_up_frozen():
        strategy.start(grid=grid)
    fed = run.federation
    status = run_status(recorder.rows, run.num_rounds, fed.min_clients)
    recorder.write_summary(
        {
            "algorithm": run.algorithm,
            "seconds": session.seconds_before + time.perf_counter() - t0,
            "segments": session.segments,
            "rounds": session.history,
            "public-fingerprint": fingerprint,
        },
        status,
    )
    if status["status"] != COMPLETED:
        log.error("run %s ended incomplete: %s", run.run_name, status["reason"])
    log.info("results in %s", run_dir)
    return run_dir


def announce_public(run: RunConfig) -> str:
    """The fingerprint of the server's public set, logged; sent with every message."""
    public = load_public(run.public.dataset, run.public.size, run.public.options)
    fingerprint = public_fingerprint(public)
    log.info(
        "public set: %d samples from %s, fingerprint %s (clients must match it)",
        len(public),
        public.origin,
        fingerprint,
    )
    return fingerprint


def check_node_count(nodes: int, run: RunConfig) -> None:
    """Warn when the nodes connected at start do not match the roster's clients.

    ``flwr run . local`` starts Flower's default of 2 virtual SuperNodes, which
    run the roster's first 2 clients (partition-id 0, 1) only. Not in a
    deployment (``fedmuscle server``): its clients name their own profiles.
    """
    if run.federation.deployed:
        return
    try:
        clients = len(load_roster(run.federation.roster))
    except ConfigError:
        return  # the clients resolve the roster themselves and report it
    if nodes != clients:
        log.warning(
            "%d nodes connected, roster %r has %d clients: in a simulation "
            "(`flwr run . local`) start one SuperNode per client with "
            '--federation-config "num-supernodes=%d" (a deployment\'s clients '
            "name their own profiles and may ignore this)",
            nodes,
            run.federation.roster,
            clients,
            clients,
        )


def make_server_app(run: RunConfig | None = None) -> ServerApp:
    """A ServerApp for ``run``, or one that reads the run config from Flower."""
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        ensure_console_logging()
        shorten_pull_backoff()  # deployment: the replies' objects (1 s -> 0.05 s)
        if run is not None:
            serve(grid, run)
            return
        cfg = resolve_run_config(context.run_config)
        check_node_count(len(list(grid.get_node_ids())), cfg)
        serve(grid, cfg)

    return server_app


app = make_server_app()
