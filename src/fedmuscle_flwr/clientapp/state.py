"""A client's state across rounds: model and optimiser states on local disk.

In deployment every Flower message starts a fresh ClientApp process, and
``context.state`` lives in the SuperNode's memory (lost on restart, shipped with
every message), so heavy state goes to disk under a per-node directory keyed by
run. A small in-process cache avoids reloading in simulation, where Ray actors
are long-lived.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

import torch

from fedmuscle_flwr.data.cache import cache_dir

log = logging.getLogger(__name__)

#: environment variable that overrides where client states are written
STATE_DIR_ENV = "FEDMUSCLE_STATE_DIR"
#: longest folder name derived from a run key
MAX_KEY_CHARS = 96
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_key(run_key: str) -> str:
    """One safe folder name for a run key that comes from the server.

    The run key holds the server's ``run-name``, i.e. text a server (or whoever
    edits its config) chooses: separators, ``..``, leading dots, control
    characters and excess length are replaced; a changed key gets a hash of the
    original appended, so two different keys never share a folder.
    """
    cleaned = _UNSAFE.sub("_", run_key).lstrip(".") or "_"
    if cleaned == run_key and len(run_key) <= MAX_KEY_CHARS:
        return run_key
    digest = hashlib.sha256(run_key.encode("utf-8", "replace")).hexdigest()[:12]
    return f"{cleaned[: MAX_KEY_CHARS - 13]}-{digest}"


def default_state_dir() -> Path:
    """``$FEDMUSCLE_STATE_DIR`` or ``<cache>/client-state``."""
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env).expanduser() if env else cache_dir() / "client-state"


#: a state file's identity: (inode, mtime ns, size)
Stamp = tuple[int, int, int]


def _stamp(path: Path) -> Stamp:
    """Identity of the file now: each save is a new file renamed into place."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


class ClientStateStore:
    """Saves and loads one client's state dict per (run, node).

    A small in-memory cache saves the ``torch.load`` between the phases of a round.
    Several processes may serve the same node (Ray actors in simulation, one
    ClientApp process per message in deployment), so a cached state is used only
    while the file on disk is still the one this process wrote or read
    (same inode, mtime and size).
    """

    def __init__(self, root: Path, cache_size: int = 16) -> None:
        self.root = root
        self._cache: OrderedDict[Path, tuple[Stamp, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size

    def path(self, run_key: str, node_id: int) -> Path:
        """File of one client's state: always below :attr:`root` (:func:`safe_key`)."""
        root = self.root.resolve()
        path = (root / safe_key(run_key) / f"node-{int(node_id)}.pt").resolve()
        if not path.is_relative_to(root):  # a symlink planted below the root
            raise ValueError(f"client state path {path} is outside {root}")
        return path

    def stamp(self, run_key: str, node_id: int) -> Stamp | None:
        """The identity of the saved state file now, or None before the first save."""
        try:
            return _stamp(self.path(run_key, node_id))
        except FileNotFoundError:
            return None

    def load(self, run_key: str, node_id: int) -> dict[str, Any] | None:
        """The saved state, or None before the client's first save."""
        path = self.path(run_key, node_id)
        try:
            stamp = _stamp(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            self._cache.move_to_end(path)
            return cached[1]
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        self._remember(path, stamp, state)
        return state

    def save(self, run_key: str, node_id: int, state: dict[str, Any]) -> None:
        """Write atomically (tmp + rename) so a crash never leaves half a file."""
        path = self.path(run_key, node_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        self._remember(path, _stamp(path), state)

    def _remember(self, path: Path, stamp: Stamp, state: dict[str, Any]) -> None:
        self._cache[path] = (stamp, state)
        self._cache.move_to_end(path)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


@cache
def open_store(root: Path) -> ClientStateStore:
    """One store per directory and process, so its cache survives across messages."""
    return ClientStateStore(root)
