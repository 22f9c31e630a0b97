"""Memory of a client's data pipeline on a large image folder (issue 22, item 2).

    python bench/data_memory.py --root /tmp/fm-bench-images --images 50000 --size 224

1. Writes ``--images`` JPEGs of ``--size`` px (RGB, 10 classes, smooth pictures
   plus noise) as ``root/train/<class>/*.jpg`` and 1,000 more under
   ``root/test`` (skipped if ``root`` already holds them).
2. In a fresh Python process: imports torch and the package, reads RSS; opens the
   folder as a client would (``data.dataset = "imagefolder"``: header scan,
   label space, partition, splits: paths only), reads RSS; then runs one epoch of
   the trainer's feed (``data.loader.iter_batches``, seeded batch order, DataLoader
   workers decoding whole batches) turning every batch into the model's input
   tensor at ``--size`` px (after a warm-up on a 4-image folder, so that the
   imports are not counted), while a sampler thread records, every 50 ms, the main
   process's RSS and the workers' USS (memory of their own, not shared with the
   main process).
3. Reports what the pipeline adds: (peak main RSS - RSS after imports) + peak sum
   of worker USS, against the decoded set's size in memory (N x S x S x 3 bytes).
4. ``--delete`` removes ``root`` afterwards.

Writes data_memory.json/.md to --out (default bench/results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

CLASSES = 10
TEST_IMAGES = 1000


_BASES: dict[tuple[int, int], np.ndarray] = {}


def _base(label: int, size: int) -> np.ndarray:
    """A smooth RGB picture per class (float), built once per process."""
    key = (label, size)
    if key not in _BASES:
        rng = np.random.default_rng(label)
        yy, xx = np.mgrid[0:size, 0:size] / size
        phase, freq = rng.random(3) * 6.28, 1 + label + rng.random(3)
        waves = [np.sin(freq[c] * (xx + yy * c) * 6.28 + phase[c]) for c in range(3)]
        _BASES[key] = np.stack(waves, -1) * 90 + 128  # (S, S, 3)
    return _BASES[key]


def _picture(args: tuple[Path, int, int, int]) -> None:
    """One distinct JPEG: the class picture shifted, plus a brightness offset."""
    from PIL import Image

    path, label, index, size = args
    rng = np.random.default_rng([label, index])
    shift = rng.integers(0, size, 2)
    img = np.roll(_base(label, size), tuple(shift), axis=(0, 1)) + rng.normal(0, 20)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)


def generate(root: Path, images: int, size: int, jobs: int) -> float:
    """Write the JPEGs (skipping existing files); returns seconds spent."""
    t0 = time.perf_counter()
    tasks = []
    for split, count in (("train", images), ("test", TEST_IMAGES)):
        for i in range(count):
            label = i % CLASSES
            path = root / split / f"class{label}" / f"{i:06d}.jpg"
            if not path.exists():
                tasks.append(
                    (path, label, i + (0 if split == "train" else 10**7), size)
                )
    for split in ("train", "test"):
        for label in range(CLASSES):
            (root / split / f"class{label}").mkdir(parents=True, exist_ok=True)
    with Pool(jobs) as pool:
        pool.map(_picture, tasks, chunksize=256)
    return time.perf_counter() - t0


MEASURE = r"""
import json, sys, threading, time
import numpy as np, psutil, torch
from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data.loader import iter_batches
from fedmuscle_flwr.data.registry import load_private
from fedmuscle_flwr.models.preprocess import images_to_tensor

root, warm_root = sys.argv[1], sys.argv[6]
size, batch, workers, limit = (int(a) for a in sys.argv[2:6])
torch.set_num_threads(1)
me = psutil.Process()
# warm-up on a tiny folder: every import and op the pipeline uses, so that RSS
# differences below are data, not code
warm = load_private(DataSpec(dataset="imagefolder", options={"root": warm_root}))
for b in iter_batches(warm.train, [np.arange(len(warm.train))], 0):
    images_to_tensor(b.x, 3, size)
del warm, b
rss0 = me.memory_info().rss
peak = {"main": rss0, "workers": 0, "total": 0}
stop = threading.Event()

def sample():
    while not stop.is_set():
        main = me.memory_info().rss
        uss = 0
        for child in me.children(recursive=True):
            try:
                uss += child.memory_full_info().uss
            except psutil.Error:
                pass
        peak["main"] = max(peak["main"], main)
        peak["workers"] = max(peak["workers"], uss)
        peak["total"] = max(peak["total"], main - rss0 + uss)
        time.sleep(0.05)

t0 = time.perf_counter()
data = load_private(DataSpec(dataset="imagefolder", options={"root": root}))
t_open = time.perf_counter() - t0
rss_open = me.memory_info().rss
thread = threading.Thread(target=sample, daemon=True)
thread.start()
order = np.random.default_rng(0).permutation(len(data.train))
batches = [order[i:i + batch] for i in range(0, len(order), batch)]
if limit:
    batches = batches[:limit]
t0, seen = time.perf_counter(), 0
for b in iter_batches(data.train, batches, workers):
    x = images_to_tensor(b.x, 3, size)  # (B, 3, S, S), what an image model gets
    seen += len(b)
t_epoch = time.perf_counter() - t0
stop.set(); thread.join()
print(json.dumps({
    "train": len(data.train), "test": len(data.test), "seen": seen,
    "rss_after_imports_mb": rss0 / 2**20, "rss_after_open_mb": rss_open / 2**20,
    "peak_main_rss_mb": peak["main"] / 2**20,
    "peak_workers_uss_mb": peak["workers"] / 2**20,
    "peak_added_mb": peak["total"] / 2**20, "open_s": t_open, "epoch_s": t_epoch,
}))
"""


def measure(root: Path, size: int, batch: int, workers: int, limit: int) -> dict:
    """Run the measurement in a fresh interpreter; its JSON line."""
    src = Path(__file__).resolve().parents[1] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    warm = root.parent / f".{root.name}-warm"
    for label in range(2):
        for i in range(2):
            (warm / f"class{label}").mkdir(parents=True, exist_ok=True)
            _picture((warm / f"class{label}" / f"{i}.jpg", label, i, 32))
    args = [str(root), str(size), str(batch), str(workers), str(limit), str(warm)]
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-batches", type=int, default=0, help="0 = one epoch")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--delete", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    gen_s = generate(args.root, args.images, args.size, args.jobs)
    disk = sum(p.stat().st_size for p in args.root.rglob("*.jpg"))
    result = measure(
        args.root, args.size, args.batch_size, args.workers, args.max_batches
    )
    result.update(
        images=args.images, size=args.size, batch_size=args.batch_size,
        workers=args.workers, generate_s=gen_s, disk_mb=disk / 2**20,
        decoded_in_memory_mb=args.images * args.size * args.size * 3 / 2**20,
        cpus=os.cpu_count(), load_avg=os.getloadavg()[0],
    )  # fmt: skip
    if args.delete:
        shutil.rmtree(args.root)
        shutil.rmtree(args.root.parent / f".{args.root.name}-warm", ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "data_memory"  # .json and .md
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v:.1f} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in result.items())  # fmt: skip
    stem.with_suffix(".md").write_text(
        "# Data pipeline memory (bench/data_memory.py)\n\n| quantity | value |\n"
        f"|---|---|\n{rows}\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
