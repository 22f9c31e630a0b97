"""The resident ClientApp (launch/deploy/resident_clientapp.py) on its own.

Its task flow against a real SuperNode runs in tests/integration/test_deployment.py
(the warm clients); here: which ClientApp it serves, and its poll loop while no
SuperNode answers (a real closed port), from start to a clean stop.
"""

import io
import socket
import threading
import zipfile
from pathlib import Path

import pytest
from flwr.supercore.inflatable import inflatable_utils

from fedmuscle_flwr.clientapp import app as client_app
from fedmuscle_flwr.clientapp.bundle import CLIENTAPP_REF, BundleRefused
from fedmuscle_flwr.launch.deploy.control import write_minimal_app
from fedmuscle_flwr.launch.deploy.resident_clientapp import ResidentClientApp


def fab(pyproject: str) -> bytes:
    """A Flower App Bundle holding only ``pyproject.toml``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("pyproject.toml", pyproject)
    return out.getvalue()


def test_it_serves_our_app_and_refuses_another(tmp_path: Path, caplog):
    # the bundle fedmuscle server submits from an installed package passes the pin
    ours = (write_minimal_app(tmp_path / "app") / "pyproject.toml").read_text()
    resident = ResidentClientApp("127.0.0.1:1", client_app.app)
    resident._check_bundle(1, "h-ours", fab(ours))
    assert resident._accepted == {"h-ours"}
    other = ours.replace(CLIENTAPP_REF, "someone_else.client:app")
    with pytest.raises(BundleRefused, match="names ClientApp 'someone_else"):
        resident._check_bundle(2, "h-other", fab(other))
    assert "run 2 refused: the server's app bundle names ClientApp" in caplog.text
    assert resident._accepted == {"h-ours"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(60)
def test_it_polls_until_a_supernode_answers_and_stops_cleanly(monkeypatch):
    for name in ("pull_objects", "pull_and_inflate_object_from_tree"):
        function = getattr(inflatable_utils, name)  # start() shortens these
        monkeypatch.setattr(function, "__kwdefaults__", dict(function.__kwdefaults__))
    polled = threading.Event()
    real_client = ResidentClientApp._client

    def client(self, token=None):  # the real Runtime API client; noted when made
        polled.set()
        return real_client(self, token)

    monkeypatch.setattr(ResidentClientApp, "_client", client)
    resident = ResidentClientApp(f"127.0.0.1:{closed_port()}", client_app.app)
    resident.start()
    assert polled.wait(30)  # its loop runs, and no SuperNode answers
    assert resident._thread is not None and resident._thread.is_alive()
    # the first object-pull retry is the one the resident asked for
    backoff = inflatable_utils.pull_objects.__kwdefaults__["initial_backoff"]
    assert backoff == resident.pull_backoff_s
    resident.stop(timeout=10)
    assert not resident._thread.is_alive()
    assert resident.tasks == 0
