"""The client role: one SuperNode with this client's profile, state and data.

:func:`run_client` starts Flower's SuperNode (:mod:`.client_options` builds its
command line), with the FedMuscle ClientApp resident in this process
(:mod:`.resident_clientapp`), reads what the SuperNode says
(:mod:`.supernode_log`) and relaunches it as needed (:mod:`.supervision`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmuscle_flwr.launch.deploy.client_options import (
    ClientOptions,
    data_env,
    supernode_command,
)
from fedmuscle_flwr.launch.deploy.processes import ReadyFile, flower_env, free_port
from fedmuscle_flwr.launch.deploy.supernode_log import SuperNodeLog
from fedmuscle_flwr.launch.deploy.supervision import (
    EXIT_NODE_REFUSED,
    EXIT_TLS_FAILED,
    remove_finished_state,
    supervise,
)

if TYPE_CHECKING:
    from fedmuscle_flwr.launch.deploy.resident_clientapp import ResidentClientApp

log = logging.getLogger(__name__)
#: seconds a ClientApp task in progress may take to finish when the client stops
_TASK_STOP_S = 5.0

__all__ = [
    "EXIT_NODE_REFUSED",
    "EXIT_TLS_FAILED",
    "ClientOptions",
    "run_client",
    "supernode_command",
]


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
        log.info(  # the operator's choice: no warning (Flower's own goes to DEBUG)
            "TLS is OFF (--insecure): this client talks plaintext to the server; to "
            "turn it on, give --tls-ca and --auth-key (fedmuscle certs makes them; "
            "compose: docker/with-tls.yml)"
        )
    home = home or Path(tempfile.mkdtemp(prefix="fedmuscle-client-"))
    data = data_env(opts.data_dir) if opts.data_dir else {}
    env = flower_env(home, data)
    port = opts.runtime_port or free_port()
    cmd = supernode_command(opts, port)
    log.info("client %s -> %s (Flower home %s)", opts.profile, opts.server, home)
    ready = ReadyFile(opts.ready_file)
    current = [SuperNodeLog(opts.server, ready)]
    resident = (
        start_resident_clientapp(f"127.0.0.1:{port}", data, current, opts)
        if opts.warm
        else None
    )
    started = time.time()  # state written from now on belongs to this session
    wait_task = _TASK_STOP_S  # a ClientApp task in progress may finish first
    try:
        try:
            with ready:
                return supervise(opts, cmd, env, home, current)
        except KeyboardInterrupt:
            wait_task = 0.5  # Ctrl-C: this process exits; the SuperNode is stopped
            raise
        finally:
            if resident is not None:
                resident.stop(wait_task)
    except KeyboardInterrupt:
        # also while the resident ClientApp stops after supervise returned:
        # the outcome stands
        if opts.exit_after_run and current[0].finished is not None:
            # e.g. Compose stopping the services once the server exited
            remove_finished_state(opts, started)
            log.info("stopped after the run finished: this client's part is done")
            return 0
        raise


def start_resident_clientapp(
    address: str,
    data: dict[str, str],
    current: list[SuperNodeLog],
    opts: ClientOptions,
) -> ResidentClientApp:
    """The resident ClientApp for the SuperNode's Runtime API at ``address``."""
    from fedmuscle_flwr.clientapp import app as client_app
    from fedmuscle_flwr.launch.deploy.resident_clientapp import ResidentClientApp

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

    resident = ResidentClientApp(
        address, client_app.app, on_reply=on_reply, pull_backoff_s=opts.pull_backoff_s
    )
    resident.start()
    return resident
