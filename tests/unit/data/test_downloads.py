"""Tests of fedmuscle_flwr.data.downloads without network: where, and the clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmuscle_flwr.data import downloads
from fedmuscle_flwr.data.registry import dataset_info


def test_the_torchvision_root_follows_the_cache_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDMUSCLE_CACHE", str(tmp_path))
    assert downloads.torchvision_root() == tmp_path / "torchvision"
    source = downloads.torchvision_source("cifar10")
    assert source.kind == "torchvision" and source.package == "CIFAR10"
    assert source.system_dir() == tmp_path / "torchvision"


def test_missing_files_without_download_say_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: an empty cache, downloads off
    monkeypatch.setenv("FEDMUSCLE_CACHE", str(tmp_path))
    info = dataset_info("cifar10")
    # Execute / Assert
    with pytest.raises(downloads.DataUnavailableError) as err:
        downloads.load_torchvision("cifar10", info, download=False)
    message = str(err.value)
    assert "FEDMUSCLE_ALLOW_DOWNLOAD=1" in message
    assert "fedmuscle data prepare cifar10" in message
    assert not any((tmp_path / "torchvision").glob("**/*.tar.gz"))


def test_every_torchvision_name_has_a_class() -> None:
    import torchvision.datasets as tv

    for name, cls in downloads.TORCHVISION_CLASSES.items():
        assert hasattr(tv, cls), name
