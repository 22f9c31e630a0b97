"""The client role: one SuperNode with this client's profile, state and data.

``flower-supernode`` (Flower 1.39, Fleet API over gRPC) gets the profile and the
state directory in ``--node-config`` and the private data folders as the env vars
the data loaders honour (``FEDMUSCLE_FASHION_MNIST_DIR`` ...); none of this ever
reaches the server.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmuscle_flwr.processes import (
    Managed,
    flower_env,
    free_port,
    process_group,
    toml_value,
)

log = logging.getLogger(__name__)

#: Flower's exit code (logged; the process exits 1) for "could not connect or refused"
EXIT_NODE_REFUSED = 305
_REFUSED_MARK = "Exit Code: 305"
_RELAUNCH_S = 5.0


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


def node_config(opts: ClientOptions) -> str:
    """The ``--node-config`` string: profile, state dir and overrides (TOML values)."""
    profile = Path(opts.profile).expanduser()
    name = str(profile.resolve()) if profile.suffix == ".toml" else opts.profile
    items: dict[str, Any] = {"profile": name, **opts.overrides}
    if opts.state_dir is not None:
        items["state-dir"] = str(opts.state_dir.expanduser().resolve())
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
    """The ``flower-supernode`` command line for ``opts`` (1.39 flags)."""
    cmd = [
        "flower-supernode",
        "--superlink",
        opts.server,
        "--grpc-rere",
        "--isolation",
        "subprocess",
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


class _Output:
    """Echoes the SuperNode's output and notices Flower's refusal exit (305)."""

    def __init__(self) -> None:
        self.refused = False

    def __call__(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        self.refused |= _REFUSED_MARK in line


def run_client(opts: ClientOptions, home: Path | None = None) -> int:
    """Run one SuperNode in the foreground until it exits; return its exit code.

    Flower 1.39's SuperNode retries while the server is unreachable, but exits
    (status 1, logging "Exit Code: 305") when the SuperLink refuses its key, e.g.
    because it connected before the server registered it. That case is relaunched
    within the same budget (``max_retries`` launches, ``max_wait_s`` seconds).
    Returns :data:`EXIT_NODE_REFUSED` if the node was refused in the end.
    """
    if opts.tls_ca is None:
        log.warning("--insecure: TLS is OFF; this client talks plaintext to the server")
    home = home or Path(tempfile.mkdtemp(prefix="fedmuscle-client-"))
    env = flower_env(home, data_env(opts.data_dir) if opts.data_dir else None)
    cmd = supernode_command(opts, opts.runtime_port or free_port())
    log.info("client %s -> %s (Flower home %s)", opts.profile, opts.server, home)
    start, launches = time.monotonic(), 0
    while True:
        output = _Output()
        with process_group() as procs:
            procs.append(Managed("supernode", cmd, env, home / "supernode.log", output))
            code = procs[-1].wait()
        launches += 1
        if not output.refused or _spent(opts, launches, start):
            break
        log.warning("not admitted by %s; retrying in %.0f s", opts.server, _RELAUNCH_S)
        time.sleep(_RELAUNCH_S)
    if output.refused:
        log.error(
            "REFUSED: the server at %s did not admit this client: is this node's "
            "public key registered there (fedmuscle server --auth-keys)?",
            opts.server,
        )
        return EXIT_NODE_REFUSED
    return code


def _spent(opts: ClientOptions, launches: int, start: float) -> bool:
    if opts.max_retries is not None and launches > opts.max_retries:
        return True
    return opts.max_wait_s is not None and time.monotonic() - start > opts.max_wait_s
