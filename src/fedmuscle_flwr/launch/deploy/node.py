"""The client role: one SuperNode with this client's profile, state and data.

``flower-supernode`` (Flower 1.39, Fleet API over gRPC) gets the profile and the
state directory in ``--node-config`` and the private data folders as the env vars
the data loaders honour (``FEDMUSCLE_FASHION_MNIST_DIR`` ...); none of this ever
reaches the server.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmuscle_flwr.launch.deploy.processes import (
    Managed,
    ReadyFile,
    flower_env,
    flower_program,
    free_port,
    process_group,
    split_address,
    toml_value,
)
from fedmuscle_flwr.launch.deploy.supernode import DEFAULT_IDLE_S, DEFAULT_REPLY_S
from fedmuscle_flwr.runs.logs import RUN_FINISHED_MARK
from fedmuscle_flwr.wire.pull_backoff import DEFAULT_INITIAL_BACKOFF_S

if TYPE_CHECKING:
    from fedmuscle_flwr.launch.deploy.executor import WarmExecutor

log = logging.getLogger(__name__)

#: Flower's exit code (logged; the process exits 1) for "could not connect or refused"
EXIT_NODE_REFUSED = 305
#: returned when the TLS handshake with the server failed (wrong CA or name)
EXIT_TLS_FAILED = 306
#: what a 1.39 SuperNode (and gRPC) log when the server's certificate is not trusted
_TLS_MARKS = ("SSL/TLS handshake error", "Handshake failed", "Tls handshake failed")
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
#: what a 1.39 SuperNode logs after it pushed a reply to the SuperLink
_SENT_MARK = "Sent successfully"
#: seconds to wait for the last reply to be sent after the run finished
_FINAL_SEND_S = 60.0
#: seconds to stay online after the last reply was sent. Flower 1.39's SuperLink
#: answers the ServerApp "Node Unavailable" instead of a reply it already holds
#: once the node is offline (linkstate check_node_availability_for_in_message),
#: and a stopped SuperNode goes offline at once: so the client waits until the
#: server went away (_LOST_MARK) or this long
_FINAL_GRACE_S = 30.0
#: what a 1.39 SuperNode logs when the SuperLink no longer answers
_LOST_MARK = "Connection attempt failed"
#: a line with a timestamp: Flower's (``INFO 2026-12-02 16:08:55,905: ...``) or ours
_STAMPED = re.compile(r"^(?:[A-Z]+ \d{4}-\d\d-\d\d \d\d:\d\d|\d\d:\d\d:\d\d )")
#: what a 1.39 SuperNode logs once the SuperLink admitted it
_JOINED = re.compile(r"SuperNode ID: (\d+)")


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
        Run the ClientApp in this process, warm across messages (a SuperNode
        with ``--isolation process`` and :class:`~fedmuscle_flwr.launch.deploy.executor.
        WarmExecutor`), with the SuperNode's loop waits shortened
        (:mod:`fedmuscle_flwr.launch.deploy.supernode`); ``False``: the stock
        ``flower-supernode`` with one ``flwr-clientapp`` process per message.
    idle_s, reply_s : float
        The warm SuperNode's idle poll and reply wait (Flower's: 3 s and 0.5 s).
    pull_backoff_s : float
        The warm SuperNode's first wait when a message's object is not yet at
        the SuperLink (Flower's: 1 s; :mod:`fedmuscle_flwr.wire.pull_backoff`).
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
    """The ``flower-supernode`` command line for ``opts`` (1.39 flags).

    Warm: Flower's SuperNode through :mod:`fedmuscle_flwr.launch.deploy.supernode`, with
    ``--isolation process`` (this process executes the ClientApp tasks).
    """
    if opts.warm:
        launcher = [sys.executable, "-m", "fedmuscle_flwr.launch.deploy.supernode"]
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


class _Output:
    """Echoes the SuperNode's output (no colour codes); notices what it says.

    Refusal (305), its self-termination, its node id once admitted, and the end
    of the run (the ClientApp's mark, then the SuperNode sent the last reply).
    """

    def __init__(self, server: str = "", ready: ReadyFile | None = None) -> None:
        self.server = server
        self.ready = ready or ReadyFile(None)
        self.refused = False
        self.tls_failed = False
        self.leaving: float | None = None  # when it logged _LEAVING_MARK
        self.finished: float | None = None  # when the ClientApp logged the run's end
        self.final_sent: float | None = None  # the SuperNode sent a reply after that
        self.server_gone = False  # the SuperLink stopped answering after that

    def __call__(self, line: str) -> None:
        # one timestamp per line: Flower's own lines carry one; uvicorn's (the
        # SuperNode's Runtime API) and multi-line messages get the time of day
        stamp = "" if _STAMPED.match(line) else time.strftime("%H:%M:%S ")
        sys.stdout.write(stamp + line + "\n")  # colour codes: stripped by the pump
        sys.stdout.flush()
        self.refused |= _REFUSED_MARK in line
        self.tls_failed |= any(mark in line for mark in _TLS_MARKS)
        if self.leaving is None and _LEAVING_MARK in line:
            self.leaving = time.monotonic()
        if (joined := _JOINED.search(line)) is not None:
            log.info("joined %s as node %s", self.server, joined.group(1))
            self.ready.set(f"node {joined.group(1)}")
        if RUN_FINISHED_MARK in line:
            self.run_finished()
        elif self.finished is not None and _SENT_MARK in line:
            self.final_sent = time.monotonic()
        elif self.final_sent is not None and _LOST_MARK in line:
            self.server_gone = True

    def done(self) -> bool:
        """The run finished and the server has (or had time to take) the reply."""
        if self.finished is None:
            return False
        if self.final_sent is None:
            if time.monotonic() - self.finished > _FINAL_SEND_S:
                log.warning("the last reply was not seen sent; stopping anyway")
                return True
            return False
        return self.server_gone or time.monotonic() - self.final_sent > _FINAL_GRACE_S

    def run_finished(self) -> None:
        """The ClientApp built its reply to the run's last message."""
        self.finished = time.monotonic()


def _run_once(node: Managed, output: _Output, exit_after_run: bool = False) -> int:
    """Wait for the SuperNode to exit; stop it if it hangs after terminating.

    Flower 1.39: when a SuperNode stops itself while it is pushing a reply, its
    heartbeat thread can raise during shutdown and the process keeps retrying
    connections forever instead of exiting (observed after a server restart).
    With ``exit_after_run`` the SuperNode is stopped once the run finished, its
    last reply was sent, and the server went away or :data:`_FINAL_GRACE_S`
    passed (:meth:`_Output.done`).
    """
    while (code := node.poll()) is None:
        if exit_after_run and output.done():
            node.stop()
            return 0
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

    * with status 1, logging an SSL/TLS handshake error and "Exit Code: 305",
      when the server's certificate is not trusted (wrong ``--tls-ca``, or the
      address is not among the certificate's names): not relaunched,
      :data:`EXIT_TLS_FAILED` is returned;
    * with status 1, logging "Exit Code: 305", when the SuperLink refuses its
      key, e.g. because it connected before the server registered it: relaunched
      within the connection budget (``max_retries`` launches, ``max_wait_s`` s);
      :data:`EXIT_NODE_REFUSED` is returned if it was refused in the end;
    * "gracefully" when a restarted SuperLink does not know its node id (the
      server crashed and was resumed): relaunched up to ``relaunches`` times in
      a row with doubling waits, so that the node rejoins under a new id (its
      state is keyed by profile, not by node id). One that logs its termination
      but does not exit within 15 s is stopped and relaunched likewise.

    With ``opts.exit_after_run``, returns 0 once the run finished (the final
    round's evaluation was answered and sent). Ctrl-C or SIGTERM to this
    process stops the SuperNode and is not relaunched.
    """
    if opts.tls_ca is None:
        log.warning("--insecure: TLS is OFF; this client talks plaintext to the server")
    home = home or Path(tempfile.mkdtemp(prefix="fedmuscle-client-"))
    data = data_env(opts.data_dir) if opts.data_dir else {}
    env = flower_env(home, data)
    port = opts.runtime_port or free_port()
    cmd = supernode_command(opts, port)
    log.info("client %s -> %s (Flower home %s)", opts.profile, opts.server, home)
    ready = ReadyFile(opts.ready_file)
    current = [_Output(opts.server, ready)]
    executor = (
        _start_executor(f"127.0.0.1:{port}", data, current, opts.pull_backoff_s)
        if opts.warm
        else None
    )
    try:
        try:
            with ready:
                return _supervise(opts, cmd, env, home, current)
        finally:
            if executor is not None:
                executor.stop()
    except KeyboardInterrupt:
        # also while the executor stops after _supervise returned: the outcome stands
        if opts.exit_after_run and current[0].finished is not None:
            # e.g. Compose stopping the services once the server exited
            log.info("stopped after the run finished: this client's part is done")
            return 0
        raise


def _start_executor(
    address: str, data: dict[str, str], current: list[_Output], pull_backoff_s: float
) -> WarmExecutor:
    """The warm executor for the SuperNode's Runtime API at ``address``."""
    from fedmuscle_flwr.clientapp import app as client_app
    from fedmuscle_flwr.launch.deploy.executor import WarmExecutor

    os.environ.update(data)  # the ClientApp runs here: data loaders read these
    client_app.keep_warm()

    def on_reply(status: dict[str, Any], seconds: float) -> None:
        if not status:
            return
        log.info(
            "round %s %s: %s (%.1f s)",
            status["round"],
            status["phase"],
            status["summary"] or "-",
            seconds,
        )
        if status["finished"]:
            current[0].run_finished()

    executor = WarmExecutor(
        address, client_app.app, on_reply=on_reply, pull_backoff_s=pull_backoff_s
    )
    executor.start()
    return executor


def _supervise(
    opts: ClientOptions,
    cmd: list[str],
    env: dict[str, str],
    home: Path,
    current: list[_Output],
) -> int:
    """Launch the SuperNode, relaunch it as :func:`run_client` says; its status."""
    start, launches, in_a_row = time.monotonic(), 0, 0
    while True:
        output = current[0] = _Output(opts.server, current[0].ready)
        began = time.monotonic()
        with process_group() as procs:
            procs.append(Managed("supernode", cmd, env, home / "supernode.log", output))
            code = _run_once(procs[-1], output, opts.exit_after_run)
        output.ready.clear()
        launches += 1
        if opts.exit_after_run and output.finished is not None:
            if opts.wait_server_exit_s > 0:
                wait_server_gone(opts.server, opts.wait_server_exit_s)
            log.info("run finished: this client's part is done; exiting")
            return 0
        if output.tls_failed:
            log.error(
                "TLS FAILED: the handshake with %s failed: its certificate is not "
                "signed by the CA in --tls-ca %s, or does not name this address "
                "(fedmuscle certs --host); not retried",
                opts.server,
                opts.tls_ca,
            )
            return EXIT_TLS_FAILED
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
            "the SuperNode exited on its own (status %s, after %.0f s): the server "
            "stopped or crashed (a restarted server does not know this node's id); "
            "relaunch %d/%d in %.0f s",
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


def wait_server_gone(server: str, timeout: float, poll: float = 1.0) -> bool:
    """Wait until nothing accepts TCP connections at ``server`` (``HOST:PORT``).

    Returns ``False`` when the server still answers after ``timeout`` seconds. A
    name that no longer resolves (its container is gone) counts as gone.
    """
    host, port = split_address(server)
    log.info("waiting up to %.0f s for the server %s to stop", timeout, server)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(poll, 5.0)):
                pass
        except OSError:
            log.info("the server %s stopped", server)
            return True
        if time.monotonic() >= deadline:
            log.warning("the server %s still answers after %.0f s", server, timeout)
            return False
        time.sleep(poll)


def _spent(opts: ClientOptions, launches: int, start: float) -> bool:
    if opts.max_retries is not None and launches > opts.max_retries:
        return True
    return opts.max_wait_s is not None and time.monotonic() - start > opts.max_wait_s
