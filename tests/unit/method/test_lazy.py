"""method/lazy.py: values made when looked up, in any order, never kept."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.method.lazy import LazyMapping


def test_values_are_made_per_look_up_and_keys_keep_their_order():
    made: list[int] = []

    def make(key: int) -> int:
        made.append(key)
        return key * 10

    lazy = LazyMapping([3, 1, 2, 1], make)
    assert made == []  # nothing made up front
    assert list(lazy) == [3, 1, 2] and len(lazy) == 3 and 2 in lazy
    assert lazy[2] == 20 and lazy[2] == 20 and made == [2, 2]  # not cached
    assert dict(lazy.items()) == {3: 30, 1: 10, 2: 20}
    assert 5 not in lazy and lazy.get(5) is None
    with pytest.raises(KeyError):
        lazy[5]
    assert made == [2, 2, 3, 1, 2]  # an unknown key never reaches make
