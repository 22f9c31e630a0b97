"""How the server process holds its memory through the rounds (no Flower).

At 1,000 clients a round allocates and frees about 1.3 GB of message bytes:
each client's ~1 MB relay payload (built, sent, dropped) and its 0.3 MB upload
(kept for the round). Two defaults of the process make that churn cost more
than the work itself (docs/performance.md §8b.5):

* **glibc gives freed memory back too eagerly.** Its dynamic thresholds serve a
  1 MB buffer from the heap but trim the heap's top as soon as ~2 MB there are
  free, so every chunk of relay payloads lands on fresh pages that the kernel
  must fault in and zero (~0.2 s of a round at 1,000 clients).
  :func:`keep_freed_memory` fixes the thresholds instead: buffers up to
  :data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD`
  of free memory stays there for the next ones. The peak is what the round
  needs at once either way; memory is returned when more than that is free.
  An operator's own ``MALLOC_*`` settings are left as they are.
* **The cyclic collector walks everything.** Each full pass visits every
  tracked object, and start-up leaves ~250,000 of them (Python, torch, Flower,
  the public set) that live as long as the process. :func:`start_up_frozen`
  moves them out of the collector's way for the rounds (``gc.freeze``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import platform
from collections.abc import Iterator

log = logging.getLogger(__name__)

#: buffers up to this size come from the heap, not from their own mapping
#: (glibc's largest allowed value on 64-bit)
MMAP_THRESHOLD = 32 * 2**20
#: free memory the heap keeps at its top before giving it back
TRIM_THRESHOLD = 256 * 2**20
#: glibc's ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: the environment variables by which an operator sets them instead
MALLOC_ENV = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


def keep_freed_memory() -> bool:
    """Fixed allocator thresholds for this process (glibc); True if set.

    Nothing is changed (False) on another C library, or when the
    environment sets any of :data:`MALLOC_ENV` (the operator's choice: e.g.
    ``MALLOC_MMAP_THRESHOLD_=131072`` returns every large buffer at once, for
    the smallest footprint at more CPU).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    chosen = [name for name in MALLOC_ENV if name in os.environ]
    if chosen:
        log.debug("allocator thresholds left to the environment (%s)", chosen)
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc has it
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done


@contextlib.contextmanager
def start_up_frozen() -> Iterator[None]:
    """Keep what exists before round 1 out of the collector's full passes.

    A full pass then visits what the rounds made (a few ms) instead of the
    whole process (0.1-0.14 s at 1,000 clients). Garbage is collected first,
    so only live objects are frozen; they go back when the block ends. A
    process that froze objects itself (a pre-forking host) is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
