"""What the compose demo relies on: ``--ready-file`` (healthchecks) and a client that,
after the run, leaves only once the server is gone (``--wait-server-exit``)."""

import socket
import threading
import time
from pathlib import Path

from fedmuscle_flwr.launch.deploy import supernode_log, supervision
from fedmuscle_flwr.launch.deploy.client import ClientOptions, run_client
from fedmuscle_flwr.launch.deploy.processes import ReadyFile
from fedmuscle_flwr.launch.deploy.supervision import wait_server_gone
from fedmuscle_flwr.runs.logs import RUN_FINISHED_MARK
from tests.unit.launch.deploy.test_client import stand_in


def test_ready_file_is_fresh_atomic_and_removed_on_exit(tmp_path: Path):
    path = tmp_path / "sub" / "ready"
    path.parent.mkdir()
    path.write_text("stale from an earlier start\n")
    with ReadyFile(path) as ready:
        assert not path.exists()  # a stale marker never counts
        ready.set("run 7 demo")
        assert path.read_text() == "run 7 demo\n"
        assert not path.with_name("ready.tmp").exists()
        ready.clear()
        assert not path.exists()
        ready.set("run 8 demo")
    assert not path.exists()
    with ReadyFile(None) as off:  # no file: every call is a no-op
        off.set("x")
        off.clear()


def test_client_is_ready_once_the_supernode_joined_and_not_after(monkeypatch, tmp_path):
    ready, seen = tmp_path / "ready", tmp_path / "seen"
    # The stand-in SuperNode looks for the file before and after it "joins"
    script = (
        "import pathlib, time\n"
        f"p, seen = pathlib.Path({str(ready)!r}), open({str(seen)!r}, 'w')\n"
        "seen.write(f'before={p.exists()}\\n')\n"
        "print('INFO :      SuperNode ID: 4242', flush=True)\n"
        "for _ in range(200):\n"
        "    if p.exists(): break\n"
        "    time.sleep(0.05)\n"
        "seen.write(p.read_text() if p.exists() else 'missing\\n')\n"
        "seen.close()\n"
    )
    launches = stand_in(monkeypatch, tmp_path, script)
    opts = ClientOptions(server="127.0.0.1:1", profile="fmnist-cnn", relaunches=0,
                         ready_file=ready, warm=False)  # fmt: skip
    assert run_client(opts, home=tmp_path / "home") == 0
    assert launches.read_text().count("x") == 1
    assert seen.read_text() == "before=False\nnode 4242\n"
    assert not ready.exists()  # gone once the client stopped


def listening_server(close_after: float | None) -> tuple[socket.socket, str]:
    """A TCP listener on loopback standing in for the SuperLink; closed later if asked."""
    sock = socket.create_server(("127.0.0.1", 0))
    if close_after is not None:
        threading.Timer(close_after, sock.close).start()
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


def test_after_the_run_the_client_leaves_once_the_server_is_gone(monkeypatch, tmp_path):
    # The run ended and the last reply was sent; the server stops 2 s later
    finished = (
        f"print('x {RUN_FINISHED_MARK} (run, round 3)', flush=True)\n"
        "print('Sent successfully', flush=True)\nimport time\ntime.sleep(60)"
    )
    stand_in(monkeypatch, tmp_path, finished)
    monkeypatch.setattr(
        supernode_log, "_FINAL_GRACE_S", 0.5
    )  # the SuperNode's own wait
    sock, address = listening_server(close_after=2.0)
    opts = ClientOptions(server=address, profile="fmnist-cnn", exit_after_run=True,
                         wait_server_exit_s=60, warm=False)  # fmt: skip
    t0 = time.monotonic()
    assert run_client(opts, home=tmp_path / "home") == 0
    assert 2.0 <= time.monotonic() - t0 < 30  # not before the server stopped


def test_waiting_for_the_server_is_bounded():
    sock, address = listening_server(close_after=None)
    try:
        t0 = time.monotonic()
        assert wait_server_gone(address, timeout=1.0, poll=0.2) is False
        assert 1.0 <= time.monotonic() - t0 < 10
    finally:
        sock.close()
    assert wait_server_gone(address, timeout=5.0, poll=0.2) is True  # refused now


def test_stopped_after_the_run_finished_is_a_clean_exit(monkeypatch, tmp_path):
    # Compose stops (SIGINT) the clients still waiting when the server exits
    finished = (
        f"print('x {RUN_FINISHED_MARK} (run, round 3)', flush=True)\n"
        "print('Sent successfully', flush=True)\nimport time\ntime.sleep(60)"
    )
    stand_in(monkeypatch, tmp_path, finished)
    monkeypatch.setattr(supernode_log, "_FINAL_GRACE_S", 0.2)
    sock, address = listening_server(close_after=None)  # the server never leaves
    waits = []

    def interrupted(server: str, timeout: float, **_: object) -> bool:
        waits.append(server)
        raise KeyboardInterrupt

    monkeypatch.setattr(supervision, "wait_server_gone", interrupted)
    opts = ClientOptions(server=address, profile="fmnist-cnn", exit_after_run=True,
                         wait_server_exit_s=60, warm=False)  # fmt: skip
    try:
        assert run_client(opts, home=tmp_path / "home") == 0
    finally:
        sock.close()
    assert waits == [address]
