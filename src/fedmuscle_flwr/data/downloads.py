"""Online fallback: torchvision's downloads into ``cache_dir()/torchvision``.

Used when ``FEDMUSCLE_ALLOW_DOWNLOAD=1`` (or by ``fedmuscle data prepare``) for
datasets with no offline package: MNIST, CIFAR-10/100, and Fashion-MNIST where
the Debian package is absent. Files already downloaded are used without network.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import numpy as np

from fedmuscle_flwr.data.base import DatasetInfo, LabelledData, Split
from fedmuscle_flwr.data.cache import cache_dir
from fedmuscle_flwr.data.sources import (
    ENV_ALLOW_DOWNLOAD,
    DataUnavailableError,
    Source,
    allow_download,
)

logger = logging.getLogger(__name__)

#: dataset name -> torchvision class name
TORCHVISION_CLASSES: dict[str, str] = {
    "fashion-mnist": "FashionMNIST",
    "mnist": "MNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}


def torchvision_root() -> Path:
    """Where torchvision datasets are downloaded."""
    return cache_dir() / "torchvision"


def torchvision_source(name: str) -> Source:
    """Describe torchvision dataset ``name`` as a :class:`Source`."""
    return Source(
        key=name,
        kind="torchvision",
        package=TORCHVISION_CLASSES[name],
        env_var="",
        files=(),
        system_dir=torchvision_root,
    )


@cache
def _fetch(class_name: str, root: Path, download: bool) -> tuple[Split, Split]:
    from torchvision import datasets as tv  # torchvision import is slow: lazy

    splits = []
    for train in (True, False):
        ds = getattr(tv, class_name)(str(root), train=train, download=download)
        data = ds.data if isinstance(ds.data, np.ndarray) else ds.data.numpy()
        targets = np.asarray(ds.targets, dtype=np.int64)
        splits.append(Split(np.ascontiguousarray(data, dtype=np.uint8), targets))
    return splits[0], splits[1]


def load_torchvision(
    name: str, info: DatasetInfo, download: bool | None = None
) -> LabelledData:
    """Load torchvision dataset ``name`` (downloading only when allowed).

    Parameters
    ----------
    name : str
        A key of :data:`TORCHVISION_CLASSES`.
    info : DatasetInfo
        The dataset's metadata.
    download : bool | None
        Download if missing; ``None`` follows ``FEDMUSCLE_ALLOW_DOWNLOAD``.

    Returns
    -------
    LabelledData
        uint8 images (N, 28, 28) or (N, 32, 32, 3) and int64 labels.

    Raises
    ------
    DataUnavailableError
        When the files are absent and downloading is off or fails.
    """
    allowed = allow_download() if download is None else download
    root = torchvision_root()
    try:
        train, test = _fetch(TORCHVISION_CLASSES[name], root, allowed)
    except (RuntimeError, OSError) as exc:
        how = (
            f"Download failed ({exc})."
            if allowed
            else f"Set {ENV_ALLOW_DOWNLOAD}=1 to download it into {root}, or run "
            f"`fedmuscle data prepare {name}` while online."
        )
        raise DataUnavailableError(name, how) from exc
    return LabelledData(info, train, test)


def download(name: str) -> Path:
    """Download torchvision dataset ``name`` (both splits) into the cache."""
    root = torchvision_root()
    try:
        _fetch(TORCHVISION_CLASSES[name], root, True)
    except (RuntimeError, OSError) as exc:
        raise DataUnavailableError(name, f"Download failed ({exc}).") from exc
    return root
