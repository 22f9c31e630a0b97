"""Client names bound to nodes: who may report under which name (no Flower).

A client says its name in every reply (``client-name``); the server records its
metrics under that name. The first *accepted* reply that claims a name binds it
to the sending node (and to the node's authentication key name, where the
deployment registered keys). From then on, for the whole run and across
``--resume`` (the bindings are saved in the checkpoint):

* a reply claiming a bound name from another node is rejected, unless the bound
  node is no longer connected and no key forbids it (a SuperNode that restarts
  gets a new node id from Flower; without node authentication nothing else ties
  the client to its old id) -- then the name moves to the new node, logged;
* with a key name, only a node with the same key may ever take the name;
* a node keeps the name it was bound to: a reply claiming another name is
  rejected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmuscle_flwr.wire.codec import ProtocolError
from fedmuscle_flwr.wire.records import check_name, quote

log = logging.getLogger(__name__)


@dataclass
class Binding:
    """A name's node and, with SuperNode authentication, its key name."""

    node: int
    key: str = ""


@dataclass
class NameBook:
    """The run's name bindings (the one name book); :meth:`claim` checks and binds.

    ``key_of`` gives a node's authentication key name ("" when unknown). The
    nodes connected now are passed to :meth:`check`/:meth:`claim` (the phase's
    snapshot); without them every bound node counts as connected.
    """

    bindings: dict[str, Binding] = field(default_factory=dict)
    key_of: Callable[[int], str] = lambda node: ""
    #: node -> name: built at the first look-up, kept by claim(), reset by load()
    _by_node: dict[int, str] | None = field(default=None, repr=False)

    def names(self) -> dict[int, str]:
        """Node -> bound name (kept between changes: O(1) per look-up; read only)."""
        if self._by_node is None:
            self._by_node = {b.node: n for n, b in self.bindings.items()}
        return self._by_node

    def name_of(self, node: int) -> str | None:
        """The name bound to ``node``, if any."""
        return self.names().get(node)

    def check(
        self, node: int, name: str, connected: Collection[int] | None = None
    ) -> None:
        """:class:`ProtocolError` if ``node`` may not report as ``name``."""
        check_name(name)
        own = self.name_of(node)
        if own is not None and own != name:
            raise ProtocolError(
                f"node {node} is bound to the name {own!r} and claims {quote(name)} "
                "(name change refused)"
            )
        bound = self.bindings.get(name)
        if bound is None or bound.node == node:
            return
        key = self.key_of(node)
        if bound.key and bound.key != key:
            raise ProtocolError(
                f"client name {name!r} is bound to key {bound.key!r} (node "
                f"{bound.node}); node {node} has key {key or '(none)'!r}"
            )
        still_there = connected is None or bound.node in connected
        if not bound.key and still_there:
            raise ProtocolError(
                f"client name {name!r} is bound to node {bound.node}, still "
                f"connected; node {node} claims it (refused)"
            )

    def claim(
        self, node: int, name: str, connected: Collection[int] | None = None
    ) -> None:
        """Check, then bind ``name`` to ``node`` (moving a stale binding)."""
        self.check(node, name, connected)
        bound = self.bindings.get(name)
        if bound is not None and bound.node != node:
            log.warning(
                "client name %r moves from node %d (gone) to node %d%s",
                name,
                bound.node,
                node,
                f" (same key {bound.key!r})" if bound.key else "",
            )
        if bound is None or bound.node != node:
            self.bindings[name] = Binding(node, self.key_of(node))
            if self._by_node is not None:  # keep the index: O(1), not a rebuild
                if bound is not None and self._by_node.get(bound.node) == name:
                    del self._by_node[bound.node]
                self._by_node[node] = name

    def to_json(self) -> dict[str, dict[str, Any]]:
        """``{name: {"node": id, "key": key name}}`` for the checkpoint."""
        return {n: {"node": b.node, "key": b.key} for n, b in self.bindings.items()}

    def load(self, data: Mapping[str, Any]) -> None:
        """Restore :meth:`to_json` output (a resumed run)."""
        self.bindings = {
            str(n): Binding(int(b["node"]), str(b.get("key", "")))
            for n, b in data.items()
        }
        self._by_node = None


@dataclass
class NodeKeys:
    """A node's SuperNode key name from ``federation.node-keys-file`` ('' if none).

    The deployment writes the file after registering the keys, before the run
    starts; it is read at the first look-up, again when a node is not in it.
    """

    path: str
    _names: dict[str, str] | None = None

    def registered(self) -> dict[int, str]:
        """``{node id: key name}`` of every registered key (empty without a file)."""
        if not self.path:
            return {}
        self(0)  # (re)read the file
        return {int(k): v for k, v in (self._names or {}).items()}

    def __call__(self, node: int) -> str:
        """The key name of ``node``."""
        if not self.path:
            return ""
        if self._names is None or str(node) not in self._names:
            try:
                data = dict(json.loads(Path(self.path).read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("node keys %s unreadable (%s)", self.path, exc)
                data = {}
            self._names = {str(k): str(v) for k, v in data.items()}
        return self._names.get(str(node), "")
