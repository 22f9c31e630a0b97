"""Public sets read from files: order, modalities, bad files skipped on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fedmuscle_flwr.config.profile import PublicSource
from fedmuscle_flwr.config.run import PublicConfig
from fedmuscle_flwr.data.decode import image_files
from fedmuscle_flwr.data.fingerprint import public_fingerprint
from fedmuscle_flwr.data.public_files import PUBLIC_FORMATS, FilePublicData
from fedmuscle_flwr.data.registry import (
    check_public,
    load_participant_public,
    load_public,
)
from tests import datafiles


def test_imagefolder_order_is_the_sorted_relative_file_names(tmp_path: Path) -> None:
    # Prepare
    root = datafiles.public_folder(tmp_path / "pub", n=12)
    # Execute
    pool = load_public("imagefolder", 12, {"root": str(root)})
    order = np.random.default_rng(0).permutation(12)
    # Assert: sample k is file order[k] of the sorted listing
    files = image_files(root)
    assert [p.relative_to(root).as_posix() for p in files][:2] == [
        "part0/0000.png",
        "part0/0002.png",
    ]
    expected = np.asarray([np.asarray(Image.open(files[i])) for i in order[:3]])
    assert np.array_equal(pool.batch(np.arange(3), "image"), expected)


def test_renamed_file_changes_the_order_and_the_fingerprint(tmp_path: Path) -> None:
    root = datafiles.public_folder(tmp_path / "pub", n=10)
    before = public_fingerprint(load_public("imagefolder", 10, {"root": str(root)}))
    (root / "part0" / "0000.png").rename(root / "part1" / "zzzz.png")
    after = public_fingerprint(load_public("imagefolder", 10, {"root": str(root)}))
    assert before != after


def test_textfile_and_image_captions(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "lines.txt").write_text("a red fox\n\nthe blue sea\nan old tree\n")
    root = datafiles.public_folder(tmp_path / "pairs", n=4)
    rows = [f"part{i % 2}/{i:04d}.png,caption {i}" for i in (3, 0, 2, 1)]
    (root / "captions.csv").write_text("file,caption\n" + "\n".join(rows) + "\n")
    # Execute
    text = load_public("textfile", 3, {"path": str(tmp_path / "lines.txt")})
    pairs = load_public("image-captions", 4, {"root": str(root)})
    # Assert: blank lines skipped; captions stay with their images
    assert sorted(text.batch(np.arange(3), "text")) == [
        "a red fox",
        "an old tree",
        "the blue sea",
    ]  # type: ignore[type-var]
    assert pairs.modalities == frozenset({"image", "text"})
    captions = pairs.batch(np.arange(4), "text")
    images = pairs.batch(np.arange(4), "image")
    for caption, image in zip(captions, images, strict=True):
        i = int(str(caption).split()[-1])
        source = root / f"part{i % 2}" / f"{i:04d}.png"
        assert np.array_equal(image, np.asarray(Image.open(source)))
    check_public("image-captions", 4, {"c": "text", "d": "image"}, {"root": str(root)})


def test_unreadable_public_image_is_skipped_on_request(tmp_path: Path) -> None:
    root = datafiles.public_folder(tmp_path / "pub", n=6)
    (root / "part0" / "bad.png").write_bytes(b"")
    pub = load_public("imagefolder", 6, {"root": str(root), "on-bad": "skip"})
    assert len(pub) == 6


def test_a_participant_reads_its_own_copy_when_its_profile_names_one(
    tmp_path: Path,
) -> None:
    # Prepare: the server's packaged set, this client's copy as files
    pool = load_public("digits-public", 1797)
    order = np.argsort(np.random.default_rng(0).permutation(1797))
    for i, image in enumerate(pool.batch(order, "image")):
        Image.fromarray(image).save(tmp_path / f"{i:05d}.png")
    run = PublicConfig(dataset="digits-public", size=100)
    own = PublicSource(dataset="imagefolder", options={"root": str(tmp_path)})
    # Execute
    server_copy = load_participant_public(run)
    client_copy = load_participant_public(run, own)
    # Assert
    assert client_copy.origin.startswith("imagefolder")
    assert public_fingerprint(client_copy) == public_fingerprint(server_copy)


def test_the_three_public_layouts_and_their_modalities() -> None:
    assert {n: m for n, (m, _) in PUBLIC_FORMATS.items()} == {
        "imagefolder": frozenset({"image"}),
        "textfile": frozenset({"text"}),
        "image-captions": frozenset({"image", "text"}),
    }
    texts = FilePublicData("t", "a file", texts=["x", "y"])
    assert texts.subset(np.array([1])).batch(np.array([0]), "text") == ["y"]
