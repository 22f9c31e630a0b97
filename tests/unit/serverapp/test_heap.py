"""The server's allocator thresholds and frozen start-up (serverapp/heap.py).

The allocator tests run in child processes: the thresholds are process-wide
and cannot be undone, and page faults are counted per process.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from fedmuscle_flwr.serverapp.heap import MALLOC_ENV, start_up_frozen

SRC = str(Path(__file__).parents[3] / "src")
glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or sys.platform != "linux",
    reason="glibc's mallopt and Linux page-fault counts",
)

#: allocate and drop 64 buffers of 1 MB (written: each page touched) five
#: times, as the relay does with a chunk of payloads; faults after the first
CHURN = """
import json, resource, sys
from fedmuscle_flwr.serverapp.heap import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    chunk = [b"x" * (1 << 20) for _ in range(64)]
    del chunk
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _churn(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        env={**clean, "PYTHONPATH": SRC, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@glibc
def test_kept_memory_is_reused_instead_of_faulted_in_again():
    default = _churn("default")
    kept = _churn("keep")
    assert kept["kept"] is True
    pages = 64 * (1 << 20) // 4096  # a chunk's pages
    # glibc's own thresholds give the chunk's pages back and fault them in
    # again every time; with the fixed ones the heap keeps and reuses them
    assert min(default["faults"][1:]) > pages // 2
    assert max(kept["faults"][1:]) < pages // 20


@glibc
def test_an_operators_malloc_settings_are_left_alone():
    got = _churn("keep", MALLOC_MMAP_THRESHOLD_="131072")
    assert got["kept"] is False
    pages = 64 * (1 << 20) // 4096
    assert min(got["faults"][1:]) > pages // 2  # every buffer its own mapping


def test_start_up_is_frozen_for_the_block_only():
    assert gc.get_freeze_count() == 0
    alive = [[] for _ in range(1000)]  # lists: tracked by the collector
    with start_up_frozen():
        assert gc.get_freeze_count() >= len(alive)
        gc.collect()  # a full pass inside the block leaves them frozen
        assert gc.get_freeze_count() >= len(alive)
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_objects_itself_is_left_as_it_is():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with start_up_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # not unfrozen by us
    finally:
        gc.unfreeze()
