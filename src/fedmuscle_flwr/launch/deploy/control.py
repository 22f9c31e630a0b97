"""The SuperLink's Control API through Flower's own ``flwr`` CLI, and its logs.

Every call runs ``flwr <command> fedmuscle --format json`` with the connection
``fedmuscle`` that :func:`write_connection` puts in ``$FLWR_HOME/config.toml``
(1.39: the Control API is the SuperLink's HTTP(S) ``--host``/``--port``).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import json
import logging
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmuscle_flwr.launch.deploy.processes import DeploymentError, flower_program
from fedmuscle_flwr.wire.flower_compat import SUPERLINK_UNKNOWN_KEY

log = logging.getLogger(__name__)

#: connection name written to ``$FLWR_HOME/config.toml``
CONNECTION = "fedmuscle"
_STATUS_EVERY_S = 30.0
#: each ``flwr supernode register`` is a Python start; on a loaded machine
#: (load 40 on 2 cores) 60 s were not enough
_REGISTER_TIMEOUT_S = 180.0


def write_connection(home: Path, address: str, ca: Path | None) -> Path:
    """Write ``$FLWR_HOME/config.toml`` with the :data:`CONNECTION` entry."""
    tls = f'root-certificates = "{ca.resolve()}"' if ca else "insecure = true"
    path = home / "config.toml"
    path.write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "{address}"\n{tls}\n'
    )
    return path


def flwr_json(args: Sequence[str], env: Mapping[str, str], timeout: float = 60) -> Any:
    """Run ``flwr <args> --format json``; return the parsed JSON or raise."""
    cmd = [flower_program("flwr"), *args, "--format", "json"]
    out = subprocess.run(
        cmd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        data = json.loads(out.stdout[out.stdout.find("{") :])
    except json.JSONDecodeError:
        data = {"success": False, "error-message": out.stdout + out.stderr}
    if not data.get("success", False):
        raise DeploymentError(
            f"{' '.join(cmd)} failed: {data.get('error-message', data)}"
        )
    return data


def register_nodes(
    keys: Sequence[str], workdir: Path, env: Mapping[str, str]
) -> dict[int, str]:
    """Register OpenSSH public keys with the SuperLink (``flwr supernode register``).

    Returns node id -> key label (the key's comment, e.g. ``node-1``, or its tail).

    The calls run in parallel: each ``flwr`` process takes seconds to start, and
    a SuperNode whose key is not registered yet when it connects is refused.
    """
    pubs = []
    for i, line in enumerate(keys):
        pubs.append(workdir / f"registered-{i}.pub")
        pubs[-1].write_text(line + "\n")
    with ThreadPoolExecutor(max_workers=min(8, len(pubs) or 1)) as pool:
        results = list(
            pool.map(
                lambda pub: flwr_json(
                    ["supernode", "register", str(pub), CONNECTION],
                    env,
                    _REGISTER_TIMEOUT_S,
                ),
                pubs,
            )
        )
    ids = [int(data["node-id"]) for data in results]
    for line, node_id in zip(keys, ids, strict=True):
        log.info("registered SuperNode key %s as node %s", _key_label(line), node_id)
    return {node_id: _key_label(line) for line, node_id in zip(keys, ids, strict=True)}


def key_label(line: str) -> str:
    """The name of an OpenSSH public key line: its comment, else its tail."""
    return _key_label(line)


def _key_label(line: str) -> str:
    parts = line.split()
    return parts[2] if len(parts) > 2 else parts[1][-12:]


def find_app_dir() -> Path | None:
    """The project root holding this package's Flower ``pyproject.toml``, if any.

    Found from this module's location (editable install or source checkout);
    ``None`` for a non-editable install (then see :func:`write_minimal_app`).
    """
    for folder in Path(__file__).resolve().parents:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.flwr.app" in pyproject.read_text():
            return folder
    return None


def write_minimal_app(folder: Path) -> Path:
    """A code-free Flower app (only ``pyproject.toml``) for installed packages.

    ``flwr run`` ships a FAB, but the components are imported by module path, so
    when ``fedmuscle_flwr`` is installed on the server and on every client (which
    deployment needs anyway: runtime dependency installation is off) a FAB that
    carries only the app's metadata is enough.
    """
    from importlib.metadata import version

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n\n'
        f'[project]\nname = "fedmuscle-flwr"\nversion = "{version("fedmuscle-flwr")}"\n'
        'dependencies = ["flwr==1.39.0"]\n\n'
        '[tool.flwr.app]\npublisher = "fedmuscle"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "fedmuscle_flwr.serverapp.app:app"\n'
        'clientapp = "fedmuscle_flwr.clientapp.app:app"\n\n'
        '[tool.flwr.app.config]\npreset = "default"\n'
    )
    return folder


def submit_run(app_dir: Path, run_config: Path, env: Mapping[str, str]) -> int:
    """``flwr run APP fedmuscle --run-config 'preset="<file>"'``; return the run id."""
    override = f'preset="{run_config.resolve()}"'
    data = flwr_json(
        ["run", str(app_dir), CONNECTION, "--run-config", override], env, 300
    )
    return int(data["run-id"])


def run_status(run_id: int, env: Mapping[str, str]) -> str:
    """The run's status string, e.g. ``running`` or ``finished:completed``."""
    data = flwr_json(["list", CONNECTION, "--run-id", str(run_id)], env)
    return str(data["runs"][0]["status"])


def wait_run(
    run_id: int,
    env: Mapping[str, str],
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    tick: Callable[[], None] = lambda: None,
    hint: Callable[[], bool] = lambda: True,
) -> str:
    """Wait until the run finished; return its final status (``flwr list``).

    Every ``flwr`` call costs a Python start-up (about 1 s of CPU), so the status
    is read when ``hint()`` says the run may have ended (the ``flwr log
    --stream`` process exited) and otherwise every 30 s; a read that times out
    (measured: more than 60 s for ``flwr list`` at a load average of 25 on 2
    cores) is repeated, not fatal. ``alive`` says whether the SuperLink still
    runs; ``tick`` runs every half second.
    """
    deadline, status, next_check = time.monotonic() + timeout, "unknown", 0.0
    quiet_until = 0.0  # after a read that timed out: no hint-driven reads until then
    while time.monotonic() < deadline:
        if not alive():
            raise DeploymentError(f"the SuperLink exited; run {run_id} was {status}")
        tick()
        now = time.monotonic()
        if now >= next_check or (now >= quiet_until and hint()):
            next_check = now + _STATUS_EVERY_S
            try:
                status = run_status(run_id, env)
            except subprocess.TimeoutExpired as exc:  # a busy machine: ask later
                log.warning(
                    "`flwr list` gave no answer in %.0f s; asking again", exc.timeout
                )
                quiet_until = next_check
                continue
            if status.startswith("finished"):
                return status
        time.sleep(0.5)
    raise DeploymentError(f"run {run_id} still {status} after {timeout:.0f} s")


@dataclass
class OnlineNodes:
    """Logs "N of M registered clients online" when that set changes, by key.

    Only registered (authenticated) nodes have ids before they connect, so this
    is how the server can name who is missing. The online set is read with
    ``flwr supernode list`` (a Python start, about 1 s of CPU) every ``every_s``;
    a line is logged only when it changed, naming who came and who left.
    """

    env: Mapping[str, str]
    registered: Mapping[int, str]  # node id -> key label
    every_s: float = 15.0
    _next: float = 0.0
    _online: frozenset[int] | None = None

    def __call__(self) -> None:
        """Check (rate-limited) and log a change of the online set."""
        if not self.registered or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every_s
        try:
            nodes = flwr_json(["supernode", "list", CONNECTION], self.env)["nodes"]
        except (DeploymentError, subprocess.TimeoutExpired, KeyError) as exc:
            log.debug("flwr supernode list: %s", exc)
            return
        online = frozenset(
            int(n["node-id"]) for n in nodes if n["status"] == "online"
        ) & frozenset(self.registered)
        self.update(online)

    def update(self, online: frozenset[int]) -> None:
        """Log the change from the last known online set to ``online``."""
        before = self._online if self._online is not None else frozenset()
        if online == self._online:
            return
        self._online = online
        came = [self._name(n) for n in sorted(online - before)]
        left = [self._name(n) for n in sorted(before - online)]
        missing = [self._name(n) for n in sorted(set(self.registered) - online)]
        change = "; ".join(
            part
            for part in (
                f"joined: {', '.join(came)}" if came else "",
                f"left: {', '.join(left)}" if left else "",
                f"missing: {', '.join(missing)}" if missing else "",
            )
            if part
        )
        log.info(
            "%d of %d registered clients online%s",
            len(online),
            len(self.registered),
            f" ({change})" if change else "",
        )

    def _name(self, node_id: int) -> str:
        return f"{self.registered[node_id]} (node {node_id})"


def stop_run(run_id: int, env: Mapping[str, str]) -> None:
    """Ask the SuperLink to stop ``run_id`` (best effort)."""
    with contextlib.suppress(DeploymentError, subprocess.TimeoutExpired):
        flwr_json(["stop", str(run_id), CONNECTION], env, timeout=30)


def key_fingerprint(line: str) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of the key in a SuperLink log line."""
    try:
        from cryptography.hazmat.primitives import serialization

        start = line.index("b'-----BEGIN")
        pem = ast.literal_eval(line[start : line.index("'", start + 2) + 1])
        key = serialization.load_pem_public_key(pem)
        raw = key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).split()[1]
        digest = hashlib.sha256(base64.b64decode(raw)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    except (ValueError, SyntaxError):
        return "an unknown key"


@dataclass
class RefusalWatcher:
    """Turns the SuperLink's refusal errors into one clear warning per attempt.

    Where the keys are registered through the Control API, the Fleet API accepts
    connections before they are, so until :attr:`registered` is set a refusal is
    logged as "not yet registered" (the client retries), not as an unknown key.
    Where the SuperLink registers them before its Fleet API starts (it writes
    ``registered_file`` first, :mod:`.superlink`), every refusal is one.
    """

    refused: list[str] = field(default_factory=list)
    registered: bool = False
    registered_file: Path | None = None

    def __call__(self, line: str) -> None:
        """Inspect one SuperLink log line."""
        if SUPERLINK_UNKNOWN_KEY in line:
            fingerprint = key_fingerprint(line)
            if not self._registered():
                log.info(
                    "a SuperNode (key %s) connected before the keys were "
                    "registered: not yet registered; it will retry",
                    fingerprint,
                )
                return
            self.refused.append(fingerprint)
            log.warning(
                "REFUSED a SuperNode: its public key %s is not registered "
                "(not in --auth-keys); it was not admitted to the federation",
                fingerprint,
            )

    def _registered(self) -> bool:
        if not self.registered and self.registered_file is not None:
            self.registered = self.registered_file.is_file()
        return self.registered
