"""The server role: a SuperLink and the FedMuscle runs submitted to it.

:func:`run_server` starts the SuperLink (:mod:`.superlink_process`), submits each
run with ``flwr run`` (one, or with ``--compare`` the main run and its baselines,
:mod:`.session`), forwards the ServerApp's log, polls ``flwr list`` until the run
finished (:mod:`.control`), writes the report and stops everything. The client
role is :mod:`.client`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    INSECURE_NOTE,
    ServerOptions,
    security_warnings,
    start_superlink,
    superlink_command,
)
from fedmuscle_flwr.runs.experiment import is_finished
from fedmuscle_flwr.runs.metrics import INCOMPLETE, IncompleteRun, read_summary

log = logging.getLogger(__name__)
#: ``{node id: key name}`` in the server's workdir (``federation.node-keys-file``)
NODE_KEYS = "node-keys.json"

#: the server's work folder (Flower home, logs, run config) inside the run folder
SERVER_WORKDIR = "server"
#: how an operator reaches this server's shell, e.g. ``docker-compose exec superlink``:
#: the log's ``flwr`` hints start with it
EXEC_HINT_ENV = "FEDMUSCLE_EXEC_HINT"


def write_run_config(run: RunConfig, path: Path) -> Path:
    """Write the complete, validated run config as a TOML preset file."""
    flat = flatten(run.model_dump(by_alias=True, mode="json"))
    lines = [f"{key} = {toml_value(value)}" for key, value in sorted(flat.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by fedmuscle server\n" + "\n".join(lines) + "\n")
    return path


def name_deployed_run(run: RunConfig) -> RunConfig:
    """Name the run, make its output folder absolute, mark it deployed."""
    from fedmuscle_flwr.serverapp.app import name_run

    run = name_run(run)
    fed = run.federation.model_copy(update={"deployed": True})
    folder = str(Path(run.output_dir).resolve())
    return run.model_copy(update={"output_dir": folder, "federation": fed})


def prepare_run(
    run: RunConfig, workdir: Path, keyed: bool = False
) -> tuple[RunConfig, Path]:
    """Name the run, make its output folder absolute, and write its config file."""
    run = name_deployed_run(run)
    if keyed:  # filled by write_node_keys once the keys are registered
        path = str((workdir / NODE_KEYS).resolve())
        fed = run.federation.model_copy(update={"node_keys_file": path})
        run = run.model_copy(update={"federation": fed})
    return run, write_run_config(run, workdir / f"run-config-{run.run_name}.toml")


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


def run_server(
    runs: Sequence[RunConfig], opts: ServerOptions, session: Path | None = None
) -> Path:
    """Start the SuperLink, run ``runs`` in turn via ``flwr run``, stop; the folder.

    One run: its folder (``report.md`` inside). Several (``fedmuscle server
    --compare``): they run one after another on the same SuperLink and clients,
    each in ``session/<its name>``, a run that finished before (``summary.json``)
    is skipped, and the report covers the session folder (the Δ column of
    ``fedmuscle run``).

    Raises
    ------
    DeploymentError
        When a process fails, or a run does not finish ``completed`` in time.
    IncompleteRun
        When a run finished without a valid final evaluation
        (``summary.json``: ``status: incomplete``).
    KeyboardInterrupt
        On Ctrl-C / SIGTERM, after the run was stopped and all children ended; not
        once the last run completed and the results are written (a signal while
        the processes stop then changes nothing).
    """
    runs = [name_deployed_run(run) for run in runs]
    folder = session or Path(runs[0].output_dir) / runs[0].run_name
    workdir = (opts.workdir or folder / SERVER_WORKDIR).resolve()
    env = flower_env(workdir / "flwr-home")
    app_dir = find_app_dir() or write_minimal_app(workdir / "app")
    todo = [r for r in runs if not is_finished(Path(r.output_dir) / r.run_name)]
    for run in runs[: len(runs) - len(todo)]:
        log.info("run %s finished before: not run again", run.run_name)
    if opts.tls_dir is None:
        log.info("%s", INSECURE_NOTE)
    for warning in security_warnings(opts):
        log.warning("%s", warning)
    completed = False  # every run completed and the results are written
    summaries: list[tuple[RunConfig, dict[str, Any]]] = []
    try:
        with ReadyFile(opts.ready_file) as ready, process_group() as procs:
            link, registered = start_superlink(opts, workdir, env, procs)
            if opts.auth_keys is not None:
                keys = read_public_keys(opts.auth_keys)
                write_node_keys(workdir / NODE_KEYS, keys, list(registered))
            for run in todo:
                run, cfg_file = prepare_run(run, workdir, opts.auth_keys is not None)
                run_id = submit_run(app_dir, cfg_file, env)
                one = _Submitted(run, run_id, env, link, workdir / "logs")
                one.announce(len(summaries) + len(runs) - len(todo), len(runs))
                ready.set(f"run {one.run_id} {run.run_name}")
                status = one.wait(procs, opts.timeout_s, registered)
                if status != "finished:completed":
                    raise DeploymentError(
                        f"run {one.run_id} ended {status}; see {link.log_path}"
                    )
                summaries.append(
                    (run, read_summary(Path(run.output_dir) / run.run_name))
                )
            # the results and the report are written while the SuperLink still
            # listens: clients that wait for it to stop (--wait-server-exit) leave
            # only once this server has nothing left to do but stop its processes
            _report(folder)  # an incomplete run's results are worth a table too
            completed = True
    except KeyboardInterrupt:
        if not completed:
            raise
        # e.g. `docker compose` stopping the stack once a client left after the run
        log.info("interrupted while stopping after the run; its results are complete")
    for run, summary in summaries:
        if summary.get("status") == INCOMPLETE:
            raise IncompleteRun(
                f"run {run.run_name} ended incomplete: {summary.get('reason')}; "
                f"results in {folder}"
            )
    log.info("%d run(s) completed; results in %s", len(summaries), folder)
    return folder


@dataclass
class _Submitted:
    """One submitted run: its progress relayed, waited for, stopped on Ctrl-C."""

    run: RunConfig
    run_id: int
    env: dict[str, str]
    link: Managed
    logs: Path

    def announce(self, before: int, total: int) -> None:
        """Say which run this is and how to follow it from where the operator is."""
        which = f", {before + 1} of {total}" if total > 1 else ""
        log.info(
            "run %s (%s%s) submitted; it waits for %d clients",
            self.run_id,
            self.run.run_name,
            which,
            self.run.federation.min_clients,
        )
        # `docker-compose exec superlink` in the compose demo: the hint works there
        prefix = os.environ.get(EXEC_HINT_ENV, "").strip()
        home = self.env["FLWR_HOME"]
        flwr = (
            f"{prefix} env FLWR_HOME={home} flwr"
            if prefix
            else f"FLWR_HOME={home} flwr"
        )
        log.info(
            "follow it from another shell: %s log %s %s --stream",
            flwr,
            self.run_id,
            CONNECTION,
        )

    def wait(
        self, procs: list[Managed], timeout_s: float, registered: dict[int, str]
    ) -> str:
        """Relay the ServerApp's log and wait for the run's final status."""
        stream = [
            flower_program("flwr"),
            "log",
            str(self.run_id),
            CONNECTION,
            "--stream",
        ]
        logs = Managed(
            "serverapp-log",
            stream,
            self.env,
            self.logs / f"serverapp-{self.run.run_name}.log",
            forward_serverapp_line,
        )
        procs.append(logs)
        try:
            return wait_run(
                self.run_id,
                self.env,
                timeout_s,
                alive=lambda: self.link.poll() is None,
                tick=OnlineNodes(self.env, registered),
                hint=lambda: logs.poll() is not None,
            )
        except KeyboardInterrupt:
            log.warning("interrupted: stopping run %s and the SuperLink", self.run_id)
            stop_run(self.run_id, self.env)
            raise


def _report(run_dir: Path) -> None:
    """``report.md`` and ``plots/`` in the run folder: ``fedmuscle report RUN_DIR``."""
    from fedmuscle_flwr.runs.report import write_report

    try:
        log.info("report: %s (plots: %s/plots)", write_report(run_dir), run_dir)
    except Exception as exc:  # the run's results stand without the report
        log.warning("no report.md for %s: %s", run_dir, exc)


__all__ = [
    "INSECURE_NOTE",
    "DeploymentError",
    "ServerOptions",
    "run_server",
    "security_warnings",
    "start_superlink",
    "superlink_command",
]
