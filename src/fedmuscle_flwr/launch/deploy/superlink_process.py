"""The SuperLink process: its options and command line, its start, its output.

:func:`start_superlink` starts Flower 1.39's ``flower-superlink`` (Fleet API
gRPC, TLS unless insecure, optional SuperNode authentication with registered
public keys), waits for its ports and registers the SuperNode keys: with the
``register-before-fleet`` adjustment (:mod:`.superlink_main`,
:mod:`fedmuscle_flwr.wire.flower_compat`) in its own start-up, elsewhere through
Flower's Control API (:mod:`.control`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedmuscle_flwr.launch.deploy.certs import (
    CA_CERT,
    SERVER_CERT,
    SERVER_KEY,
    read_public_keys,
)
from fedmuscle_flwr.launch.deploy.control import (
    RefusalWatcher,
    key_label,
    register_nodes,
    write_connection,
)
from fedmuscle_flwr.launch.deploy.handshakes import TRACE_ENV, HandshakeWatcher
from fedmuscle_flwr.launch.deploy.processes import (
    Managed,
    flower_program,
    split_address,
    wait_for_port,
)
from fedmuscle_flwr.launch.deploy.superlink_main import read_registered

log = logging.getLogger(__name__)

#: node ids the SuperLink registered before its Fleet API (:mod:`.superlink_main`)
REGISTERED_IDS = "registered-node-ids.json"
#: the SuperLink that registers keys before its Fleet API (``python -m`` this)
SUPERLINK_MAIN = "fedmuscle_flwr.launch.deploy.superlink_main"


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
    :mod:`.superlink_main`, which registers the keys before the Fleet API accepts
    nodes; Flower's flags follow its ``--``.
    """
    cmd = _flower_superlink_flags(opts)
    if register is None:
        return [flower_program("flower-superlink"), *cmd]
    keys, ids = register
    launcher = [sys.executable, "-m", SUPERLINK_MAIN]
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


def start_superlink(
    opts: ServerOptions, workdir: Path, env: Mapping[str, str], procs: list[Managed]
) -> tuple[Managed, dict[int, str]]:
    """Start the SuperLink, wait for its ports, register keys; return it, node ids.

    With ``--auth-keys`` the keys are registered by the SuperLink's own process
    before its Fleet API accepts nodes (:mod:`.superlink_main`); only where that
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


#: said once at INFO with ``--insecure``: the operator chose plaintext, so no warning
#: (a good run of the plain compose demo prints none); it says how to turn TLS on
INSECURE_NOTE = (
    "TLS is OFF (--insecure): traffic to and from clients is plaintext; to turn it "
    "on, give --tls-dir and --auth-keys (fedmuscle certs makes them; compose: "
    "docker/with-tls.yml)"
)


def security_warnings(opts: ServerOptions) -> list[str]:
    """What ``opts`` leaves open unasked, said once at start (``--insecure``: none)."""
    if opts.tls_dir is None:
        return []
    if opts.auth_keys is None:
        return [
            "TLS without --auth-keys: any SuperNode that holds the public ca.crt "
            "may join this federation (SuperNode authentication is OFF)"
        ]
    return []
