"""``data export`` writes what the file formats read back: same samples, same labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data.base import PrivateData, Split
from fedmuscle_flwr.data.catalog import PRIVATE
from fedmuscle_flwr.data.decode import DataFileError
from fedmuscle_flwr.data.describe import describe_private, describe_public
from fedmuscle_flwr.data.export import export_private, export_public
from fedmuscle_flwr.data.fingerprint import public_fingerprint, sample_hash
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.registry import load_private, load_public


def _small(name: str, n: int = 60) -> PrivateData:
    spec = DataSpec.model_validate({"dataset": name, "max-train": n, "max-test": 4})
    return load_private(spec)


def _same_samples(a: Split, b: Split, names_a: tuple, names_b: tuple) -> None:
    """Equal multisets of (input, target) pairs (file order differs from row order)."""

    def key(split: Split, names: tuple) -> list[tuple[str, str]]:
        x = split.batch(np.arange(len(split)))

        def label(t: np.ndarray) -> str:
            if t.ndim == 0:  # a class id
                return str(names[int(t)])
            if t.ndim == 1:  # multi-hot: the set of names
                return "|".join(sorted(names[k] for k in np.flatnonzero(t)))
            return t.tobytes().hex()  # a mask

        y = [label(t) for t in split.y]
        return sorted((sample_hash(s), y[i]) for i, s in enumerate(x))

    assert key(a, names_a) == key(b, names_b)


@pytest.mark.parametrize(
    ("name", "fmt", "extra"),
    [
        ("digits", "imagefolder", {}),
        ("fashion-mnist-mosaic", "image-labels", {"split-column": "split"}),
        ("fashion-mnist-seg", "image-masks", {}),
        ("wordnet-verb", "csv", {}),
    ],
)
def test_export_round_trip(tmp_path: Path, name: str, fmt: str, extra: dict) -> None:
    # Prepare: enough rows for every class (the label space comes from the data)
    data = _small(name)
    out = tmp_path / name
    # Execute
    written = export_private(data, out)
    options = {"root": str(out), **extra}
    if fmt == "csv":
        options = {"train": str(out / "train.csv"), "test": str(out / "test.csv")}
    if fmt in ("csv", "image-masks"):  # keep the label space (a rare class is absent)
        options["classes"] = list(data.info.class_names)
    back = load_private(DataSpec(dataset=fmt, options=options))
    # Assert
    assert written == fmt
    assert back.info.target_kind == data.info.target_kind
    assert back.info.num_classes == data.info.num_classes  # every class present
    if fmt == "imagefolder":  # names from the folders, sorted
        assert list(back.info.class_names) == sorted(PRIVATE[name].info.class_names)
    if fmt == "csv":
        assert [str(s) for s in back.train.x] == [str(s) for s in data.train.x]
    names = (back.info.class_names, data.info.class_names)
    if fmt == "imagefolder":  # folder names: '/' in a class name becomes '-'
        names = (back.info.class_names, back.info.class_names)
    _same_samples(back.train, data.train, *names)
    _same_samples(back.test, data.test, *names)
    assert any("train:" in line for line in describe_private(back))


def test_public_pairs_round_trip_keeps_the_fingerprint(tmp_path: Path) -> None:
    # Prepare: a small image-caption pool
    rng = np.random.default_rng(0)
    pool = InMemoryPublicData(
        "pairs", rng.integers(0, 256, (9, 6, 6, 3), dtype=np.uint8),
        [f"a picture number {i}" for i in range(9)],
    )  # fmt: skip
    # Execute
    assert export_public(pool, tmp_path / "p") == "image-captions"
    back = load_public("image-captions", 9, {"root": str(tmp_path / "p")})
    packaged = pool.subset(np.random.default_rng(0).permutation(9))
    # Assert
    assert public_fingerprint(back) == public_fingerprint(packaged)
    assert "fingerprint: " + public_fingerprint(back) in describe_public(back)


def test_export_of_text_public_set(tmp_path: Path) -> None:
    pool = InMemoryPublicData("t", texts=["one", "two\nlines", "three"])
    assert export_public(pool, tmp_path / "t") == "textfile"
    text = (tmp_path / "t" / "public.txt").read_text().splitlines()
    assert text == ["one", "two lines", "three"]


def test_failed_export_leaves_no_folder(tmp_path: Path) -> None:
    data = _small("digits")
    bad = PrivateData(data.info, Split(data.train.x, data.train.y + 100), data.test)
    with pytest.raises(IndexError):
        export_private(bad, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(DataFileError, match="not empty"):
        export_private(data, tmp_path / "full")
