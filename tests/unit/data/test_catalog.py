"""The packaged datasets' registry: one module per family, no central list."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.data.catalog import PRIVATE, PUBLIC, captions, images, online, text
from fedmuscle_flwr.data.catalog.base import PrivateEntry, PublicEntry


@pytest.mark.parametrize(
    ("module", "private", "public"),
    [
        (images, {"fashion-mnist", "digits", "mnist-5k", "fashion-mnist-mosaic",
                  "fashion-mnist-seg"},
         {"fashion-mnist-heldout", "mnist-5k-public", "digits-public"}),
        (text, {"wordnet-noun", "wordnet-verb"}, {"wordnet-adj-adv"}),
        (captions, set(), {"emoji-captions", "tuxpaint-captions",
                           "emoji-tuxpaint-captions"}),
        (online, {"mnist", "cifar10", "cifar100"}, set()),
    ],
)  # fmt: skip
def test_each_family_registers_its_sets(
    module: object, private: set, public: set
) -> None:
    assert private <= set(PRIVATE) and public <= set(PUBLIC)
    assert all(isinstance(PRIVATE[n], PrivateEntry) for n in private)
    assert all(isinstance(PUBLIC[n], PublicEntry) for n in public)
    assert module is not None


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as exc:
        PRIVATE.entry("nope")
    assert "digits" in str(exc.value) and "fashion-mnist" in str(exc.value)
