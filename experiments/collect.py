"""Arrange sweep.sh output as experiment folders that `fedmuscle report` reads.

    python experiments/collect.py SWEEP_DIR [...] --dest experiments/results/issue5

A sweep run tagged ``<group>.s<seed>.<algorithm>`` (experiments/issue5/*.txt) lives in
``SWEEP_DIR/<tag>/<stamp>-<preset>/<algorithm>/``; it is copied (without its checkpoint)
to ``DEST/<group>/seed-<seed>/<algorithm>/`` with its log. ``--as GROUP.ALGORITHM=
TARGET:LABEL`` files those runs under another folder and label instead (the sweeps next
to setup1's runs); with ``--only-renamed`` the other runs are left out.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

TAG = re.compile(r"^(?P<group>[\w-]+)\.s(?P<seed>\d+)\.(?P<algorithm>[\w-]+)$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--as", dest="renames", action="append", default=[])
    parser.add_argument("--only-renamed", action="store_true")
    args = parser.parse_args()
    renames = dict(r.split("=", 1) for r in args.renames)
    for sweep in args.sweeps:
        for run_dir in sorted(p for p in sweep.iterdir() if p.is_dir()):
            match = TAG.match(run_dir.name)
            if match is None:
                continue
            group, seed, algorithm = match.group("group", "seed", "algorithm")
            key = f"{group}.{algorithm}"
            if args.only_renamed and key not in renames:
                continue
            found = list(run_dir.glob(f"*/{algorithm}/summary.json"))
            if not found:
                print(f"{run_dir.name}: unfinished, skipped")
                continue
            target, label = group, algorithm
            if key in renames:
                target, label = renames[key].split(":", 1)
            out = args.dest / target / f"seed-{seed}" / label
            out.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", "metrics.jsonl", "summary.json"):
                shutil.copy2(found[0].parent / name, out / name)
            log = sweep / f"{run_dir.name}.log"
            if log.is_file():
                shutil.copy2(log, out / "run.log")


if __name__ == "__main__":
    main()
