"""Memory of this process and all its descendants, sampled in a background thread.

:class:`TreeMemory` reads ``/proc/<pid>/smaps_rollup`` of the bench process and
every descendant (Ray's GCS, raylet, dashboard agents, idle workers and the
ClientApp actors are all descendants of the process that called ``ray.init``)
every ``every_s`` seconds and keeps the peak of the sums:

* **PSS** (proportional set size): each shared page is split between the
  processes that map it, so the sum counts the torch/flwr libraries and Ray's
  shared-memory object store once. This is the machine's memory the tree uses.
* **RSS**: each process's resident pages in full; the sum counts shared pages
  once per process (an upper bound, what ``top`` would add up).

Per role (driver = this process, actor = ``ClientAppActor``, ray = the rest)
the peak PSS of one process is kept too, and the CPU seconds (user + system,
last value seen per process) summed per role. Linux only; Ray's ``/dev/shm`` files
count only where a process maps them. A sample is not atomic across processes
(a process may start or end between two reads), and peaks shorter than the
interval are missed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

_KB = 1024


def _descendants(pid: int) -> list[int]:
    from fedmuscle_flwr.launch.deploy.processes import descendants

    return descendants(pid)


def _rollup(pid: int) -> tuple[int, int] | None:
    """(rss, pss) bytes of ``pid``, or None if it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    rss = pss = 0
    for line in text.splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) * _KB
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) * _KB
    return rss, pss


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "driver"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "ray"
    return "actor" if b"ClientAppActor" in cmd else "ray"


class TreeMemory:
    """Peak PSS/RSS sums of the process tree while the ``with`` block runs."""

    def __init__(self, every_s: float = 1.0, root: int | None = None) -> None:
        self.every_s, self.root = every_s, os.getpid() if root is None else root
        self.peak_pss = self.peak_rss = 0
        self.peak_processes = self.peak_actors = self.samples = 0
        self.peak_one: dict[str, int] = {}
        self._cpu: dict[int, tuple[str, float]] = {}  # pid -> (role, CPU s)
        self._driver0 = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        rss = pss = actors = processes = 0
        for pid in [self.root, *_descendants(self.root)]:
            got = _rollup(pid)
            if got is None:
                continue
            role = _role(pid, self.root)
            processes += 1
            actors += role == "actor"
            rss, pss = rss + got[0], pss + got[1]
            self.peak_one[role] = max(self.peak_one.get(role, 0), got[1])
            self._cpu[pid] = (role, _cpu_s(pid))
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, processes)
        self.peak_actors = max(self.peak_actors, actors)
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> TreeMemory:
        self._driver0 = _cpu_s(self.root)  # the driver's CPU before the block
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def as_dict(self) -> dict[str, Any]:
        mb = 1 / 2**20
        cpu: dict[str, float] = {}
        for pid, (role, seconds) in self._cpu.items():
            seconds -= self._driver0 if pid == self.root else 0.0
            cpu[role] = round(cpu.get(role, 0.0) + seconds, 1)
        return {
            "peak_pss_mb": round(self.peak_pss * mb, 1),
            "peak_rss_sum_mb": round(self.peak_rss * mb, 1),
            "peak_pss_one_mb": {k: round(v * mb, 1) for k, v in self.peak_one.items()},
            "peak_processes": self.peak_processes,
            "peak_actors": self.peak_actors,
            "cpu_s_by_role": cpu,
            "samples": self.samples,
            "every_s": self.every_s,
        }
