"""Bad files: one clear line naming the file or folder, never a traceback's worth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data.decode import DataFileError
from fedmuscle_flwr.data.registry import load_private, load_public
from tests import datafiles


def load(dataset: str, **options: Any) -> Any:
    return load_private(DataSpec(dataset=dataset, options=options))


def one_line(exc: pytest.ExceptionInfo[BaseException], *parts: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError) as exc:
        load("imagefolder", root=str(tmp_path / "nope"))
    one_line(exc, str(tmp_path / "nope"), "no such folder")


def test_empty_class_folder(tmp_path: Path) -> None:
    root = datafiles.image_folder(tmp_path / "r", test_per_class=0)
    (root / "train" / "empty").mkdir()
    with pytest.raises(DataFileError) as exc:
        load("imagefolder", root=str(root))
    one_line(exc, str(root / "train" / "empty"), "empty class folder")


@pytest.mark.parametrize("content", [b"", b"not a png at all"])
def test_bad_image_is_refused_by_default_and_named(
    tmp_path: Path, content: bytes
) -> None:
    # Prepare
    root = datafiles.image_folder(tmp_path / "r", test_per_class=0)
    bad = root / "train" / "dog" / "broken.png"
    bad.write_bytes(content)
    # Execute / Assert: refused, naming the file and the option
    with pytest.raises(DataFileError) as exc:
        load("imagefolder", root=str(root))
    one_line(exc, str(bad), "on-bad")


def test_bad_image_is_skipped_and_counted_on_request(tmp_path: Path) -> None:
    root = datafiles.image_folder(tmp_path / "r", test_per_class=0)
    (root / "train" / "dog" / "broken.png").write_bytes(b"")
    data = load("imagefolder", root=str(root), **{"on-bad": "skip"})
    assert len(data.train) + len(data.test) == 18  # 19 files, 1 skipped


def test_truncated_image_fails_at_decode_naming_the_file(tmp_path: Path) -> None:
    # Prepare: a valid header, the pixel data cut off
    root = datafiles.image_folder(tmp_path / "r", per_class=2, test_per_class=1)
    victim = root / "train" / "cat" / "000.png"
    big = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    datafiles.write_png(victim, big)
    victim.write_bytes(victim.read_bytes()[:200])
    data = load("imagefolder", root=str(root), **{"image-size": 8})
    row = [str(p) for p in data.train.x.paths].index(str(victim))  # type: ignore[union-attr]
    # Execute / Assert
    with pytest.raises(DataFileError) as exc:
        data.train.batch(np.array([row]))
    one_line(exc, str(victim), "cannot decode")


def test_misspelt_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rooot"):
        load("imagefolder", rooot=str(tmp_path))


def test_missing_column(tmp_path: Path) -> None:
    path = datafiles.text_table(tmp_path / "t.csv")
    with pytest.raises(DataFileError) as exc:
        load("csv", path=str(path), **{"label-column": "topic"})
    one_line(exc, str(path), "missing column 'topic'", "columns: ['label', 'text']")


def test_label_outside_the_given_label_space(tmp_path: Path) -> None:
    path = datafiles.text_table(tmp_path / "t.csv")
    with pytest.raises(DataFileError) as exc:
        load("csv", path=str(path), classes=["food", "music"])
    one_line(exc, "'sports'", "not in the label space")


def test_test_class_outside_the_train_classes(tmp_path: Path) -> None:
    root = datafiles.image_folder(tmp_path / "r", test_per_class=1)
    datafiles.write_png(root / "test" / "wolf" / "0.png", datafiles.pixels(2, 0))
    with pytest.raises(DataFileError) as exc:
        load("imagefolder", root=str(root))
    one_line(exc, "'wolf'", "not in the label space")


def test_masks_without_matching_stems(tmp_path: Path) -> None:
    root = tmp_path / "seg"
    datafiles.write_png(root / "images" / "a.png", datafiles.pixels(0, 0))
    datafiles.write_png(root / "masks" / "b.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataFileError) as exc:
        load("image-masks", root=str(root))
    one_line(exc, "a.png", "no mask of the same stem")


def test_npz_without_y_and_with_pickled_objects(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(DataFileError) as exc:
        load("npz", path=str(tmp_path / "a.npz"))
    one_line(exc, "missing array 'y'")
    np.savez(tmp_path / "b.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(DataFileError) as exc:
        load("npz", path=str(tmp_path / "b.npz"))
    one_line(exc, "without pickle")


def test_unknown_dataset_names_the_formats() -> None:
    with pytest.raises(ValueError) as exc:
        load_private(DataSpec(dataset="imagefolders"))
    one_line(exc, "imagefolder", "module:callable")


def test_plugin_that_cannot_be_imported() -> None:
    with pytest.raises(ValueError) as exc:
        load_private(DataSpec(dataset="no_such_module_xyz:make"))
    one_line(exc, "cannot import module")


def test_public_file_sets_refuse_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataFileError) as exc:
        load_public("imagefolder", 5, {"root": str(tmp_path / "none")})
    one_line(exc, "no such folder")
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(DataFileError) as exc:
        load_public("textfile", 1, {"path": str(tmp_path / "blank.txt")})
    one_line(exc, "no non-blank lines")
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "captions.csv").write_text("file,caption\nx.png,a cat\n")
    with pytest.raises(DataFileError) as exc:
        load_public("image-captions", 1, {"root": str(tmp_path / "pairs")})
    one_line(exc, "x.png")
    with pytest.raises(ValueError, match="takes no options"):
        load_public("digits-public", 5, {"root": "x"})
