"""Failed TLS handshakes, as gRPC core reports them with ``handshakes.TRACE_ENV``.

A real gRPC server (the installed grpcio, configured as Flower 1.39's Fleet API:
TLS, no client certificate required) runs in a subprocess with the SuperLink's
trace environment; real clients fail their handshakes against it; its stderr
goes through :class:`HandshakeWatcher` line by line, as ``fedmuscle server``
pumps the SuperLink's output.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from fedmuscle_flwr.launch.deploy.certs import generate
from fedmuscle_flwr.launch.deploy.handshakes import TRACE_ENV, HandshakeWatcher
from fedmuscle_flwr.launch.deploy.processes import free_port, wait_for_port

SERVER = """
import sys, time, grpc
from concurrent import futures
d, port = sys.argv[1], int(sys.argv[2])
key, cert, ca = (open(f"{d}/{f}", "rb").read() for f in ("server.key", "server.pem", "ca.crt"))
srv = grpc.server(futures.ThreadPoolExecutor(2))
creds = grpc.ssl_server_credentials(((key, cert),), root_certificates=ca,
                                    require_client_auth=False)
srv.add_secure_port(f"127.0.0.1:{port}", creds)
srv.start()
time.sleep(float(sys.argv[3]))
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    generate(out, ["127.0.0.1"])
    generate(out / "other", ["127.0.0.1"])
    return out


def connect(port: int, ca: Path | None) -> bool:
    """A gRPC client connection (TLS trusting ``ca``, or plaintext)."""
    target = f"127.0.0.1:{port}"
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials(ca.read_bytes()))
        if ca
        else grpc.insecure_channel(target)
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=3)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def failed_records(lines: list[str], status: str = "") -> int:
    """Failed handshakes (``status`` in the error) whose record is complete.

    A record is complete once the line that names the peer arrived (on the
    error line or a continuation line after it).
    """
    count, pending = 0, False
    for line in list(lines):
        if "CallNextHandshakerLocked: error=" in line:
            pending = "error=OK " not in line and status in line
        if pending and "endpoint_peer_address" in line:
            count, pending = count + 1, False
    return count


def serve_and(
    certs: Path, clients, until: Callable[[list[str]], bool]
) -> tuple[list[str], int]:
    """Run the server, then ``clients(port)``; return its output lines, its port.

    The server runs until its output satisfies ``until`` (what the test needs
    to have been reported), at most 60 s.
    """
    port = free_port()
    env = {**os.environ, **TRACE_ENV}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(certs), str(port), "90"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    err: list[str] = []
    reader = threading.Thread(
        target=lambda: err.extend(ln.rstrip("\n") for ln in proc.stderr or ()),
        daemon=True,
    )
    reader.start()
    try:
        probes: list[str] = []
        wait_for_port("127.0.0.1", port, 30, None, probing=probes.append)
        clients(port)
        deadline = time.monotonic() + 60
        while not until(err) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)
        reader.join(10)
    return [probes[0], *err], port


@pytest.mark.timeout(120)
def test_failed_handshakes_become_one_line_each(certs, caplog):
    # Execute: a wrong CA, a plaintext client, a raw TCP probe, a good client
    outcome: dict[str, bool] = {}

    def clients(port: int) -> None:
        outcome["wrong"] = connect(port, certs / "other" / "ca.crt")
        outcome["plain"] = connect(port, None)
        outcome["good"] = connect(port, certs / "ca.crt")

    # the plaintext client's failure is the last one to be reported
    (probe, *lines), port = serve_and(
        certs, clients, lambda err: failed_records(err, "WRONG_VERSION_NUMBER") > 0
    )
    watcher = HandshakeWatcher(port, per_host_s=0.0, ignore={probe})
    with caplog.at_level(logging.WARNING):
        kept = [line for line in lines if watcher(line)]
    # Assert: the good client connected; gRPC's trace stays out of the log file
    assert outcome == {"wrong": False, "plain": False, "good": True}
    assert not [ln for ln in kept if "handshaker.cc" in ln or "Source Location" in ln]
    warnings = [r.getMessage() for r in caplog.records]
    # the wrong CA: the client closed the connection, named with its address
    assert any(
        "TLS handshake FAILED" in w and "127.0.0.1:" in w and "wrong CA file" in w
        for w in warnings
    ), (warnings, lines[-40:])
    assert any("does not speak TLS" in w for w in warnings), warnings
    # every failure reported (per_host_s=0), the server's own port probe not
    assert len(warnings) == len(watcher.failures) >= 2
    assert all(probe != address for address, _ in watcher.failures)


@pytest.mark.timeout(120)
def test_a_scanner_cannot_flood_the_log(certs, caplog):
    def scanner(port: int) -> None:
        for _ in range(30):
            socket.create_connection(("127.0.0.1", port)).close()
            time.sleep(0.02)

    (probe, *lines), port = serve_and(
        certs, scanner, lambda err: failed_records(err) >= 11
    )
    watcher = HandshakeWatcher(port, ignore={probe})
    with caplog.at_level(logging.WARNING):
        for line in lines:
            watcher(line)
    # 30 probes from one host (gRPC may fold some): one line per host per minute
    assert len(watcher.failures) >= 10, lines[-20:]
    assert len(caplog.records) == 1


def test_rate_limits_hosts_and_the_total(caplog):
    now = [0.0]
    watcher = HandshakeWatcher(9092, max_per_minute=3, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for host in range(10):
            watcher._report(f"10.0.0.{host}:5000", "Socket closed")
        assert len(caplog.records) == 3
        now[0] = 61.0
        watcher._report("10.0.0.1:5001", "Socket closed")  # the next line sums up
    assert len(caplog.records) == 4
    assert "7 more failed handshakes" in caplog.records[-1].getMessage()
