"""Write a Fashion-MNIST train-image file that keeps only the rows some roster uses.

    python experiments/issue16/slim_fashion.py OUT_DIR ROSTER...

The device tool carries 64 MiB per command (the session's checkout included); the full
train images are 26 MB gzipped. Rows no client of ROSTER... reads (private partitions,
mosaic source items) and that are not the public hold-out are set to zero, which gzip
stores almost for free. Labels and the test split are copied unchanged. The clients of
those rosters load exactly the same data from OUT_DIR (checked at the end).
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import numpy as np

from fedmuscle_flwr.config.files import load_roster
from fedmuscle_flwr.data import registry
from fedmuscle_flwr.data.derived import mosaic_bundle
from fedmuscle_flwr.data.images import FASHION_HELDOUT, read_idx
from fedmuscle_flwr.data.partitioning import subsample
from fedmuscle_flwr.data.sources import FASHION_MNIST


def train_rows(spec) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The dataset's train rows a client's data spec keeps (load_private's cut)."""
    p = spec.partition
    table = registry._table(
        spec.dataset, p.scheme, p.num_partitions, p.alpha, p.classes, p.seed
    )
    rows = table[p.index]
    if spec.per_class:
        rows = registry.per_class(
            rows, registry._primary(spec.dataset, "train"), spec.per_class, p.seed
        )
    return subsample(rows, spec.max_train, np.random.default_rng([p.seed, 1]))


def main() -> None:
    out = Path(sys.argv[1])
    src = FASHION_MNIST.require("fashion-mnist")
    images = read_idx(src / "train-images-idx3-ubyte.gz")
    keep = np.zeros(len(images), dtype=bool)
    keep[len(images) - FASHION_HELDOUT :] = True
    items = mosaic_bundle()["train_items"]
    profiles = [p for roster in sys.argv[2:] for p in load_roster(roster)]
    for profile in profiles:
        if profile.data.dataset == "fashion-mnist":
            keep[train_rows(profile.data)] = True
        elif profile.data.dataset == "fashion-mnist-mosaic":
            keep[items[train_rows(profile.data)].ravel()] = True
    out.mkdir(parents=True, exist_ok=True)
    for name in (
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        shutil.copy2(src / name, out / name)
    raw = gzip.decompress((src / "train-images-idx3-ubyte.gz").read_bytes())
    header, body = (
        raw[:16],
        np.frombuffer(raw[16:], dtype=np.uint8).reshape(images.shape).copy(),
    )
    body[~keep] = 0
    (out / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(header + body.tobytes(), 9)
    )
    print(f"kept {keep.sum()} of {len(keep)} train images")


if __name__ == "__main__":
    main()
