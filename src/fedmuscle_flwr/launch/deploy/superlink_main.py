"""``python -m fedmuscle_flwr.launch.deploy.superlink_main [OPTIONS] -- ARGS``.

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

The private part, replacing Flower's start-up class, is the
``register-before-fleet`` adjustment of :mod:`fedmuscle_flwr.wire.flower_compat`
(version pin, source check, off switch ``FEDMUSCLE_FLOWER_ADJUSTMENTS_OFF``, the
measurement that keeps it). Where it does not apply, Flower runs unchanged, no
``--registered`` file is written (with a warning), and ``fedmuscle server``
registers through the Control API (:mod:`.superlink_process`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedmuscle_flwr.launch.deploy.processes import split_launcher_argv
from fedmuscle_flwr.wire.flower_compat import before_fleet_api, flower_superlink_module


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


def register_at_start(lines: Sequence[str], out: Path) -> bool:
    """Register ``lines`` before the Fleet API starts; True if that applies."""

    def register(state: Any) -> None:
        write_registered(out, register_keys(state, lines))

    return before_fleet_api(register)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse our options, adjust, then run Flower's ``flower-superlink``."""
    ours, flower = split_launcher_argv(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fedmuscle_flwr.launch.deploy.superlink_main")
    parser.add_argument("--register", type=Path, help="OpenSSH public keys, one a line")
    parser.add_argument("--registered", type=Path, help="node ids out (JSON)")
    args = parser.parse_args(ours)
    # our warning only: a root handler would also print every Flower log record
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    ours_only = logging.getLogger("fedmuscle_flwr")
    ours_only.addHandler(handler)
    ours_only.propagate = False
    if args.register is not None and args.registered is not None:
        lines = [ln for ln in args.register.read_text().splitlines() if ln.strip()]
        register_at_start(lines, args.registered)
    cli = flower_superlink_module()

    sys.argv = ["flower-superlink", *flower]
    sys.exit(cli.flower_superlink())


if __name__ == "__main__":
    main()
