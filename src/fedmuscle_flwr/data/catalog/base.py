"""Catalogue entries and the two registries: labelled (private) and public sets.

Nothing else dispatches on dataset names: a family module decorates its loader::

    @private("digits", DIGITS_INFO, "scikit-learn digits ...", SKLEARN_DIGITS)
    def _digits() -> LabelledData: ...

    @public("digits-public", IMAGE, "the 1797 sklearn digits ...", SKLEARN_DIGITS)
    def _digits_public() -> InMemoryPublicData: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fedmuscle_flwr.config.registry import Registry
from fedmuscle_flwr.data.base import DatasetInfo, LabelledData, Modality
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.sources import Source

PrivateLoader = Callable[[], LabelledData]
PublicLoader = Callable[[], InMemoryPublicData]

IMAGE: frozenset[Modality] = frozenset({"image"})
TEXT: frozenset[Modality] = frozenset({"text"})
PAIR: frozenset[Modality] = frozenset({"image", "text"})


@dataclass(frozen=True)
class PrivateEntry:
    """A labelled dataset: metadata, raw loader and the sources it needs."""

    info: DatasetInfo
    description: str
    load: PrivateLoader
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class PublicEntry:
    """An unlabelled public set: modalities, loader (whole pool) and sources."""

    description: str
    modalities: frozenset[Modality]
    load: PublicLoader
    sources: tuple[Source, ...]


PRIVATE: Registry[PrivateEntry] = Registry(
    "packaged dataset", "fedmuscle_flwr.data.catalog"
)
PUBLIC: Registry[PublicEntry] = Registry(
    "packaged public set", "fedmuscle_flwr.data.catalog"
)


def private(
    name: str, info: DatasetInfo, description: str, *sources: Source
) -> Callable[[PrivateLoader], PrivateLoader]:
    """Register the decorated loader as labelled dataset ``name``."""

    def register(load: PrivateLoader) -> PrivateLoader:
        PRIVATE.add(name, PrivateEntry(info, description, load, sources))
        return load

    return register


def public(
    name: str, modalities: frozenset[Modality], description: str, *sources: Source
) -> Callable[[PublicLoader], PublicLoader]:
    """Register the decorated loader as public set ``name`` (its whole pool)."""

    def register(load: PublicLoader) -> PublicLoader:
        PUBLIC.add(name, PublicEntry(description, modalities, load, sources))
        return load

    return register
