"""A client's state across rounds: model and optimiser states on local disk.

In deployment every Flower message starts a fresh ClientApp process, and
``context.state`` lives in the SuperNode's memory (lost on restart, shipped with
every message), so heavy state goes to disk under a per-node directory keyed by
run. One small in-process cache type, :class:`StampedCache`, avoids reloading
in simulation (Ray actors are long-lived) and keeps warm runtimes
(:mod:`fedmuscle_flwr.clientapp.runner`): an entry is used only while the
state file is still the one it was saved with or read from.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

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


#: modes of the state folders and files: the owner's only
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_dir(path: Path, root: Path) -> None:
    """Create ``path`` (below ``root``) with every folder from ``root`` down 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    folder = path.resolve()
    top = root.resolve()
    while True:
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is masked; existing ones too
        if folder == top or top not in folder.parents:
            break
        folder = folder.parent


#: a state file's identity: (inode, mtime ns, size)
Stamp = tuple[int, int, int]


def _stamp(path: Path) -> Stamp:
    """Identity of the file now: each save is a new file renamed into place."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


K = TypeVar("K")
V = TypeVar("V")


class StampedCache(Generic[K, V]):
    """An LRU of ``size`` values, each valid while its state file has its stamp.

    Several processes may serve the same node (Ray actors in simulation, one
    ClientApp process per message in deployment): a value is returned only
    while the file on disk is still the one it was stored with (same inode,
    mtime and size); otherwise it is dropped.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, tuple[Stamp | None, V]] = OrderedDict()

    def get(self, key: K, stamp: Stamp | None) -> V | None:
        """The value stored under ``key`` with ``stamp``, else None (dropped)."""
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] != stamp:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V, stamp: Stamp | None) -> None:
        """Keep ``value`` with the stamp of its state file now."""
        self._items[key] = (stamp, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def drop(self, key: K) -> None:
        """Forget ``key``."""
        self._items.pop(key, None)


class ClientStateStore:
    """Saves and loads one client's state dict per (run, node).

    A :class:`StampedCache` saves the ``torch.load`` between the phases of a
    round while the file on disk is still the one this process wrote or read.
    """

    def __init__(self, root: Path, cache_size: int = 16) -> None:
        self.root = root
        self._cache: StampedCache[Path, dict[str, Any]] = StampedCache(cache_size)

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
            self._cache.drop(path)
            return None
        cached = self._cache.get(path, stamp)
        if cached is not None:
            return cached
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        self._cache.put(path, state, stamp)
        return state

    def save(self, run_key: str, node_id: int, state: dict[str, Any]) -> None:
        """Write atomically (tmp + rename) so a crash never leaves half a file.

        The state is a model trained on private data: its folders are 0700 and
        the file 0600 (only the client's own user may read it), whatever the
        umask.
        """
        path = self.path(run_key, node_id)
        private_dir(path.parent, self.root)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), PRIVATE_FILE)  # an older tmp kept its mode
            torch.save(state, fh)
        tmp.replace(path)
        self._cache.put(path, state, _stamp(path))


def remove_runs_since(root: Path, since: float) -> tuple[int, int]:
    """Remove the run folders under ``root`` written at or after ``since`` (epoch s).

    For a client whose runs all finished (``fedmuscle client --exit-after-run``):
    the states of finished runs serve no ``--resume``; those of interrupted runs
    from before ``since`` stay. Returns (folders, bytes) removed.
    """
    folders = total = 0
    if not root.is_dir():
        return 0, 0
    for folder in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
    ):
        files = [f for f in folder.rglob("*") if f.is_file() and not f.is_symlink()]
        if not files or max(f.stat().st_mtime for f in files) < since:
            continue
        total += sum(f.stat().st_size for f in files)
        shutil.rmtree(folder)
        folders += 1
    return folders, total


@cache
def open_store(root: Path) -> ClientStateStore:
    """One store per directory and process, so its cache survives across messages."""
    return ClientStateStore(root)
