"""Sets torchvision downloads (not offline): MNIST, CIFAR-10, CIFAR-100."""

from __future__ import annotations

from functools import partial

from fedmuscle_flwr.data import images
from fedmuscle_flwr.data.base import DatasetInfo
from fedmuscle_flwr.data.catalog.base import PRIVATE, PrivateEntry
from fedmuscle_flwr.data.downloads import load_torchvision, torchvision_source

_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
            "ship", "truck")  # fmt: skip

_ONLINE = (
    (DatasetInfo("mnist", "image", "class", 10, images.DIGIT_CLASSES),
     "MNIST 28x28, 60k/10k"),
    (DatasetInfo("cifar10", "image", "class", 10, _CIFAR10),
     "CIFAR-10 32x32 RGB, 50k/10k"),
    (DatasetInfo("cifar100", "image", "class", 100), "CIFAR-100 32x32 RGB, 50k/10k"),
)  # fmt: skip

for _info, _description in _ONLINE:
    PRIVATE.add(
        _info.name,
        PrivateEntry(
            info=_info,
            description=f"{_description} (torchvision download; not offline)",
            load=partial(load_torchvision, _info.name, _info),
            sources=(torchvision_source(_info.name),),
        ),
    )
