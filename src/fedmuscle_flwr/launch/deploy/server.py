"""The server role: a SuperLink and one FedMuscle run submitted to it.

:func:`run_server` starts the SuperLink (:mod:`.superlink_process`), submits the
run with ``flwr run``, forwards the ServerApp's log, polls ``flwr list`` until
the run finished (:mod:`.control`), writes the report and stops everything. The
client role is :mod:`.client`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import flatten
from fedmuscle_flwr.launch.deploy.certs import read_public_keys
from fedmuscle_flwr.launch.deploy.control import (
    CONNECTION,
    OnlineNodes,
    find_app_dir,
    key_label,
    stop_run,
    submit_run,
    wait_run,
    write_minimal_app,
)
from fedmuscle_flwr.launch.deploy.processes import (
    DeploymentError,
    Managed,
    ReadyFile,
    flower_env,
    flower_program,
    process_group,
    toml_value,
)
from fedmuscle_flwr.launch.deploy.superlink_process import (
    ServerOptions,
    security_warnings,
    start_superlink,
    superlink_command,
)
from fedmuscle_flwr.runs.metrics import INCOMPLETE, IncompleteRun, read_summary

log = logging.getLogger(__name__)
#: ``{node id: key name}`` in the server's workdir (``federation.node-keys-file``)
NODE_KEYS = "node-keys.json"

#: the server's work folder (Flower home, logs, run config) inside the run folder
SERVER_WORKDIR = "server"


def write_run_config(run: RunConfig, path: Path) -> Path:
    """Write the complete, validated run config as a TOML preset file."""
    flat = flatten(run.model_dump(by_alias=True, mode="json"))
    lines = [f"{key} = {toml_value(value)}" for key, value in sorted(flat.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by fedmuscle server\n" + "\n".join(lines) + "\n")
    return path


def name_deployed_run(run: RunConfig) -> RunConfig:
    """Name the run and make its output folder absolute."""
    from fedmuscle_flwr.serverapp.app import name_run

    run = name_run(run)
    return run.model_copy(update={"output_dir": str(Path(run.output_dir).resolve())})


def prepare_run(
    run: RunConfig, workdir: Path, keyed: bool = False
) -> tuple[RunConfig, Path]:
    """Name the run, make its output folder absolute, and write its config file."""
    run = name_deployed_run(run)
    if keyed:  # filled by write_node_keys once the keys are registered
        path = str((workdir / NODE_KEYS).resolve())
        fed = run.federation.model_copy(update={"node_keys_file": path})
        run = run.model_copy(update={"federation": fed})
    return run, write_run_config(run, workdir / "run-config.toml")


def write_node_keys(path: Path, keys: list[str], node_ids: list[int]) -> None:
    """``{node id: key name}`` of the registered SuperNode keys, for the ServerApp."""
    names = {str(n): key_label(line) for line, n in zip(keys, node_ids, strict=True)}
    path.write_text(json.dumps(names, indent=1))


#: the ServerApp's own timestamp (our log line has one already)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
#: Flower's blank log lines (``INFO :`` and nothing else)
_EMPTY_FLOWER_LINE = re.compile(r"^[A-Z]+ :\s*$")


def forward_serverapp_line(line: str) -> None:
    """Forward the ServerApp's own output (``flwr log --stream``) to our log."""
    text = _STAMP.sub("", line.rstrip())
    if text.strip() and not _EMPTY_FLOWER_LINE.match(text):
        log.info("[serverapp] %s", text)


def run_server(run: RunConfig, opts: ServerOptions) -> Path:
    """Start the SuperLink, run ``run`` via ``flwr run``, stop; return the run folder.

    Raises
    ------
    DeploymentError
        When a process fails, or the run does not finish ``completed`` in time.
    IncompleteRun
        When the run finished without a valid final evaluation
        (``summary.json``: ``status: incomplete``).
    KeyboardInterrupt
        On Ctrl-C / SIGTERM, after the run was stopped and all children ended; not
        once the run completed and its results are written (a signal while the
        processes stop then changes nothing).
    """
    run = name_deployed_run(run)
    run_dir = Path(run.output_dir) / run.run_name
    workdir = (opts.workdir or run_dir / SERVER_WORKDIR).resolve()
    env = flower_env(workdir / "flwr-home")
    run, cfg_file = prepare_run(run, workdir, keyed=opts.auth_keys is not None)
    app_dir = find_app_dir() or write_minimal_app(workdir / "app")
    for warning in security_warnings(opts):
        log.warning("%s", warning)
    completed = False  # the run completed and its results are written
    try:
        with ReadyFile(opts.ready_file) as ready, process_group() as procs:
            link, registered = start_superlink(opts, workdir, env, procs)
            if opts.auth_keys is not None:
                keys = read_public_keys(opts.auth_keys)
                write_node_keys(workdir / NODE_KEYS, keys, list(registered))
            run_id = submit_run(app_dir, cfg_file, env)
            log.info(
                "run %s (%s) submitted; it waits for %d clients",
                run_id,
                run.run_name,
                run.federation.min_clients,
            )
            home = env["FLWR_HOME"]
            log.info(
                "follow it from another shell: FLWR_HOME=%s flwr log %s %s --stream  "
                "(all runs: FLWR_HOME=%s flwr ls %s)",
                home,
                run_id,
                CONNECTION,
                home,
                CONNECTION,
            )
            ready.set(f"run {run_id} {run.run_name}")
            stream = [
                flower_program("flwr"),
                "log",
                str(run_id),
                CONNECTION,
                "--stream",
            ]
            logs = Managed(
                "serverapp-log",
                stream,
                env,
                workdir / "logs" / "serverapp.log",
                forward_serverapp_line,
            )
            procs.append(logs)
            try:
                status = wait_run(
                    run_id,
                    env,
                    opts.timeout_s,
                    alive=lambda: link.poll() is None,
                    tick=OnlineNodes(env, registered),
                    hint=lambda: logs.poll() is not None,
                )
            except KeyboardInterrupt:
                log.warning("interrupted: stopping run %s and the SuperLink", run_id)
                stop_run(run_id, env)
                raise
            if status == "finished:completed":
                # the results and the report are written while the SuperLink still
                # listens: clients that wait for it to stop (--wait-server-exit) leave
                # only once this server has nothing left to do but stop its processes
                summary = read_summary(run_dir)
                _report(run_dir)  # an incomplete run's results are worth a table too
                completed = True
    except KeyboardInterrupt:
        if not completed:
            raise
        # e.g. `docker compose` stopping the stack once a client left after the run
        log.info("interrupted while stopping after the run; its results are complete")
    if status != "finished:completed":
        raise DeploymentError(f"run {run_id} ended {status}; see {link.log_path}")
    if summary.get("status") == INCOMPLETE:
        raise IncompleteRun(
            f"run {run_id} ended incomplete: {summary.get('reason')}; "
            f"results in {run_dir}"
        )
    log.info("run %s %s; results in %s", run_id, status, run_dir)
    return run_dir


def _report(run_dir: Path) -> None:
    """``report.md`` and ``plots/`` in the run folder: ``fedmuscle report RUN_DIR``."""
    from fedmuscle_flwr.runs.report import write_report

    try:
        log.info("report: %s (plots: %s/plots)", write_report(run_dir), run_dir)
    except Exception as exc:  # the run's results stand without the report
        log.warning("no report.md for %s: %s", run_dir, exc)


__all__ = [
    "DeploymentError",
    "ServerOptions",
    "run_server",
    "security_warnings",
    "start_superlink",
    "superlink_command",
]
