"""Write a Fashion-MNIST train-image file that keeps only the rows some roster uses.

    python experiments/issue16/slim_fashion.py OUT_DIR ROSTER...

The device tool carries 64 MiB per command (the session's checkout included); the full
train images are 26 MB gzipped. Rows no client of ROSTER... reads (private partitions,
mosaic source items) and that are not the public hold-out are set to zero, which gzip
stores almost for free; the same for the test images no client evaluates on. Labels
are copied unchanged. The clients of those rosters load exactly the same data from
OUT_DIR: the script checks it at the end, loading every client's private data and the
public set from both folders (a fresh cache for the slim one) and comparing them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fedmuscle_flwr.config.files import load_roster
from fedmuscle_flwr.data import pipeline, registry
from fedmuscle_flwr.data.derived import mosaic_bundle
from fedmuscle_flwr.data.images import FASHION_HELDOUT, read_idx
from fedmuscle_flwr.data.sources import FASHION_MNIST

#: the fair test's public set (server/default.toml)
PUBLIC_SET = "fashion-mnist-heldout"


def train_rows(spec) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The dataset's train rows a client's data spec keeps (load_private's cut)."""
    rows = pipeline.partition_rows(spec)
    return pipeline.subsample_rows(rows, pipeline.label_space(spec).train, spec)


def test_rows(spec, n_test: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The test rows a client's data spec evaluates on (load_private's cut)."""
    if spec.validation:
        raise SystemExit(f"{spec.dataset}: a validation carve has no test rows")
    labels = pipeline.label_space(spec).test
    if len(labels) != n_test:
        raise SystemExit(f"{spec.dataset}: {len(labels)} test rows, not {n_test}")
    return pipeline.evaluation_rows(np.zeros(0, np.int64), labels, spec).evaluated


def fingerprint(rosters: list[str]) -> str:
    """One hash of every client's private data and of the public set."""
    h = hashlib.sha256()
    for profile in [p for roster in rosters for p in load_roster(roster)]:
        data = registry.load_private(profile.data)
        for split in (data.train, data.test):
            h.update(np.ascontiguousarray(split.x).tobytes())
            h.update(np.ascontiguousarray(split.y).tobytes())
    public = registry.load_public(PUBLIC_SET, FASHION_HELDOUT)
    everything = np.arange(len(public))
    h.update(np.ascontiguousarray(public.batch(everything, "image")).tobytes())
    return h.hexdigest()


def slim(src: Path, out: Path, name: str, keep: np.ndarray) -> None:
    raw = gzip.decompress((src / name).read_bytes())
    header = raw[:16]
    body = np.frombuffer(raw[16:], dtype=np.uint8).reshape(len(keep), -1).copy()
    body[~keep] = 0
    (out / name).write_bytes(gzip.compress(header + body.tobytes(), 9))
    print(f"{name}: kept {keep.sum()} of {len(keep)} images")


def main() -> None:
    if sys.argv[1] == "--fingerprint":
        print(fingerprint(sys.argv[2:]))
        return
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
    n_test = len(read_idx(src / "t10k-images-idx3-ubyte.gz"))
    keep_test = np.zeros(n_test, dtype=bool)
    test_items = mosaic_bundle()["test_items"]
    for profile in profiles:
        if profile.data.dataset == "fashion-mnist":
            keep_test[test_rows(profile.data, n_test)] = True
        elif profile.data.dataset == "fashion-mnist-mosaic":
            rows = test_rows(profile.data, len(test_items))
            keep_test[test_items[rows].ravel()] = True
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy2(src / name, out / name)
    slim(src, out, "train-images-idx3-ubyte.gz", keep)
    slim(src, out, "t10k-images-idx3-ubyte.gz", keep_test)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "FEDMUSCLE_FASHION_MNIST_DIR": str(out)}
        env["FEDMUSCLE_CACHE"] = cache
        cmd = [sys.executable, __file__, "--fingerprint", *sys.argv[2:]]
        slimmed = subprocess.run(
            cmd, env=env, check=True, capture_output=True, text=True
        )
    if slimmed.stdout.strip() != fingerprint(sys.argv[2:]):
        raise SystemExit("the slim data differ from the originals for some client")
    print("every client's data and the public set are unchanged")


if __name__ == "__main__":
    main()
