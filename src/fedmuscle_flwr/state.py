"""A client's state across rounds: model and optimiser states on local disk.

In deployment every Flower message starts a fresh ClientApp process, and
``context.state`` lives in the SuperNode's memory (lost on restart, shipped with
every message), so heavy state goes to disk under a per-node directory keyed by
run. A small in-process cache avoids reloading in simulation, where Ray actors
are long-lived.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

import torch

from fedmuscle_flwr.data.cache import cache_dir

log = logging.getLogger(__name__)

#: environment variable that overrides where client states are written
STATE_DIR_ENV = "FEDMUSCLE_STATE_DIR"


def default_state_dir() -> Path:
    """``$FEDMUSCLE_STATE_DIR`` or ``<cache>/client-state``."""
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env).expanduser() if env else cache_dir() / "client-state"


class ClientStateStore:
    """Saves and loads one client's state dict per (run, node)."""

    def __init__(self, root: Path, cache_size: int = 16) -> None:
        self.root = root
        self._cache: OrderedDict[Path, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size

    def path(self, run_key: str, node_id: int) -> Path:
        """File of one client's state."""
        return self.root / run_key / f"node-{node_id}.pt"

    def load(self, run_key: str, node_id: int) -> dict[str, Any] | None:
        """The saved state, or None before the client's first save."""
        path = self.path(run_key, node_id)
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        if not path.is_file():
            return None
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state

    def save(self, run_key: str, node_id: int, state: dict[str, Any]) -> None:
        """Write atomically (tmp + rename) so a crash never leaves half a file."""
        path = self.path(run_key, node_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        self._cache[path] = state
        self._cache.move_to_end(path)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


@cache
def open_store(root: Path) -> ClientStateStore:
    """One store per directory and process, so its cache survives across messages."""
    return ClientStateStore(root)
