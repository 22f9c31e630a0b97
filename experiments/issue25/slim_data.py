"""Fashion-MNIST and WordNet slimmed to the rows issue 25's runs read (GPU carry).

    python experiments/issue25/slim_data.py OUT_DIR SEEDS ROSTER...

Writes OUT_DIR/fashion-mnist/ and OUT_DIR/wordnet/. SEEDS: comma list of run seeds
(the partition seed follows the run seed, so every seed reads other rows). Fashion
images no client of ROSTER... reads under any of SEEDS (private partitions, mosaic
source items, test items) are set to zero, which gzip stores almost for free; labels
are copied unchanged. WordNet synset lines whose gloss no client reads keep their
place and supersense but lose their words and gloss (the draws depend only on the
labels and the row count). The script then checks that every client of every roster
and seed loads exactly the same data from OUT_DIR as from the full files (a fresh
cache), and exits non-zero otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fedmuscle_flwr.config.files import load_roster
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.data import registry
from fedmuscle_flwr.data.derived import mosaic_bundle
from fedmuscle_flwr.data.images import read_idx
from fedmuscle_flwr.data.sources import FASHION_MNIST, WORDNET

_SPEC = importlib.util.spec_from_file_location(
    "slim_fashion", Path(__file__).parents[1] / "issue16" / "slim_fashion.py"
)
assert _SPEC is not None and _SPEC.loader is not None
slim_fashion = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(slim_fashion)


def profiles(seeds: list[int], rosters: list[str]) -> list[ClientProfile]:
    """Every client of every roster, resolved for every run seed."""
    return [p.for_run(s) for r in rosters for p in load_roster(r) for s in seeds]


def fingerprint(seeds: list[int], rosters: list[str]) -> str:
    """One hash of every client's private data (train and evaluated split)."""
    h = hashlib.sha256()
    for profile in profiles(seeds, rosters):
        data = registry.load_private(profile.data)
        for split in (data.train, data.test):
            h.update(np.ascontiguousarray(split.x).tobytes())
            h.update(np.ascontiguousarray(split.y).tobytes())
    return h.hexdigest()


def _eval_rows(spec, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Rows of the evaluated split: the test items, or the validation carve's."""
    if not spec.validation:
        return slim_fashion.test_rows(spec, n)
    return np.zeros(0, dtype=np.int64)  # validation rows are train rows (kept below)


def slim_wordnet(out: Path, used: set[str]) -> None:
    """``data.noun`` and ``data.verb`` with unread glosses blanked; adj/adv empty.

    A blanked line reads ``<offset> <lex_filenum> | `` (the same row, the same
    supersense, an empty gloss); the licence header is dropped (the parser skips it).
    No client of these rosters reads the adjective or adverb files.
    """
    src = WORDNET.require("wordnet-noun")
    out.mkdir(parents=True, exist_ok=True)
    for pos in ("noun", "verb"):
        lines, kept = [], 0
        for line in (src / f"data.{pos}").read_text(encoding="utf-8").splitlines():
            if line.startswith("  "):
                continue
            head, _, gloss = line.partition(" | ")
            if gloss.strip() in used:
                lines.append(line)
                kept += 1
            else:
                fields = head.split(" ", 2)
                lines.append(f"{fields[0]} {fields[1]} | ")
        (out / f"data.{pos}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"data.{pos}: kept {kept} of {len(lines)} glosses")
    for pos in ("adj", "adv"):
        (out / f"data.{pos}").write_text("", encoding="utf-8")


def used_texts(seeds: list[int], rosters: list[str]) -> set[str]:
    """Every text a client of the rosters reads under the seeds (train, evaluated)."""
    used: set[str] = set()
    for profile in profiles(seeds, rosters):
        if profile.data.dataset.startswith("wordnet-"):
            data = registry.load_private(profile.data)
            used.update(data.train.x)
            used.update(data.test.x)
    return used


def main() -> None:
    if sys.argv[1] == "--fingerprint":
        print(fingerprint([int(s) for s in sys.argv[2].split(",")], sys.argv[3:]))
        return
    out, seeds, rosters = (
        Path(sys.argv[1]),
        [int(s) for s in sys.argv[2].split(",")],
        sys.argv[3:],
    )
    src = FASHION_MNIST.require("fashion-mnist")
    n_train = len(read_idx(src / "train-labels-idx1-ubyte.gz"))
    n_test = len(read_idx(src / "t10k-labels-idx1-ubyte.gz"))
    keep, keep_test = np.zeros(n_train, bool), np.zeros(n_test, bool)
    bundle = mosaic_bundle()
    for profile in profiles(seeds, rosters):
        spec = profile.data
        if spec.dataset == "fashion-mnist":
            keep[
                slim_fashion.train_rows(spec.model_copy(update={"validation": 0.0}))
            ] = True
            keep_test[_eval_rows(spec, n_test)] = True
        elif spec.dataset == "fashion-mnist-mosaic":
            rows = slim_fashion.train_rows(spec.model_copy(update={"validation": 0.0}))
            keep[bundle["train_items"][rows].ravel()] = True
            test = _eval_rows(spec, len(bundle["test_items"]))
            keep_test[bundle["test_items"][test].ravel()] = True
    root, out = out, out / "fashion-mnist"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy2(src / name, out / name)
    slim_fashion.slim(src, out, "train-images-idx3-ubyte.gz", keep)
    slim_fashion.slim(src, out, "t10k-images-idx3-ubyte.gz", keep_test)
    slim_wordnet(root / "wordnet", used_texts(seeds, rosters))
    with tempfile.TemporaryDirectory() as cache:
        env = {
            **os.environ,
            "FEDMUSCLE_FASHION_MNIST_DIR": str(out),
            "FEDMUSCLE_WORDNET_DIR": str(root / "wordnet"),
            "FEDMUSCLE_CACHE": cache,
        }
        cmd = [sys.executable, __file__, "--fingerprint", sys.argv[2], *rosters]
        slimmed = subprocess.run(
            cmd, env=env, check=True, capture_output=True, text=True
        )
    if slimmed.stdout.strip() != fingerprint(seeds, rosters):
        raise SystemExit("the slim data differ from the originals for some client")
    print(f"every client's data is unchanged under seeds {seeds}")


if __name__ == "__main__":
    main()
