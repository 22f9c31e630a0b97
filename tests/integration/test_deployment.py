"""Real deployments: ``fedmuscle server`` + ``fedmuscle client`` processes (Flower 1.39).

* loopback: TLS + SuperNode auth, 3 heterogeneous clients, 3 rounds to completion: two
  warm ``fedmuscle client --exit-after-run`` (each builds its model once and exits 0
  after the run; one started before the server retries and joins) and a stock
  ``flower-supernode`` (one ``flwr-clientapp`` per message) started with the server
  (it exits if refused once: the keys are registered before the Fleet API opens),
  joining with its node config; an unregistered client is refused (exit 3) and the
  server names only its key, never "not yet registered"; a client with another CA
  fails its TLS handshake (exit 4, naming the CA file) and the server logs that
  failed handshake with the client's address; nothing is left running afterwards;
* Ctrl-C: SIGINT to the server and to a client stops every child process;
* multi-host: the server and 3 clients in their own network namespaces (veth +
  bridge, 10.77.x addresses), gRPC with TLS, to completion (root only).

Every process runs in its own session and is killed by process group at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedmuscle_flwr.launch.deploy.certs import generate
from fedmuscle_flwr.launch.deploy.processes import free_port
from fedmuscle_flwr.wire.flower_compat import (
    SUPERNODE_LOST,
    SUPERNODE_SENT,
    SUPERNODE_TLS_FAILED,
)

pytestmark = [pytest.mark.integration]

#: runs the main CLI (the ``fedmuscle`` console script may not be on PATH)
LAUNCH = "from fedmuscle_flwr.cli import main\nmain()\n"
FM = [sys.executable, "-c", LAUNCH]
TINY = ["--set", "data.max-train=160", "--set", "data.max-test=200"]
PROFILES = ["fmnist-cnn", "fmnist-vit", "mosaic-mlp"]
#: the client's one line while its SuperNode retries (launch/deploy/supernode_log.py)
RETRYING = "does not answer; retrying"
RUN_TIMEOUT_S = 900  # each message starts a ClientApp process (torch import)


class Procs:
    """Started processes (own sessions), their logs, and a kill-all."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, {}

    def start(self, name: str, args: list[str], prefix: list[str] | None = None,
              program: list[str] = FM, **env_extra: str):  # fmt: skip
        log = (self.tmp / f"{name}.log").open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **env_extra}
        proc = subprocess.Popen(
            [*(prefix or []), *program, *args], stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, cwd=self.tmp,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def kill_all(self) -> None:
        for sig in (signal.SIGINT, signal.SIGKILL):
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
            for proc in self.procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(20 if sig == signal.SIGINT else 5)


def processes_mentioning(token: str) -> list[str]:
    """Command lines of live processes that contain ``token`` (e.g. a unique port)."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (cmdline.parent / "stat").read_text()
            if (
                token in text
                and ") Z" not in stat
                and str(os.getpid()) != cmdline.parent.name
            ):
                out.append(text)
    return out


def wait_for_line(procs: Procs, name: str, text: str, timeout: float = 120) -> None:
    """Wait until process ``name`` logged ``text`` (fail with its log if not)."""
    deadline = time.monotonic() + timeout
    while text not in procs.log(name):
        assert time.monotonic() < deadline, procs.log(name)[-3000:]
        time.sleep(0.2)


def wait_gone(token: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(token)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    generate(out, ["10.77.0.1"], nodes=4)  # node-4 stays unregistered
    lines = (out / "authorized-nodes.txt").read_text().splitlines()
    (out / "keys-3.txt").write_text("\n".join(lines[:3]) + "\n")
    generate(out / "other", ["127.0.0.1"])  # another CA (wrong for this server)
    return out


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def server_args(tmp: Path, fleet: str, control: str, *extra: str) -> list[str]:
    return ["server", "--preset", "tiny", "--address", fleet, "--control-address",
            control, "--output", str(tmp / "runs"),
            "--timeout", str(RUN_TIMEOUT_S), *extra]  # fmt: skip


def client_args(tmp: Path, fleet: str, i: int, profile: str, *extra: str) -> list[str]:
    return ["client", "--server", fleet, "--profile", profile,
            "--state-dir", str(tmp / f"state-{i}"), *TINY, *extra]  # fmt: skip


def assert_completed(tmp: Path, rounds: int = 3) -> None:
    run_dirs = list((tmp / "runs").iterdir())
    assert len(run_dirs) == 1, run_dirs
    rows = [
        json.loads(r) for r in (run_dirs[0] / "metrics.jsonl").read_text().splitlines()
    ]
    server_rows = [r for r in rows if r["client"] == "*"]
    assert [r["round"] for r in server_rows] == [0, rounds]  # eval.every = rounds
    assert all(r["clients"] == 3 for r in server_rows)
    assert server_rows[-1]["probe-positive-sim"] > server_rows[0]["probe-positive-sim"]
    assert {r["client"] for r in rows} >= set(PROFILES)
    # the server's work folder and the report lie in the run folder
    assert (run_dirs[0] / "server" / "logs" / "superlink.log").is_file()
    report = (run_dirs[0] / "report.md").read_text()  # as `fedmuscle report` writes
    assert all(f"| {name} |" in report for name in PROFILES), report
    assert (run_dirs[0] / "plots" / "metric-per-round.png").is_file()


def fingerprint(pub: Path) -> str:
    """The SHA256 fingerprint the server logs for an OpenSSH public key file."""
    import base64
    import hashlib

    raw = base64.b64decode(pub.read_text().split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip(
        "="
    )


def stock_supernode(tmp: Path, fleet: str, certs: Path, i: int, profile: str):
    """Flower's own ``flower-supernode`` with FedMuscle's node config (README)."""
    node_config = (
        f'profile="{profile}" state-dir="{tmp / f"state-{i}"}" '
        "data.max-train=160 data.max-test=200"
    )
    return [
        "--superlink", fleet, "--isolation", "subprocess", "--port", str(free_port()),
        "--root-certificates", str(certs / "ca.crt"),
        "--auth-supernode-private-key", str(certs / "nodes" / f"node-{i}"),
        "--node-config", node_config,
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_loopback_tls_auth_three_clients(tmp_path: Path, certs: Path, procs: Procs):
    # Prepare: free ports; client 1 starts BEFORE the server (must retry and join)
    port = free_port()
    fleet, control = f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"
    ca = ["--tls-ca", str(certs / "ca.crt")]
    after_run = [*ca, "--exit-after-run"]
    procs.start("client-1", client_args(tmp_path, fleet, 1, PROFILES[0], *after_run,
                "--auth-key", str(certs / "nodes" / "node-1")))  # fmt: skip
    # nothing listens yet: its SuperNode retries; Flower's SUPERNODE_LOST line
    # (recognised in the real output) becomes one INFO line of ours, the rest DEBUG
    wait_for_line(procs, "client-1", RETRYING)
    # Execute: the server, a warm client, a client with the wrong CA
    server = procs.start("server", server_args(
        tmp_path, fleet, control, "--tls-dir", str(certs),
        "--auth-keys", str(certs / "keys-3.txt")))  # fmt: skip
    procs.start("client-2", client_args(tmp_path, fleet, 2, PROFILES[1], *after_run,
                "--auth-key", str(certs / "nodes" / "node-2")))  # fmt: skip
    # a stock SuperNode exits when refused (Flower 1.39): started with the server,
    # it joins only because the keys are registered before the Fleet API opens
    procs.start("stock-3", stock_supernode(tmp_path, fleet, certs, 3, PROFILES[2]),
                program=["flower-supernode"], FLWR_HOME=str(tmp_path / "home-3"))  # fmt: skip
    deadline = time.monotonic() + 300  # node-4's key is never registered
    while procs.log("server").count("registered SuperNode key") < 3:
        assert time.monotonic() < deadline, procs.log("server")[-3000:]
        time.sleep(1)
    wrong_ca = procs.start("client-ca", client_args(tmp_path, fleet, 5, PROFILES[0],
                           "--tls-ca", str(certs / "other" / "ca.crt"),
                           "--auth-key", str(certs / "nodes" / "node-1")))  # fmt: skip
    rogue = procs.start("client-4", client_args(tmp_path, fleet, 4, PROFILES[0], *ca,
                        "--auth-key", str(certs / "nodes" / "node-4"),
                        "--max-retries", "0"))  # fmt: skip
    # Assert: a wrong CA is a TLS failure naming the CA file, with its own status
    assert wrong_ca.wait(120) == 4, procs.log("client-ca")
    assert "TLS FAILED" in procs.log("client-ca")
    assert str(certs / "other" / "ca.crt") in procs.log("client-ca")
    assert "public key registered" not in procs.log("client-ca")
    assert SUPERNODE_TLS_FAILED in procs.log("client-ca")  # Flower's own line
    # Assert: the rogue client is refused, the server says so, the run completes
    assert rogue.wait(120) == 3, procs.log("client-4")
    assert "REFUSED" in procs.log("client-4")
    assert server.wait(RUN_TIMEOUT_S) == 0, procs.log("server")[-3000:]
    server_log = procs.log("server")
    refusals = [ln for ln in server_log.splitlines() if "REFUSED a SuperNode" in ln]
    rogue_key = fingerprint(certs / "nodes" / "node-4.pub")
    assert refusals and all(rogue_key in ln for ln in refusals), refusals
    assert "not yet registered" not in server_log
    assert "before the Fleet API started" in server_log
    # the wrong-CA client's failed handshake, named with its address
    assert re.search(r"TLS handshake FAILED on the Fleet API with 127\.0\.0\.1:\d+: "
                     r"the client closed the connection", server_log), server_log[-3000:]  # fmt: skip
    assert "results" in server_log
    assert RETRYING in procs.log("client-1")  # ours, once per SuperNode start
    assert SUPERNODE_LOST not in procs.log("client-1")  # Flower's warnings: DEBUG
    assert SUPERNODE_SENT in procs.log("client-1")  # Flower's line per reply
    assert_completed(tmp_path)
    # Assert: the warm clients exit 0 by themselves, each built its model once
    for name in ("client-1", "client-2"):
        assert procs.procs[name].wait(120) == 0, procs.log(name)[-3000:]
        text = procs.log(name)
        assert len(re.findall(r"built model \S+ for run", text)) == 1, text[-3000:]
        assert "joined" in text and "run finished" in text
        assert re.search(r"round 3 evaluate: \S+=", text), text[-3000:]
    # the stock SuperNode ran one flwr-clientapp per message (3 rounds: 7)
    assert procs.log("stock-3").count("Start `flwr-clientapp` process") >= 7
    # Assert: no process of this deployment outlives the server and the clients
    procs.kill_all()
    assert wait_gone(str(port)) == []


@pytest.mark.timeout(240)
def test_ctrl_c_stops_everything(tmp_path: Path, procs: Procs):
    # Prepare: an insecure server and one client; the run waits for 3 clients
    port = free_port()
    fleet, control = f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"
    server = procs.start("server", server_args(tmp_path, fleet, control, "--insecure"))
    client = procs.start("client", client_args(tmp_path, fleet, 1, PROFILES[0],
                                               "--insecure"))  # fmt: skip
    deadline = time.monotonic() + 120
    while "submitted" not in procs.log("server") and time.monotonic() < deadline:
        time.sleep(1)
    assert "submitted" in procs.log("server"), procs.log("server")
    assert "TLS is OFF" in procs.log("server")
    wait_for_line(procs, "client", "joined")  # the SuperNode is up and admitted
    assert len(processes_mentioning(str(port))) >= 3  # superlink, supernode, ...
    # Execute: Ctrl-C to both wrappers (as a terminal would)
    os.kill(server.pid, signal.SIGINT)
    os.kill(client.pid, signal.SIGINT)
    # Assert
    assert server.wait(60) == 130
    assert client.wait(60) in (0, 130)
    # no traceback, no abort; the server names the folder to resume
    for name in ("server", "client"):
        assert "Traceback" not in procs.log(name), procs.log(name)[-3000:]
    assert "--resume" in procs.log("server")
    assert wait_gone(str(port)) == []
    assert wait_gone(control.split(":")[1]) == []


# ------------------------------------------------------------------ multi-host
def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for ip netns"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not installed"
    probe = f"fmprobe{os.getpid()}"
    try:
        _sh("ip", "netns", "add", probe)
        _sh("ip", "netns", "del", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"ip netns unusable here: {exc}"
    return None


@contextlib.contextmanager
def network(hosts: list[str]) -> Iterator[dict[str, str]]:
    """One namespace per host + a bridge namespace; returns host -> namespace."""
    tag = f"{os.getpid() % 100000}"
    bridge_ns, names = f"fmbr{tag}", {h: f"fm{h}{tag}" for h in hosts}
    try:
        _sh("ip", "netns", "add", bridge_ns)
        _sh("ip", "-n", bridge_ns, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", bridge_ns, "link", "set", "br0", "up")
        for i, (host, ns) in enumerate(names.items()):
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", f"fmv{tag}h{i}", "netns", ns, "type", "veth",
                "peer", "name", f"fmv{tag}b{i}", "netns", bridge_ns)  # fmt: skip
            _sh("ip", "-n", ns, "link", "set", f"fmv{tag}h{i}", "name", "eth0")
            _sh("ip", "-n", ns, "addr", "add", f"10.77.0.{1 + i}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", bridge_ns, "link", "set", f"fmv{tag}b{i}", "master", "br0")
            _sh("ip", "-n", bridge_ns, "link", "set", f"fmv{tag}b{i}", "up")
        yield names
    finally:
        for ns in [*names.values(), bridge_ns]:
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split()  # fmt: skip
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.root
@pytest.mark.timeout(RUN_TIMEOUT_S + 180)
def test_multi_host_network_namespaces(tmp_path: Path, certs: Path, procs: Procs):
    if reason := _netns_unavailable():
        pytest.skip(reason)
    with network(["srv", "c1", "c2", "c3"]) as ns:
        # Prepare: the server at 10.77.0.1 (a SAN of the test certificate)
        fleet = "10.77.0.1:9092"
        in_ns = {h: ["ip", "netns", "exec", name] for h, name in ns.items()}
        server = procs.start("server", server_args(
            tmp_path, "0.0.0.0:9092", "127.0.0.1:8000", "--tls-dir", str(certs),
            "--auth-keys", str(certs / "keys-3.txt")), prefix=in_ns["srv"])  # fmt: skip
        # Execute: each client in its own namespace, reaching the server over veth
        for i, profile in enumerate(PROFILES, start=1):
            procs.start(f"client-{i}", client_args(
                tmp_path, fleet, i, profile, "--tls-ca", str(certs / "ca.crt"),
                "--auth-key", str(certs / "nodes" / f"node-{i}"),
            ), prefix=in_ns[f"c{i}"])  # fmt: skip
        # Assert
        assert server.wait(RUN_TIMEOUT_S) == 0, procs.log("server")[-3000:]
        assert_completed(tmp_path)
        assert "10.77.0.1:9092" in procs.log("client-1")
