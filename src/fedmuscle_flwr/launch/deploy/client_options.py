"""How one client runs: its options, its SuperNode's command line, its data.

``flower-supernode`` (Flower 1.39, Fleet API over gRPC) gets the profile and the
state directory in ``--node-config`` and the private data folders as the env vars
the data loaders honour (``FEDMUSCLE_FASHION_MNIST_DIR`` ...); none of this ever
reaches the server.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmuscle_flwr.launch.deploy.processes import flower_program, toml_value
from fedmuscle_flwr.wire.flower_compat import (
    DEFAULT_IDLE_S,
    DEFAULT_INITIAL_BACKOFF_S,
    DEFAULT_REPLY_S,
)

log = logging.getLogger(__name__)

#: the SuperNode with Flower's loop waits shortened (``python -m`` this)
SUPERNODE_MAIN = "fedmuscle_flwr.launch.deploy.supernode_main"


@dataclass(frozen=True)
class ClientOptions:
    """How to run one client (a SuperNode with the FedMuscle ClientApp).

    Parameters
    ----------
    server : str
        The SuperLink's Fleet API address ``HOST:PORT``.
    profile : str
        A profile name under ``clients/`` or a TOML path.
    data_dir, state_dir : Path or None
        Private data root (exported as the loaders' env vars) and state folder.
    tls_ca : Path or None
        CA certificate that signed the server's; ``None`` = insecure.
    auth_key : Path or None
        This node's OpenSSH ECDSA private key (SuperNode authentication).
    max_retries : int or None
        Connection attempts before giving up (``None`` = forever).
    max_wait_s : float or None
        Seconds of retrying before giving up (``None`` = forever).
    runtime_port : int or None
        Local ClientAppIo port; a free one if ``None``.
    overrides : mapping
        Dotted profile overrides put into ``--node-config``.
    relaunches : int
        How often in a row a SuperNode that exited on its own (not stopped by
        this process) is started again, with doubling waits from 2 s; a run of
        at least a minute resets the count. Flower 1.39's SuperNode exits when a
        restarted SuperLink does not know its node id. 0 = exit with it.
    exit_after_run : bool
        Stop the SuperNode and return 0 once the run finished: the ClientApp
        answered the final round's evaluation and the SuperNode sent the reply.
    warm : bool
        Run the ClientApp in this process, warm across messages: a SuperNode
        with ``--isolation process`` whose tasks a
        :class:`~fedmuscle_flwr.launch.deploy.resident_clientapp.ResidentClientApp`
        runs, with the SuperNode's loop waits shortened
        (:mod:`fedmuscle_flwr.launch.deploy.supernode_main`); ``False``: the stock
        ``flower-supernode`` with one ``flwr-clientapp`` process per message.
    idle_s, reply_s : float
        The warm SuperNode's idle poll and reply wait (Flower's: 3 s and 0.5 s).
    pull_backoff_s : float
        The warm SuperNode's first wait when a message's object is not yet at
        the SuperLink (Flower's: 1 s; :mod:`fedmuscle_flwr.wire.flower_compat`).
    policy : Path or None
        A client policy file (``--policy``), put into ``--node-config``.
    wait_server_exit_s : float
        With ``exit_after_run``: after the run, wait up to this long until the
        server stops accepting connections before returning. Compose stops every
        service when the first container exits, so a client that left first would
        stop the server before it wrote the results.
    ready_file : Path or None
        Created (with the node id) once the SuperLink registered this node,
        removed while it is relaunched and on exit. For container healthchecks.
    """

    server: str
    profile: str
    data_dir: Path | None = None
    state_dir: Path | None = None
    tls_ca: Path | None = None
    auth_key: Path | None = None
    max_retries: int | None = None
    max_wait_s: float | None = None
    runtime_port: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    relaunches: int = 5
    exit_after_run: bool = False
    warm: bool = True
    idle_s: float = DEFAULT_IDLE_S
    reply_s: float = DEFAULT_REPLY_S
    pull_backoff_s: float = DEFAULT_INITIAL_BACKOFF_S
    wait_server_exit_s: float = 0.0
    ready_file: Path | None = None
    policy: Path | None = None


def node_config(opts: ClientOptions) -> str:
    """The ``--node-config`` string: profile, state dir and overrides (TOML values)."""
    profile = Path(opts.profile).expanduser()
    name = str(profile.resolve()) if profile.suffix == ".toml" else opts.profile
    items: dict[str, Any] = {"profile": name, **opts.overrides}
    if opts.state_dir is not None:
        items["state-dir"] = str(opts.state_dir.expanduser().resolve())
    if opts.policy is not None:  # replaces the profile's [policy] in the ClientApp
        items["policy"] = str(opts.policy.expanduser().resolve())
    return " ".join(f"{key}={toml_value(value)}" for key, value in items.items())


def data_env(data_dir: Path) -> dict[str, str]:
    """Env vars pointing the data loaders at ``data_dir/<source key>`` folders.

    ``data_dir`` itself counts for a source whose files lie directly in it.
    """
    from fedmuscle_flwr.data import sources

    env: dict[str, str] = {}
    for src in vars(sources).values():
        if not isinstance(src, sources.Source) or not src.env_var:
            continue
        for folder in (data_dir / src.key, data_dir):
            if folder.is_dir() and all((folder / f).exists() for f in src.files):
                env[src.env_var] = str(folder.resolve())
                break
    if not env:
        log.warning("--data-dir %s holds no known dataset folder", data_dir)
    return env


def supernode_command(opts: ClientOptions, runtime_port: int) -> list[str]:
    """The ``flower-supernode`` command line for ``opts`` (1.39 flags).

    Warm: Flower's SuperNode through :mod:`fedmuscle_flwr.launch.deploy.
    supernode_main`, with ``--isolation process`` (this process runs the
    ClientApp tasks, :mod:`fedmuscle_flwr.launch.deploy.resident_clientapp`).
    """
    if opts.warm:
        launcher = [sys.executable, "-m", SUPERNODE_MAIN]
        launcher += ["--idle-s", str(opts.idle_s), "--reply-s", str(opts.reply_s)]
        launcher += ["--pull-backoff-s", str(opts.pull_backoff_s)]
        launcher += ["--", "--isolation", "process"]
    else:
        launcher = [flower_program("flower-supernode"), "--isolation", "subprocess"]
    cmd = [
        *launcher,
        "--superlink",
        opts.server,
        "--grpc-rere",
        "--host",
        "127.0.0.1",
        "--port",
        str(runtime_port),
        "--node-config",
        node_config(opts),
    ]
    cmd += ["--root-certificates", str(opts.tls_ca)] if opts.tls_ca else ["--insecure"]
    if opts.auth_key is not None:
        cmd += ["--auth-supernode-private-key", str(opts.auth_key)]
    if opts.max_retries is not None:
        cmd += ["--max-retries", str(opts.max_retries)]
    if opts.max_wait_s is not None:
        cmd += ["--max-wait-time", str(opts.max_wait_s)]
    return cmd
