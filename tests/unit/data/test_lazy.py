"""Lazily decoded samples: views without decoding, batches on demand, foreign samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fedmuscle_flwr.data.decode import scan_images
from fedmuscle_flwr.data.formats.samples import sample_converter, to_pil
from fedmuscle_flwr.data.lazy import ImageFiles, IndexedSamples
from fedmuscle_flwr.data.tables import read_table
from tests import datafiles


def test_image_files_subset_is_a_view_and_decode_resizes(tmp_path: Path) -> None:
    paths = [
        datafiles.write_png(
            tmp_path / f"{i}.png", datafiles.pixels(i % 3, i, size=6 + i)
        )
        for i in range(4)
    ]
    files = ImageFiles(paths, "L", (6, 6), "here", scan_images(paths))
    view = files.subset(np.array([3, 0]))
    assert view.paths == [paths[3], paths[0]] and view.stats is files.stats
    batch = view.decode(np.arange(2))
    assert batch.shape == (2, 6, 6) and batch.dtype == np.uint8
    assert np.array_equal(batch[1], datafiles.pixels(0, 0, size=6))
    with pytest.raises(IndexError):
        files.decode(np.array([4]))


def test_indexed_samples_convert_rows_and_refuse_ragged_batches() -> None:
    rows = [
        np.zeros((4, 4), np.uint8),
        np.ones((4, 4), np.uint8),
        np.ones((5, 4), np.uint8),
    ]
    samples = IndexedSamples(rows, lambda r: r, "image", "a list")
    assert samples.subset(np.array([1])).decode(np.array([0]))[0, 0, 0] == 1
    with pytest.raises(ValueError, match="differ in shape"):
        samples.decode(np.arange(3))


def test_sample_converter_fixes_mode_and_size_from_the_first_sample() -> None:
    first = torch.full((1, 5, 5), 0.5)  # a CHW float tensor in [0, 1]
    convert = sample_converter("image", first, 0, "plugin")
    rgb = Image.fromarray(np.full((7, 7, 3), 200, np.uint8))
    assert convert(first).shape == (5, 5) and convert(first)[0, 0] == 128
    assert convert(rgb).shape == (5, 5)  # RGB -> L, resized to the first's size
    assert to_pil(np.zeros((3, 4, 4), np.uint8), "x").size == (4, 4)
    assert sample_converter("text", "a", 0, "x")("b") == "b"


def test_read_table_json_records_and_mappings(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(
        '[{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]'
    )
    (tmp_path / "m.json").write_text('{"text": ["a"], "label": ["x"]}')
    assert read_table(tmp_path / "r.json", ("text", "label"))["label"] == ["x", "y"]
    assert read_table(tmp_path / "m.json", ("text",))["text"] == ["a"]
