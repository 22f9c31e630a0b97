"""Child processes for Flower's own executables: process groups, env, ports.

``fedmuscle server`` and ``fedmuscle client`` do not re-implement Flower: they
start ``flower-superlink`` / ``flower-supernode`` as child processes (each in its
own process group, so one signal reaches its whole tree: SuperExec, ServerApp,
ClientApps), talk to the SuperLink's Control API through the ``flwr`` CLI
(``flwr supernode register``, ``flwr run``, ``flwr list``, ``flwr log``) and
stop everything on completion, on error, and on SIGINT/SIGTERM.

Flower 1.39 ports: Fleet API gRPC on ``--fleet-api-address`` (default
``0.0.0.0:9092``); Control and ServerAppIo (Runtime) APIs on one HTTP(S) port
(``--host``/``--port``, default ``127.0.0.1:8000``); each SuperNode serves its
ClientAppIo Runtime API on ``--host``/``--port`` (default ``127.0.0.1:9094``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

log = logging.getLogger(__name__)

_STOP_GRACE_S = 10.0
#: terminal colour codes (kept out of log files)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DeploymentError(RuntimeError):
    """A Flower process failed to start, exited early, or a run failed."""


def flower_program(name: str) -> str:
    """Flower's program ``name`` (``flwr``, ``flower-superlink``, ...) of this install.

    The one next to the running interpreter (the venv's ``bin/``, whether or not
    it is on ``PATH``), else the bare name for a ``PATH`` lookup.
    """
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


class ReadyFile:
    """A file that exists only while this role is ready (for container healthchecks).

    :meth:`set` writes it atomically, :meth:`clear` removes it; as a context
    manager it removes a stale file from an earlier start on entry and the file
    on exit. ``path=None`` makes every call a no-op.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def set(self, text: str) -> None:
        """Write ``text`` to the file (atomically: write, then rename)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(self.path)
        log.info("ready: %s (%s)", self.path, text)

    def clear(self) -> None:
        """Remove the file if it exists."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> ReadyFile:
        self.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


def flower_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Flower executable: own ``FLWR_HOME``, offline, quiet.

    ``FLWR_HOME`` must lie outside the app directory (the FAB build would pack
    it otherwise). Runtime dependency installation is off through the flags
    (``--disable-runtime-dependency-installation`` on the SuperLink; SuperNodes
    default to off in 1.39) and through the env var later versions read.
    ``PATH`` starts with this interpreter's ``bin/`` (:func:`flower_program`).
    """
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Flower starts its own programs by name (the SuperLink its SuperExec, ...):
    # this interpreter's bin/ first, so a venv that is not activated works too
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", os.defpath)])
    env.update(
        FLWR_HOME=str(home),
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now on ``host`` (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``[::1]:port``) -> ``(host, port)``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    proc: Managed | None,
    probing: Callable[[str], None] | None = None,
) -> None:
    """Block until a TCP connect to ``host:port`` succeeds; raise after ``timeout``.

    ``probing`` gets the probe's own address (``ip:port``) before it closes, so
    that the server's report of that aborted TLS handshake can be told apart.
    """
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DeploymentError(f"{proc.name} exited early; see {proc.log_path}")
        with contextlib.suppress(OSError):
            with socket.create_connection((connect_host, port), timeout=1) as sock:
                if probing is not None:
                    ip, local_port = sock.getsockname()[:2]
                    probing(f"{ip}:{local_port}")
            return
        time.sleep(0.2)
    raise DeploymentError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class Managed:
    """A child process in its own process group; output copied to a log file.

    Parameters
    ----------
    name : str
        Short name used in log lines.
    cmd : sequence of str
        The command.
    env : mapping
        Its environment.
    log_path : Path or None
        Where its stdout+stderr go; ``None`` inherits the terminal.
    on_line : callable or None
        Called with every output line (only with a ``log_path``); a line for
        which it returns ``False`` is kept out of the log file.
    """

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        log_path: Path | None = None,
        on_line: Callable[[str], bool | None] | None = None,
    ) -> None:
        self.name, self.cmd, self.log_path = name, list(cmd), log_path
        log.debug("starting %s: %s", name, " ".join(self.cmd))
        pipe = subprocess.PIPE if log_path is not None else None
        self.proc = subprocess.Popen(
            self.cmd,
            env=dict(env),
            stdout=pipe,
            stderr=subprocess.STDOUT if pipe else None,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._pump: threading.Thread | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            sink = log_path.open("a", encoding="utf-8")
            self._pump = threading.Thread(
                target=_pump, args=(self.proc.stdout, sink, on_line), daemon=True
            )
            self._pump.start()

    @property
    def pid(self) -> int:
        """The child's process id (= its process group id)."""
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code, or ``None`` while running."""
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code."""
        return self.proc.wait(timeout)

    def stop(self, grace: float = _STOP_GRACE_S) -> int | None:
        """SIGINT the process group, then SIGTERM, then SIGKILL; return the exit code.

        Flower starts some children in their own session (the SuperLink's
        SuperExec and its ServerApp), so descendants are also collected from
        ``/proc`` first and killed if they outlive the leader.
        """
        tree = descendants(self.proc.pid)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
                break
        _reap(tree, grace=2.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._pump is not None:
            self._pump.join(timeout=2)
        log.debug("%s stopped (exit %s)", self.name, self.proc.returncode)
        return self.proc.returncode


def descendants(pid: int) -> list[int]:
    """All descendant process ids of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap(pids: Sequence[int], grace: float) -> None:
    """SIGTERM the survivors among ``pids``, SIGKILL them after ``grace`` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        survivors = [p for p in pids if _alive(p)]
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while survivors and time.monotonic() < deadline:
            survivors = [p for p in survivors if _alive(p)]
            time.sleep(0.1)


def _pump(
    src: TextIO | None, sink: TextIO, on_line: Callable[[str], bool | None] | None
) -> None:
    if src is None:
        return
    with sink:
        for raw in src:
            line = ANSI.sub("", raw)  # Flower colours its console lines
            keep = on_line(line.rstrip("\n")) if on_line is not None else None
            if keep is not False:
                sink.write(line)
                sink.flush()


@contextlib.contextmanager
def process_group() -> Iterator[list[Managed]]:
    """Collect :class:`Managed` children; stop them all (reverse order) on exit.

    SIGTERM is turned into ``KeyboardInterrupt`` while inside, so Ctrl-C and a
    ``kill`` both unwind through the same clean shutdown.
    """
    procs: list[Managed] = []

    def _on_term(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_term) if in_main else None
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            proc.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def split_launcher_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """A launcher's ``[OURS] -- FLOWER`` arguments as (ours, Flower's)."""
    argv = list(argv)
    if "--" not in argv:
        return [], argv
    return argv[: argv.index("--")], argv[argv.index("--") + 1 :]


def toml_value(value: Any) -> str:
    """A scalar (or list) as a TOML value, for config files and ``--node-config``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # strings and lists: JSON syntax is valid TOML here
