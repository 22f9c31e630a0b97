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

from fedmuscle_flwr.launch.deploy.processes import (
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
#: first wait before relaunching a SuperNode that exited on its own (doubles)
_BACKOFF_S = 2.0
_MAX_BACKOFF_S = 60.0
#: a SuperNode that ran this long was up: its exit starts a fresh relaunch count
_STABLE_S = 60.0
#: what a 1.39 SuperNode logs when it stops itself (or is stopped)
_LEAVING_MARK = "SuperNode terminated gracefully"
#: seconds a SuperNode that logged _LEAVING_MARK may take to exit before it is stopped
_EXIT_GRACE_S = 15.0


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
    """Echoes the SuperNode's output; notices refusal (305) and self-termination."""

    def __init__(self) -> None:
        self.refused = False
        self.leaving: float | None = None  # when it logged _LEAVING_MARK

    def __call__(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        self.refused |= _REFUSED_MARK in line
        if self.leaving is None and _LEAVING_MARK in line:
            self.leaving = time.monotonic()


def _run_once(node: Managed, output: _Output) -> int:
    """Wait for the SuperNode to exit; stop it if it hangs after terminating.

    Flower 1.39: when a SuperNode stops itself while it is pushing a reply, its
    heartbeat thread can raise during shutdown and the process keeps retrying
    connections forever instead of exiting (observed after a server restart).
    """
    while (code := node.poll()) is None:
        if output.leaving is not None and (
            time.monotonic() - output.leaving > _EXIT_GRACE_S
        ):
            log.warning(
                "the SuperNode logged its termination %.0f s ago but still runs; "
                "stopping it",
                time.monotonic() - output.leaving,
            )
            stopped = node.stop()
            return -1 if stopped is None else stopped
        time.sleep(0.5)
    return code


def run_client(opts: ClientOptions, home: Path | None = None) -> int:
    """Run one SuperNode in the foreground until it exits; return its exit code.

    Flower 1.39's SuperNode retries while the server is unreachable, but exits

    * with status 1, logging "Exit Code: 305", when the SuperLink refuses its
      key, e.g. because it connected before the server registered it: relaunched
      within the connection budget (``max_retries`` launches, ``max_wait_s`` s);
      :data:`EXIT_NODE_REFUSED` is returned if it was refused in the end;
    * "gracefully" when a restarted SuperLink does not know its node id (the
      server crashed and was resumed): relaunched up to ``relaunches`` times in
      a row with doubling waits, so that the node rejoins under a new id (its
      state is keyed by profile, not by node id). One that logs its termination
      but does not exit within 15 s is stopped and relaunched likewise.

    Ctrl-C or SIGTERM to this process stops the SuperNode and is not relaunched.
    """
    if opts.tls_ca is None:
        log.warning("--insecure: TLS is OFF; this client talks plaintext to the server")
    home = home or Path(tempfile.mkdtemp(prefix="fedmuscle-client-"))
    env = flower_env(home, data_env(opts.data_dir) if opts.data_dir else None)
    cmd = supernode_command(opts, opts.runtime_port or free_port())
    log.info("client %s -> %s (Flower home %s)", opts.profile, opts.server, home)
    start, launches, in_a_row = time.monotonic(), 0, 0
    while True:
        output, began = _Output(), time.monotonic()
        with process_group() as procs:
            procs.append(Managed("supernode", cmd, env, home / "supernode.log", output))
            code = _run_once(procs[-1], output)
        launches += 1
        if output.refused:
            if _spent(opts, launches, start):
                break
            log.warning("not admitted by %s; retry in %.0f s", opts.server, _RELAUNCH_S)
            time.sleep(_RELAUNCH_S)
            continue
        in_a_row = 1 if time.monotonic() - began >= _STABLE_S else in_a_row + 1
        if in_a_row > opts.relaunches:
            log.error(
                "the SuperNode exited (status %s); not relaunched (%d relaunches "
                "in a row allowed)",
                code,
                opts.relaunches,
            )
            return code
        wait = min(_BACKOFF_S * 2 ** (in_a_row - 1), _MAX_BACKOFF_S)
        log.warning(
            "the SuperNode exited on its own (status %s, after %.0f s; a restarted "
            "server does not know its node id); relaunch %d/%d in %.0f s",
            code,
            time.monotonic() - began,
            in_a_row,
            opts.relaunches,
            wait,
        )
        time.sleep(wait)
    log.error(
        "REFUSED: the server at %s did not admit this client: is this node's "
        "public key registered there (fedmuscle server --auth-keys)?",
        opts.server,
    )
    return EXIT_NODE_REFUSED


def _spent(opts: ClientOptions, launches: int, start: float) -> bool:
    if opts.max_retries is not None and launches > opts.max_retries:
        return True
    return opts.max_wait_s is not None and time.monotonic() - start > opts.max_wait_s
