"""The server registers its SuperNode keys before the Fleet API accepts nodes.

Real processes (Flower 1.39): the server's SuperLink (``start_superlink``, TLS +
``--auth-keys``) and two stock ``flower-supernode`` processes started at the same
moment as it, so that they connect as soon as the Fleet API listens. Flower's
stock SuperNode exits when it is refused, so the registered one still running,
activated, is the proof that it was never refused; the unregistered one is
refused, and the server says so (and never "not yet registered").
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fedmuscle_flwr.launch.deploy.certs import generate
from fedmuscle_flwr.launch.deploy.control import CONNECTION, flwr_json
from fedmuscle_flwr.launch.deploy.processes import (
    flower_env,
    flower_program,
    free_port,
    process_group,
)
from fedmuscle_flwr.launch.deploy.superlink_process import (
    REGISTERED_IDS,
    ServerOptions,
    start_superlink,
)
from fedmuscle_flwr.wire.flower_compat import (
    SUPERLINK_UNKNOWN_KEY,
    SUPERNODE_JOINED,
    SUPERNODE_REFUSED,
)

pytestmark = [pytest.mark.integration]


def fingerprint(pub: Path) -> str:
    raw = base64.b64decode(pub.read_text().split()[1])
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode()
    return "SHA256:" + digest.rstrip("=")


def stock_supernode(tmp: Path, fleet: str, certs: Path, i: int) -> subprocess.Popen:
    log = (tmp / f"node-{i}.log").open("w")
    cmd = [
        flower_program("flower-supernode"), "--superlink", fleet,
        "--isolation", "subprocess", "--port", str(free_port()),
        "--root-certificates", str(certs / "ca.crt"),
        "--auth-supernode-private-key", str(certs / "nodes" / f"node-{i}"),
    ]  # fmt: skip
    env = flower_env(tmp / f"home-{i}")
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def online_nodes(env: dict[str, str]) -> set[int]:
    """The node ids the SuperLink counts online (``flwr supernode list``)."""
    nodes = flwr_json(["supernode", "list", CONNECTION], env)["nodes"]
    return {int(n["node-id"]) for n in nodes if n["status"] == "online"}


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_registered_key_is_never_refused_unregistered_is(tmp_path: Path, caplog):
    # Prepare: node-1 is in --auth-keys, node-2 is not
    certs = tmp_path / "certs"
    generate(certs, ["127.0.0.1"], nodes=2)
    keys = tmp_path / "keys.txt"
    keys.write_text((certs / "nodes" / "node-1.pub").read_text())
    fleet = f"127.0.0.1:{free_port()}"
    opts = ServerOptions(
        fleet_address=fleet,
        control_address=f"127.0.0.1:{free_port()}",
        tls_dir=certs,
        auth_keys=keys,
    )
    workdir = tmp_path / "server"
    env = flower_env(workdir / "flwr-home")
    nodes = []
    try:
        with (
            caplog.at_level(logging.INFO, logger="fedmuscle_flwr"),
            process_group() as procs,
        ):
            # Execute: both SuperNodes start with the SuperLink, retrying until it
            # listens, so they connect the moment its Fleet API accepts nodes
            nodes = [stock_supernode(tmp_path, fleet, certs, i) for i in (1, 2)]
            link, registered = start_superlink(opts, workdir, env, procs)
            node_log = tmp_path / "node-1.log"
            joined = wait_for(lambda: "SuperNode ID" in node_log.read_text(), 120)
            refused = wait_for(lambda: nodes[1].poll() is not None, 120)
            # the SuperLink counts node-1 online: it took node-1's heartbeat
            online = wait_for(lambda: set(registered) <= online_nodes(env), 120)
            link_log = link.log_path.read_text() if link.log_path else ""
            alive = nodes[0].poll() is None
        # Assert: registered before the Fleet API started, by the SuperLink itself
        assert (workdir / REGISTERED_IDS).is_file()
        assert list(registered.values()) == ["node-1"]
        assert "before the Fleet API started" in caplog.text
        assert "through the Control API" not in caplog.text
        # Assert: node-1 joined at once with its registered node id, never refused
        assert joined and online and alive, node_log.read_text()[-2000:]
        ids = re.findall(r"SuperNode ID: (\d+)", node_log.read_text())
        assert [int(i) for i in ids] == list(registered), ids
        assert "not yet registered" not in caplog.text
        refusals = [m for r in caplog.records if "REFUSED" in (m := r.getMessage())]
        # Assert: node-2 was refused, and only node-2's key is named
        assert refused and nodes[1].returncode != 0
        # one refusal, one line: the SuperLink's log holds each Flower line once
        assert len(refusals) == 1, (refusals, link_log[-3000:])
        assert all(fingerprint(certs / "nodes" / "node-2.pub") in r for r in refusals)
        # Assert: the Flower lines the launch code steers by, as real Flower
        # processes print them (wire/flower_compat.py)
        assert SUPERNODE_JOINED in node_log.read_text()
        assert SUPERNODE_REFUSED in (tmp_path / "node-2.log").read_text()
        assert SUPERLINK_UNKNOWN_KEY in link_log
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait(10)
