"""Deployment roles: the server (SuperLink + a FedMuscle run) and a client (SuperNode).

Both roles run Flower 1.39's own executables (see :mod:`.processes` and
:mod:`.control` beside this module):

* :func:`run_server` starts ``flower-superlink`` (Fleet API gRPC, TLS unless
  insecure, optional SuperNode authentication with registered public keys),
  submits the run with ``flwr run``, polls ``flwr list`` until it finished and
  stops everything;
* :func:`run_client` (:mod:`fedmuscle_flwr.launch.deploy.node`, re-exported here) starts
  ``flower-supernode`` with this client's profile, state and data.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import flatten
from fedmuscle_flwr.launch.deploy.certs import (
    CA_CERT,
    SERVER_CERT,
    SERVER_KEY,
    read_public_keys,
)
from fedmuscle_flwr.launch.deploy.control import (
    CONNECTION,
    OnlineNodes,
    RefusalWatcher,
    find_app_dir,
    key_label,
    register_nodes,
    stop_run,
    submit_run,
    wait_run,
    write_connection,
    write_minimal_app,
)
from fedmuscle_flwr.launch.deploy.handshakes import TRACE_ENV, HandshakeWatcher
from fedmuscle_flwr.launch.deploy.node import (
    ClientOptions,
    run_client,
    supernode_command,
)
from fedmuscle_flwr.launch.deploy.processes import (
    DeploymentError,
    Managed,
    ReadyFile,
    flower_env,
    flower_program,
    process_group,
    split_address,
    toml_value,
    wait_for_port,
)
from fedmuscle_flwr.launch.deploy.superlink import read_registered
from fedmuscle_flwr.runs.metrics import INCOMPLETE, IncompleteRun, read_summary

log = logging.getLogger(__name__)
#: ``{node id: key name}`` in the server's workdir (``federation.node-keys-file``)
NODE_KEYS = "node-keys.json"

#: the server's work folder (Flower home, logs, run config) inside the run folder
SERVER_WORKDIR = "server"
#: node ids the SuperLink registered before its Fleet API started (:mod:`.superlink`)
REGISTERED_IDS = "registered-node-ids.json"


@dataclass(frozen=True)
class ServerOptions:
    """How to run the server side.

    Parameters
    ----------
    fleet_address : str
        Fleet API (gRPC) bind address, where SuperNodes connect.
    control_address : str
        Control + ServerAppIo HTTP(S) bind address (the ``flwr`` CLI's target).
    tls_dir : Path or None
        Folder with ``ca.crt``, ``server.pem``, ``server.key``; ``None`` = insecure.
    auth_keys : Path or None
        Public keys (file or folder) to register; enables SuperNode authentication.
    workdir : Path or None
        Flower home, logs and the run config; ``<run folder>/server`` if ``None``.
    timeout_s : float
        Upper bound on the run's duration.
    ready_file : Path or None
        Created (run id and name inside) once the SuperLink listens, the node keys
        are registered and the run is submitted, i.e. when clients can join;
        removed when the server stops. For container healthchecks.
    """

    fleet_address: str = "0.0.0.0:9092"
    control_address: str = "127.0.0.1:8000"
    tls_dir: Path | None = None
    auth_keys: Path | None = None
    workdir: Path | None = None
    timeout_s: float = 24 * 3600.0
    ready_file: Path | None = None


def superlink_command(
    opts: ServerOptions, register: tuple[Path, Path] | None = None
) -> list[str]:
    """The SuperLink's command line for ``opts`` (1.39 flags).

    ``register=(keys file, node ids file)``: through
    :mod:`.superlink`, which registers the keys before the Fleet API accepts
    nodes; Flower's flags follow its ``--``.
    """
    cmd = _flower_superlink_flags(opts)
    if register is None:
        return [flower_program("flower-superlink"), *cmd]
    keys, ids = register
    launcher = [sys.executable, "-m", "fedmuscle_flwr.launch.deploy.superlink"]
    return [*launcher, "--register", str(keys), "--registered", str(ids), "--", *cmd]


def _flower_superlink_flags(opts: ServerOptions) -> list[str]:
    host, port = split_address(opts.control_address)
    cmd = [
        "--fleet-api-type",
        "grpc-rere",
        "--fleet-api-address",
        opts.fleet_address,
        "--host",
        host,
        "--port",
        str(port),
        "--isolation",
        "subprocess",
        "--disable-runtime-dependency-installation",
    ]
    if opts.tls_dir is None:
        return [*cmd, "--insecure"]
    tls = opts.tls_dir
    cmd += [
        "--ssl-ca-certfile",
        str(tls / CA_CERT),
        "--ssl-certfile",
        str(tls / SERVER_CERT),
        "--ssl-keyfile",
        str(tls / SERVER_KEY),
    ]
    return [*cmd, "--enable-supernode-auth"] if opts.auth_keys else cmd


def write_run_config(run: RunConfig, path: Path) -> Path:
    """Write the complete, validated run config as a TOML preset file."""
    flat = flatten(run.model_dump(by_alias=True, mode="json"))
    lines = [f"{key} = {toml_value(value)}" for key, value in sorted(flat.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by fedmuscle server\n" + "\n".join(lines) + "\n")
    return path


#: the ServerApp's own timestamp (our log line has one already)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
#: Flower's blank log lines (``INFO :`` and nothing else)
_EMPTY_FLOWER_LINE = re.compile(r"^[A-Z]+ :\s*$")


def _relay(line: str) -> None:
    """Forward the ServerApp's own output (``flwr log --stream``) to our log."""
    text = _STAMP.sub("", line.rstrip())
    if text.strip() and not _EMPTY_FLOWER_LINE.match(text):
        log.info("[serverapp] %s", text)


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


def start_superlink(
    opts: ServerOptions, workdir: Path, env: Mapping[str, str], procs: list[Managed]
) -> tuple[Managed, dict[int, str]]:
    """Start the SuperLink, wait for its ports, register keys; return it, node ids.

    With ``--auth-keys`` the keys are registered by the SuperLink's own process
    before its Fleet API accepts nodes (:mod:`.superlink`); only where that
    adjustment does not apply (another Flower version) through the Control API
    afterwards, and a node that connects in between is told "not yet registered".
    """
    keys = read_public_keys(opts.auth_keys) if opts.auth_keys is not None else []
    ids_file = workdir / REGISTERED_IDS
    ids_file.unlink(missing_ok=True)  # a resumed run's workdir has one
    register = None
    if keys:
        keys_file = workdir / "registered-keys.pub"
        keys_file.parent.mkdir(parents=True, exist_ok=True)
        keys_file.write_text("\n".join(keys) + "\n")
        register = (keys_file, ids_file)
    watcher = RefusalWatcher(registered_file=ids_file if keys else None)
    _, fleet_port = split_address(opts.fleet_address)
    handshakes = HandshakeWatcher(fleet_port) if opts.tls_dir else None
    link = Managed(
        "superlink",
        superlink_command(opts, register),
        {**env, **TRACE_ENV} if handshakes else env,
        workdir / "logs" / "superlink.log",
        SuperLinkOutput(watcher, handshakes),
    )
    procs.append(link)
    wait_for_port(*split_address(opts.control_address), timeout=60, proc=link)
    probes = handshakes.ignore.add if handshakes else None  # our own probe
    wait_for_port(*split_address(opts.fleet_address), 60, link, probing=probes)
    _, port = split_address(opts.control_address)
    ca = opts.tls_dir / CA_CERT if opts.tls_dir else None
    write_connection(Path(env["FLWR_HOME"]), f"127.0.0.1:{port}", ca)
    registered: dict[int, str] = {}
    if keys:
        registered = registered_before_fleet(keys, ids_file)
        if not registered:
            log.warning(
                "the SuperLink did not register the keys before its Fleet API "
                "started (see %s): registering through the Control API",
                link.log_path,
            )
            registered = register_nodes(keys, workdir, env)
    watcher.registered = True
    log.info(
        "SuperLink up: Fleet API (gRPC) on %s; log %s",
        opts.fleet_address,
        link.log_path,
    )
    return link, registered


@dataclass
class SuperLinkOutput:
    """Every SuperLink output line: failed handshakes, then refusals.

    Returns False for a line to keep out of ``superlink.log`` (gRPC's trace).
    """

    refusals: RefusalWatcher
    handshakes: HandshakeWatcher | None = None

    def __call__(self, line: str) -> bool:
        """Inspect one line; False: not for the log file."""
        if self.handshakes is not None and not self.handshakes(line):
            return False
        self.refusals(line)
        return True


def registered_before_fleet(keys: list[str], ids_file: Path) -> dict[int, str]:
    """``{node id: key label}`` the SuperLink wrote before its Fleet API started."""
    ids = read_registered(ids_file)
    if ids is None:
        return {}
    for line, node_id in zip(keys, ids, strict=True):
        log.info(
            "registered SuperNode key %s as node %s (before the Fleet API started)",
            key_label(line),
            node_id,
        )
    return {node_id: key_label(line) for line, node_id in zip(keys, ids, strict=True)}


def security_warnings(opts: ServerOptions) -> list[str]:
    """What ``opts`` leaves open, said once at start."""
    if opts.tls_dir is None:
        return ["--insecure: TLS is OFF; traffic to and from clients is plaintext"]
    if opts.auth_keys is None:
        return [
            "TLS without --auth-keys: any SuperNode that holds the public ca.crt "
            "may join this federation (SuperNode authentication is OFF)"
        ]
    return []


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
                "serverapp-log", stream, env, workdir / "logs" / "serverapp.log", _relay
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
    "ClientOptions",
    "DeploymentError",
    "ServerOptions",
    "run_client",
    "run_server",
    "superlink_command",
    "supernode_command",
]
