"""A mapping whose values are made when looked up and never kept (no Flower).

The server's relay gives every node its own payload (1,000 nodes x ~1 MB at the
default preset): made all at once they are most of the server's memory. A
:class:`LazyMapping` knows its keys (in order) and makes a value each time it
is looked up, so whoever encodes and sends the payloads one by one holds one at
a time. Making a value must not depend on the order of look-ups (draw every
random choice before; :func:`fedmuscle_flwr.method.planner.partner_matrices`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LazyMapping(Mapping[K, V]):
    """``{key: make(key) for key in keys}``, each value made when looked up.

    Looking a key up twice makes its value twice (nothing is cached).
    """

    def __init__(self, keys: Iterable[K], make: Callable[[K], V]) -> None:
        self._keys = list(dict.fromkeys(keys))  # ordered, each key once
        self._known = set(self._keys)
        self._make = make

    def __getitem__(self, key: K) -> V:
        if key not in self._known:
            raise KeyError(key)
        return self._make(key)

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._known
