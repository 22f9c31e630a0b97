"""``fedmuscle server | client | certs``: deployment across machines (Flower 1.39).

Register on the main app with ``cli_deploy.register(cli)``. The commands only
parse and validate; :mod:`fedmuscle_flwr.launch.deploy.server` and
:mod:`fedmuscle_flwr.launch.deploy.client` run Flower's processes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from fedmuscle_flwr.cli.common import build_run_config, parse_set, setup_logging
from fedmuscle_flwr.wire.flower_compat import (
    DEFAULT_IDLE_S,
    DEFAULT_INITIAL_BACKOFF_S,
    DEFAULT_REPLY_S,
    PULL_BACKOFF,
    switched_off,
)

log = logging.getLogger("fedmuscle_flwr")

_TLS_HELP = "folder with ca.crt, server.pem, server.key (fedmuscle certs)"
_INSECURE_HELP = "plaintext gRPC/HTTP; only for trusted networks"
_READY_HELP = "file that exists while this node is ready (container healthchecks): "


def _setup(verbose: bool) -> None:
    setup_logging(verbose)
    try:  # checked here, not first in a process Flower starts
        switched_off(PULL_BACKOFF)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    return parse_set(pairs or [])


def _fail(message: str, code: int = 2) -> typer.Exit:
    log.error("%s", message)
    return typer.Exit(code)


def server(
    preset: Annotated[
        str, typer.Option(help="server/<preset>.toml or a path")
    ] = "default",
    config: Annotated[
        Path | None, typer.Option(help="TOML overriding the preset")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="dotted key=value, repeatable")
    ] = None,
    address: Annotated[
        str, typer.Option(help="Fleet API (gRPC) bind address, where clients connect")
    ] = "0.0.0.0:9092",
    control_address: Annotated[
        str, typer.Option(help="Control/ServerAppIo HTTP(S) bind address")
    ] = "127.0.0.1:8000",
    tls_dir: Annotated[Path | None, typer.Option(help=_TLS_HELP)] = None,
    insecure: Annotated[bool, typer.Option(help=_INSECURE_HELP)] = False,
    auth_keys: Annotated[
        Path | None,
        typer.Option(
            help="authorised node public keys: a key list or a folder of .pub"
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="parent folder of the run")] = Path(
        "runs"
    ),
    workdir: Annotated[
        Path | None,
        typer.Option(help="Flower home + logs (default: <run folder>/server)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="max run duration, seconds")] = 86400.0,
    resume: Annotated[
        Path | None,
        typer.Option(
            envvar="FEDMUSCLE_RESUME",
            help="continue the run (with --compare: the session) in this folder "
            "(same options)",
        ),
    ] = None,
    compare: Annotated[
        str,
        typer.Option(
            help="comma list of algorithms to run after the main one on the same "
            "clients, e.g. 'local': one report with the Δ column (fedmuscle run's)"
        ),
    ] = "",
    ready_file: Annotated[
        Path | None,
        typer.Option(help=_READY_HELP + "SuperLink up, keys registered, run submitted"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the SuperLink, run the federation through `flwr run`, write results.

    ``--compare local`` runs the Local baseline after the main run, with the same
    connected clients, in one session folder (runs/<stamp>-<preset>/<algorithm>/)
    whose report.md has the Δ column and plot, as ``fedmuscle run`` writes it.
    ``--resume FOLDER`` continues an interrupted run (its folder, e.g.
    runs/20261130-010203-fedmuscle) or, with --compare, session (finished runs
    are kept) from the last checkpoint; the preset, config and --set options
    must give the same configuration as before.
    """
    _setup(verbose)
    from fedmuscle_flwr.config.schema import ConfigError
    from fedmuscle_flwr.launch.deploy.server import (
        DeploymentError,
        ServerOptions,
        name_deployed_run,
        run_server,
    )
    from fedmuscle_flwr.launch.deploy.session import compare_session
    from fedmuscle_flwr.method.algorithms import check_algorithm
    from fedmuscle_flwr.runs.checkpoint import check_resumable

    if (tls_dir is None) == (not insecure):
        raise _fail("give exactly one of --tls-dir DIR (default choice) or --insecure")
    if auth_keys is not None and tls_dir is None:
        raise _fail("--auth-keys needs TLS (Flower refuses node auth without it)")
    try:
        overrides = {"output-dir": str(output), **_overrides(set_)}
        baselines = [a.strip() for a in compare.split(",") if a.strip()]
        if baselines:
            session, runs = compare_session(
                lambda o: build_run_config(preset, config, {**overrides, **o}),
                baselines,
                resume
                or output / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(preset).stem}",
                resume is not None,
            )
        else:
            session = None
            if resume is not None:
                overrides |= _resume_overrides(resume)
            runs = [build_run_config(preset, config, overrides)]
            if resume is not None:
                check_resumable(runs[0], resume)
        for run in runs:
            check_algorithm(run)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    opts = ServerOptions(
        fleet_address=address,
        control_address=control_address,
        tls_dir=tls_dir,
        auth_keys=auth_keys,
        workdir=workdir,
        timeout_s=timeout,
        ready_file=ready_file,
    )
    from fedmuscle_flwr.runs.metrics import EXIT_INCOMPLETE, IncompleteRun

    runs = [name_deployed_run(run) for run in runs]
    folder = session or Path(runs[0].output_dir) / runs[0].run_name
    try:
        run_dir = run_server(runs, opts, session)
    except DeploymentError as exc:
        raise _fail(str(exc), 1) from None
    except IncompleteRun as exc:
        raise _fail(str(exc), EXIT_INCOMPLETE) from None
    except KeyboardInterrupt:
        _interrupted(
            f"interrupted; all server processes stopped. {folder} continues with "
            f"the same options and --resume {folder} (compose: FEDMUSCLE_RESUME="
            f"{folder}); or start afresh without it"
        )
    _ignore_stop_signals()  # the outcome is decided and every process stopped
    log.info("results: %s (report.md and plots/ inside)", run_dir)


def _interrupted(message: str) -> NoReturn:
    """Exit 130 (SIGINT's status) at once, after our processes were stopped.

    ``os._exit``: no interpreter teardown, which aborted (134, "terminate called
    without an active exception") while a ClientApp thread was still in torch.
    """
    log.warning("%s", message)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _ignore_stop_signals() -> None:
    """Ignore SIGINT/SIGTERM from now on: the exit status is decided.

    Compose stops every service once one container exits (``--exit-code-from``); a
    server or client that already finished must not turn that into status 130.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _resume_overrides(run_dir: Path) -> dict[str, Any]:
    """Where a resumed run lives: its folder's parent and name."""
    from fedmuscle_flwr.runs.checkpoint import ResumeError

    if not run_dir.is_dir():
        raise ResumeError(f"--resume {run_dir}: no such run folder")
    run_dir = run_dir.resolve()
    return {
        "output-dir": str(run_dir.parent),
        "run-name": run_dir.name,
        "checkpoint.resume": True,
    }


def client(
    profile: Annotated[str, typer.Option(help="clients/NAME.toml, a path, or NAME")],
    server: Annotated[
        str, typer.Option(help="server's Fleet API address HOST:PORT")
    ] = "",
    policy: Annotated[
        Path | None,
        typer.Option(help="client policy TOML ([policy]); default: the profile's"),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(help="prune old runs' state per the policy, then exit"),
    ] = False,
    trust_server_code: Annotated[
        bool,
        typer.Option(
            help="with --no-warm: accept the server's app bundle running here"
        ),
    ] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help="private data root: <dir>/<dataset-key>/...")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="where model/optimiser state persists")
    ] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA certificate (ca.crt)")] = None,
    insecure: Annotated[bool, typer.Option(help=_INSECURE_HELP)] = False,
    auth_key: Annotated[
        Path | None, typer.Option(help="this node's private key (fedmuscle certs)")
    ] = None,
    max_retries: Annotated[
        int | None, typer.Option(help="connection attempts (default: forever)")
    ] = None,
    max_wait: Annotated[
        float | None, typer.Option(help="seconds of retrying (default: forever)")
    ] = None,
    runtime_port: Annotated[
        int | None, typer.Option(help="local ClientAppIo port (default: a free one)")
    ] = None,
    relaunch: Annotated[
        int,
        typer.Option(
            min=0,
            help="relaunches in a row of a SuperNode that exited on its own "
            "(e.g. the server was restarted); 0 = exit with it",
        ),
    ] = 5,
    exit_after_run: Annotated[
        bool,
        typer.Option(
            help="exit 0 once the run finished (this client answered the final "
            "round's evaluation) instead of waiting for the next run",
        ),
    ] = False,
    wait_server_exit: Annotated[
        float,
        typer.Option(
            min=0,
            help="with --exit-after-run: after the run, wait up to this many seconds "
            "for the server to stop answering before exiting (docker-compose "
            "--exit-code-from: the server's exit, not a client's, ends the demo)",
        ),
    ] = 0.0,
    warm: Annotated[
        bool,
        typer.Option(
            help="run the ClientApp in this process, warm across messages; "
            "--no-warm: Flower's stock SuperNode, one ClientApp process per message",
        ),
    ] = True,
    supernode_idle_s: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="warm: the SuperNode's wait after a pull without message "
            "(Flower's: 3 s)",
        ),
    ] = DEFAULT_IDLE_S,
    supernode_reply_s: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="warm: the SuperNode's check interval for the ClientApp's reply "
            "(Flower's: 0.5 s)",
        ),
    ] = DEFAULT_REPLY_S,
    supernode_pull_backoff_s: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="warm: the SuperNode's first wait when a message's object is not "
            "yet at the server (Flower's: 1 s)",
        ),
    ] = DEFAULT_INITIAL_BACKOFF_S,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="profile override key=value")
    ] = None,
    ready_file: Annotated[
        Path | None, typer.Option(help=_READY_HELP + "registered at the server")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Join a federation: Flower's SuperNode with this client's profile and data.

    Exit status: 0 when the SuperNode ended cleanly or, with --exit-after-run,
    the run finished; 3 when the server refused this node (key not
    registered), 4 when the TLS handshake failed (the server's certificate is
    not signed by --tls-ca, or does not name the address), 1 on other
    failures, 130 on Ctrl-C.
    """
    _setup(verbose)
    from fedmuscle_flwr.cli import client_policy as cp
    from fedmuscle_flwr.config.files import load_profile
    from fedmuscle_flwr.config.schema import ConfigError
    from fedmuscle_flwr.launch.deploy.client import (
        EXIT_NODE_REFUSED,
        EXIT_TLS_FAILED,
        ClientOptions,
        run_client,
    )
    from fedmuscle_flwr.launch.preflight import check_profile

    try:
        overrides = _overrides(set_)
        checked = load_profile(profile, overrides)  # fail here, not in the ClientApp
        rules = cp.resolve_policy(checked, policy)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if prune:
        cp.prune_now(rules, state_dir)
        raise typer.Exit(0)
    if not server:
        raise _fail("--server HOST:PORT is required (except with --prune)")
    if not cp.stock_allowed(warm, trust_server_code):
        raise _fail(cp.NO_WARM_REFUSED)
    if (tls_ca is None) == (not insecure):
        raise _fail("give exactly one of --tls-ca FILE (default choice) or --insecure")
    if auth_key is not None and tls_ca is None:
        raise _fail("--auth-key needs TLS (--tls-ca)")
    try:
        check_profile(checked, f"profile {checked.name!r}")  # task, dataset, model
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    log.info(
        "profile %s: %s / %s", checked.name, checked.model.backbone, checked.task.kind
    )
    log.info("policy: %s", rules.describe())
    opts = ClientOptions(
        server=server,
        profile=profile,
        data_dir=data_dir,
        state_dir=state_dir,
        tls_ca=tls_ca,
        auth_key=auth_key,
        max_retries=max_retries,
        max_wait_s=max_wait,
        runtime_port=runtime_port,
        overrides=overrides,
        policy=policy,
        relaunches=relaunch,
        exit_after_run=exit_after_run,
        wait_server_exit_s=wait_server_exit,
        warm=warm,
        idle_s=supernode_idle_s,
        reply_s=supernode_reply_s,
        pull_backoff_s=supernode_pull_backoff_s,
        ready_file=ready_file,
    )
    try:
        code = run_client(opts)
    except KeyboardInterrupt:
        _interrupted("interrupted; the SuperNode stopped")
    _ignore_stop_signals()  # the outcome is decided and the SuperNode stopped
    if code == EXIT_NODE_REFUSED:
        raise typer.Exit(3)  # refused by the server (not admitted)
    if code == EXIT_TLS_FAILED:
        raise typer.Exit(4)  # the server's certificate is not trusted
    if code not in (0, -2, 130):
        raise typer.Exit(1)


def certs(
    out: Annotated[Path, typer.Option(help="output folder")],
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="server DNS name or IP for the SANs, repeatable"),
    ] = None,
    nodes: Annotated[int, typer.Option(help="SuperNode key pairs to create")] = 0,
    days: Annotated[int, typer.Option(help="certificate validity")] = 365,
    add_nodes: Annotated[
        int,
        typer.Option(help="add K node keys to the existing folder (CA kept)"),
    ] = 0,
    force: Annotated[
        bool, typer.Option(help="replace an existing CA (deployed ca.crt stop working)")
    ] = False,
) -> None:
    """Demo CA, server certificate (SANs) and SuperNode ECDSA keys."""
    _setup(False)
    from fedmuscle_flwr.launch.deploy import certs as c

    try:
        if add_nodes:
            if not (out / c.CA_CERT).is_file():
                raise c.CertsError(f"--add-nodes: {out / c.CA_CERT} does not exist")
            bundle = c.add_nodes(out, add_nodes)
        else:
            bundle = c.generate(out, host or [], nodes=nodes, days=days, force=force)
    except c.CertsError as exc:
        raise _fail(str(exc)) from None
    log.info(
        "server:  fedmuscle server --tls-dir %s%s",
        out,
        f" --auth-keys {bundle.key_list}" if bundle.node_keys else "",
    )
    for key in bundle.node_keys:
        log.info(
            "client:  fedmuscle client --tls-ca %s --auth-key %s ...", bundle.ca, key
        )


def register(cli: typer.Typer) -> None:
    """Add the ``server``, ``client`` and ``certs`` commands to ``cli``."""
    cli.command()(server)
    cli.command()(client)
    cli.command()(certs)
