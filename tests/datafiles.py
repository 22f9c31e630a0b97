"""Real data files in a temporary folder, the way a user would have them.

Tiny PNGs through Pillow (a few pixels, a few per class), tables through
pyarrow, arrays through NumPy, a ``datasets`` folder through ``save_to_disk``.
The images of class ``c`` are distinguishable (mean brightness grows with c),
so a model can learn them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "fox")


def pixels(label: int, i: int, size: int = 8, rgb: bool = False) -> np.ndarray:
    """A distinguishable uint8 image of class ``label`` (sample ``i``)."""
    rng = np.random.default_rng([label, i])
    base = 40 + 80 * label
    img = np.clip(base + rng.integers(-30, 30, (size, size)), 0, 255).astype(np.uint8)
    return np.stack([img, img // 2, 255 - img], axis=-1) if rgb else img


def write_png(path: Path, array: np.ndarray) -> Path:
    """Save ``array`` as a PNG (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def image_folder(
    root: Path,
    per_class: int = 6,
    test_per_class: int = 2,
    classes: tuple[str, ...] = CLASSES,
    offset: int = 0,
) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png``."""
    for label, name in enumerate(classes):
        for i in range(per_class):
            write_png(root / "train" / name / f"{i:03d}.png", pixels(label, offset + i))
        for i in range(test_per_class):
            img = pixels(label, 1000 + offset + i)
            write_png(root / "test" / name / f"{i:03d}.png", img)
    return root


def public_folder(root: Path, n: int = 40, seed: int = 7) -> Path:
    """``n`` unlabelled PNGs under ``root`` (two subfolders)."""
    for i in range(n):
        img = np.random.default_rng([seed, i]).integers(0, 256, (8, 8), dtype=np.uint8)
        write_png(root / f"part{i % 2}" / f"{i:04d}.png", img)
    return root


def text_rows(n: int = 30) -> tuple[list[str], list[str]]:
    """Texts and labels: the label word appears in its texts."""
    labels = [("sports", "music", "food")[i % 3] for i in range(n)]
    texts = [f"item {i} about {label} things" for i, label in enumerate(labels)]
    return texts, labels


def text_table(path: Path, n: int = 30, multilabel: bool = False) -> Path:
    """A CSV, JSONL or Parquet file (by suffix) with ``text`` and ``label``."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    texts, labels = text_rows(n)
    cells: list[object] = [[lb, "news"] for lb in labels] if multilabel else labels
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        lines = [json.dumps({"text": t, "label": c}) for t, c in zip(texts, cells)]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".parquet":
        pq.write_table(pa.table({"text": texts, "label": cells}), path)
    else:
        pa_csv.write_csv(pa.table({"text": texts, "label": labels}), path)
    return path


def npz_file(path: Path, n: int = 24, with_test: bool = True) -> Path:
    """``x`` uint8 (n, 8, 8), ``y`` int (n,), ``class_names``; a test pair."""
    y = np.arange(n) % 3
    x = np.stack([pixels(int(c), i) for i, c in enumerate(y)])
    arrays = {"x": x, "y": y, "class_names": np.asarray(CLASSES)}
    if with_test:
        arrays.update(x_test=x[:6].copy(), y_test=y[:6].copy())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def hf_folder(path: Path, n: int = 24) -> Path:
    """A saved ``DatasetDict`` (train/test) with an Image and a ClassLabel column."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features
    from datasets import Image as HfImage

    features = Features({"image": HfImage(), "label": ClassLabel(names=list(CLASSES))})

    def part(count: int, offset: int) -> Dataset:
        labels = [i % 3 for i in range(count)]
        images = [Image.fromarray(pixels(c, offset + i)) for i, c in enumerate(labels)]
        return Dataset.from_dict({"image": images, "label": labels}, features=features)

    DatasetDict({"train": part(n, 0), "test": part(6, 500)}).save_to_disk(str(path))
    return path


PLUGIN_SOURCE = """
import numpy as np
from torch.utils.data import Dataset


class Shapes(Dataset):
    classes = ["dark", "light"]

    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset
        self.targets = [i % 2 for i in range(n)]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        value = 60 + 120 * self.targets[i] + (i + self.offset) % 7
        return np.full((6, 6), value, dtype=np.uint8), self.targets[i]


def make(n=20):
    return Shapes(n), Shapes(6, offset=100)
"""


def plugin_module(folder: Path, name: str = "my_shapes") -> str:
    """Write a module with a torch ``Dataset`` factory; returns ``module:callable``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(PLUGIN_SOURCE)
    return f"{name}:make"
