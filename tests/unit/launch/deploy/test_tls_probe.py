"""A client's shutdown probe completes TLS: the server sees no failed handshake."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from fedmuscle_flwr.launch.deploy import certs
from fedmuscle_flwr.launch.deploy.supervision import wait_server_gone


def test_the_probe_of_a_tls_server_completes_the_handshake(tmp_path: Path) -> None:
    # Prepare: a real TLS server on loopback with `fedmuscle certs` material
    bundle = certs.generate(tmp_path / "certs", ["localhost"], nodes=0)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "certs" / certs.SERVER_CERT,
                        tmp_path / "certs" / certs.SERVER_KEY)  # fmt: skip
    tls.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    results: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with tls.wrap_socket(conn, server_side=True) as secure:
                    results.append(f"ok {secure.selected_alpn_protocol()}")
            except (ssl.SSLError, OSError) as exc:
                results.append(f"failed {exc}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    # Execute: the server still answers after the timeout, then stops
    address = f"localhost:{port}"
    assert wait_server_gone(address, timeout=1.0, poll=0.3, tls_ca=bundle.ca) is False
    listener.close()
    thread.join(5)
    # Assert: every probe was a complete handshake (HTTP/2 offered, as gRPC's)
    assert results and all(r == "ok h2" for r in results), results
    assert wait_server_gone(address, timeout=5.0, poll=0.2, tls_ca=bundle.ca) is True
