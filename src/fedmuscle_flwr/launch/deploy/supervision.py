"""Supervising one SuperNode: wait for it, stop a hung one, relaunch, exit codes.

What happens when the SuperNode exits is told in
:func:`fedmuscle_flwr.launch.deploy.client.run_client`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path

from fedmuscle_flwr.launch.deploy.client_options import ClientOptions
from fedmuscle_flwr.launch.deploy.processes import (
    Managed,
    process_group,
    split_address,
)
from fedmuscle_flwr.launch.deploy.supernode_log import SuperNodeLog
from fedmuscle_flwr.wire.flower_compat import SUPERNODE_CONNECTION_ERROR

log = logging.getLogger(__name__)

#: Flower's exit code (logged; the process exits 1) for "could not connect or refused"
EXIT_NODE_REFUSED = SUPERNODE_CONNECTION_ERROR
#: returned when the TLS handshake with the server failed (wrong CA or name)
EXIT_TLS_FAILED = 306
_RELAUNCH_S = 5.0
#: first wait before relaunching a SuperNode that exited on its own (doubles)
_BACKOFF_S = 2.0
_MAX_BACKOFF_S = 60.0
#: a SuperNode that ran this long was up: its exit starts a fresh relaunch count
_STABLE_S = 60.0
#: seconds a SuperNode that logged its termination may take to exit before it is
#: stopped
_EXIT_GRACE_S = 15.0


def run_once(node: Managed, output: SuperNodeLog, exit_after_run: bool = False) -> int:
    """Wait for the SuperNode to exit; stop it if it hangs after terminating.

    Flower 1.39: when a SuperNode stops itself while it is pushing a reply, its
    heartbeat thread can raise during shutdown and the process keeps retrying
    connections forever instead of exiting (observed after a server restart).
    With ``exit_after_run`` the SuperNode is stopped once the run finished, its
    last reply was sent, and the server went away or
    :data:`~fedmuscle_flwr.launch.deploy.supernode_log._FINAL_GRACE_S`
    passed (:meth:`SuperNodeLog.done`).
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


def supervise(
    opts: ClientOptions,
    cmd: list[str],
    env: dict[str, str],
    home: Path,
    current: list[SuperNodeLog],
) -> int:
    """Launch the SuperNode, relaunch it as :func:`run_client` says; its status."""
    start, launches, in_a_row = time.monotonic(), 0, 0
    start_wall = time.time()  # state written from now on belongs to this session
    while True:
        output = current[0] = SuperNodeLog(opts.server, current[0].ready)
        began = time.monotonic()
        with process_group() as procs:
            procs.append(Managed("supernode", cmd, env, home / "supernode.log", output))
            code = run_once(procs[-1], output, opts.exit_after_run)
        output.ready.clear()
        launches += 1
        if opts.exit_after_run and output.finished is not None:
            remove_finished_state(opts, start_wall)
            if opts.wait_server_exit_s > 0:
                wait_server_gone(
                    opts.server, opts.wait_server_exit_s, tls_ca=opts.tls_ca
                )
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


def wait_server_gone(
    server: str, timeout: float, poll: float = 1.0, tls_ca: Path | None = None
) -> bool:
    """Wait until nothing accepts connections at ``server`` (``HOST:PORT``).

    Returns ``False`` when the server still answers after ``timeout`` seconds. A
    name that no longer resolves (its container is gone) counts as gone. With
    ``tls_ca`` each probe completes a TLS handshake (trusting that CA), so the
    server does not report it as a failed handshake, as it must a bare TCP
    probe (it cannot tell one from a client that distrusts its certificate).
    """
    host, port = split_address(server)
    tls = _probe_context(tls_ca) if tls_ca is not None else None
    log.info("waiting up to %.0f s for the server %s to stop", timeout, server)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(poll, 5.0)) as sock:
                if tls is not None:
                    tls.wrap_socket(sock, server_hostname=host).close()
        except ssl.SSLError:
            pass  # it answered; a handshake failure is for the SuperNode to report
        except OSError:
            log.info("the server %s stopped", server)
            return True
        if time.monotonic() >= deadline:
            log.warning("the server %s still answers after %.0f s", server, timeout)
            return False
        time.sleep(poll)


def _probe_context(ca: Path) -> ssl.SSLContext:
    """A TLS client context as the SuperNode's: this CA, HTTP/2 (gRPC) offered."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    return context


def remove_finished_state(opts: ClientOptions, since: float) -> None:
    """Every run this client took part in finished: their states serve no resume.

    Only in a ``--state-dir`` of its own (the default folder may be shared).
    """
    from fedmuscle_flwr.clientapp.state import remove_runs_since

    root = opts.state_dir
    if root is None:
        return
    folders, size = remove_runs_since(root, since)
    if folders:
        log.info(
            "removed the state of the %d finished run(s) from %s (%.1f MB)",
            folders,
            root,
            size / 1e6,
        )


def _spent(opts: ClientOptions, launches: int, start: float) -> bool:
    if opts.max_retries is not None and launches > opts.max_retries:
        return True
    return opts.max_wait_s is not None and time.monotonic() - start > opts.max_wait_s
