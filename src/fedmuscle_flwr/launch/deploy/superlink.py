"""``python -m fedmuscle_flwr.launch.deploy.superlink [OPTIONS] -- ARGS``.

Flower 1.39's own ``flower-superlink`` (same ARGS, same code) that registers the
SuperNode public keys of ``--register KEYS`` in its LinkState **before** its
Fleet API accepts connections, and writes the node ids to ``--registered JSON``.

Flower's route is ``flwr supernode register`` through the SuperLink's Control
API, which only answers once the SuperLink runs, i.e. once the Fleet API already
accepts nodes: a SuperNode that connects in that window is refused
(``No SuperNode found with the given public key``), and a stock Flower 1.39
SuperNode exits when refused. Here the registration runs in the SuperLink's own
process, with the LinkState call the Control API's ``RegisterNode`` handler makes
(``state.create_node`` with the account of Flower's no-op Control authentication,
so ``flwr supernode list`` shows the nodes as registered through the CLI), in the
SuperLink's start-up between "state ready" and "Fleet API started".

The adjustment is narrow: :func:`patch_lifespan` replaces the module global
``SuperLinkLifespan`` of ``flwr.superlink.cli.flower_superlink`` by a subclass
whose ``_start_fleet_api`` registers first, only when the Flower version and the
code it relies on are the ones this was written against (:func:`patch_problem`).
Otherwise Flower runs unchanged, no ``--registered`` file is written (with a
warning), and ``fedmuscle server`` registers through the Control API as before.
``tests/unit/launch/deploy/test_superlink.py`` fails when that Flower code changes.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedmuscle_flwr.launch.deploy.processes import split_launcher_argv

log = logging.getLogger(__name__)

#: the Flower release whose SuperLink start-up this adjusts
FLWR_VERSION = "1.39.0"
#: the call in ``_run_superlink_http_api`` that reads the module global
_CREATE_APP = "create_app(lifespan_config, SuperLinkLifespan)"
#: the start-up order this relies on (state ready, then the Fleet API)
_STARTUP = ("self.state_factory.state()", "self._start_fleet_api()")
_CREATE_NODE_ARGS = ("owner_aid", "owner_name", "public_key", "heartbeat_interval")


def flower_superlink_module() -> types.ModuleType:
    """``flwr.superlink.cli.flower_superlink``, the module.

    (``from flwr.superlink.cli import flower_superlink`` gives the function of
    that name, which the package re-exports.)
    """
    return importlib.import_module("flwr.superlink.cli.flower_superlink")


def patch_problem() -> str | None:
    """Why :func:`patch_lifespan` would not apply here (None: it applies)."""
    import flwr
    from flwr.server.superlink.linkstate import LinkState

    cli = flower_superlink_module()
    if flwr.__version__ != FLWR_VERSION:
        return f"Flower {flwr.__version__} is not {FLWR_VERSION}"
    lifespan = getattr(cli, "SuperLinkLifespan", None)
    if not inspect.isclass(lifespan) or not hasattr(lifespan, "_start_fleet_api"):
        return "flower_superlink.SuperLinkLifespan._start_fleet_api is gone"
    if _CREATE_APP not in inspect.getsource(cli._run_superlink_http_api):
        return f"_run_superlink_http_api no longer calls {_CREATE_APP}"
    startup = inspect.getsource(cli.SuperLinkLifespan.startup)
    positions = [startup.find(call) for call in _STARTUP]
    if -1 in positions or positions != sorted(positions):
        return "SuperLinkLifespan.startup: no state before the Fleet API"
    params = inspect.signature(LinkState.create_node).parameters
    if any(name not in params for name in _CREATE_NODE_ARGS):
        return f"LinkState.create_node takes {list(params)}"
    return None


def public_key_bytes(line: str) -> bytes:
    """An OpenSSH public key line as the LinkState stores it (as the CLI does)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from flwr.supercore.primitives.asymmetric import (
        public_key_to_bytes,
        uses_nist_ec_curve,
    )

    key = serialization.load_ssh_public_key(line.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or not uses_nist_ec_curve(key):
        raise ValueError(f"not an EC public key on a NIST curve: {line[:40]}...")
    return public_key_to_bytes(key)


def register_keys(state: Any, lines: Sequence[str]) -> list[int]:
    """Register every key in ``state`` (a Flower LinkState); their node ids, in order.

    The same account as ``flwr supernode register`` with Flower's no-op Control
    authentication; a key already present (listed twice) keeps its node id.
    """
    from flwr.common.constant import (
        HEARTBEAT_DEFAULT_INTERVAL,
        NOOP_ACCOUNT_NAME,
        NOOP_FLWR_AID,
    )

    ids = []
    for line in lines:
        raw = public_key_bytes(line)
        try:
            node_id = state.create_node(
                owner_aid=NOOP_FLWR_AID,
                owner_name=NOOP_ACCOUNT_NAME,
                public_key=raw,
                heartbeat_interval=HEARTBEAT_DEFAULT_INTERVAL,
            )
        except ValueError:  # public key already in use
            node_id = state.get_node_id_by_public_key(raw)
        if not node_id:
            raise RuntimeError(f"the LinkState did not register {line[:40]}...")
        ids.append(int(node_id))
    return ids


def write_registered(path: Path, node_ids: Sequence[int]) -> None:
    """The node ids, in key order, as JSON (atomically: write, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(list(node_ids)))
    tmp.replace(path)


def read_registered(path: Path) -> list[int] | None:
    """The node ids :func:`write_registered` wrote; None if there is no file."""
    if not path.is_file():
        return None
    return [int(node_id) for node_id in json.loads(path.read_text())]


def patch_lifespan(lines: Sequence[str], out: Path) -> bool:
    """Register ``lines`` before the Fleet API starts; True if the patch applies."""
    cli = flower_superlink_module()

    if problem := patch_problem():
        log.warning(
            "SuperNode keys are registered after the SuperLink started: %s", problem
        )
        return False

    class RegisteringLifespan(cli.SuperLinkLifespan):  # type: ignore[name-defined,misc]
        """Flower's lifespan; the keys enter the LinkState before the Fleet API."""

        def _start_fleet_api(self) -> None:
            write_registered(out, register_keys(self.state_factory.state(), lines))
            super()._start_fleet_api()

    setattr(cli, "SuperLinkLifespan", RegisteringLifespan)  # noqa: B010 (module global)
    return True


def main(argv: Sequence[str] | None = None) -> None:
    """Parse our options, adjust, then run Flower's ``flower-superlink``."""
    ours, flower = split_launcher_argv(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fedmuscle_flwr.launch.deploy.superlink")
    parser.add_argument("--register", type=Path, help="OpenSSH public keys, one a line")
    parser.add_argument("--registered", type=Path, help="node ids out (JSON)")
    args = parser.parse_args(ours)
    # our warning only: a root handler would also print every Flower log record
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    if args.register is not None and args.registered is not None:
        lines = [ln for ln in args.register.read_text().splitlines() if ln.strip()]
        patch_lifespan(lines, args.registered)
    cli = flower_superlink_module()

    sys.argv = ["flower-superlink", *flower]
    sys.exit(cli.flower_superlink())


if __name__ == "__main__":
    main()
