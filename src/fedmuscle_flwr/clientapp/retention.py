"""How much client state stays on disk: the last K runs, at most N MiB (no Flower).

Every run leaves one folder of saved states under the client's state folder
(``clientapp/state.py``). A server that names a new run per message would
otherwise fill the client's disk. :func:`prune` keeps the ``keep_runs`` newest
run folders (by their newest file) and then drops the oldest ones until the
total fits ``max_bytes``; the folder of the run being served is never removed.
``fedmuscle client --prune`` runs it by hand; the client runs it before the
first save of every new run.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFolder:
    """One run's state folder: its path, newest mtime and size in bytes."""

    path: Path
    mtime_ns: int
    nbytes: int


def _lstat(path: Path) -> os.stat_result | None:
    """``lstat`` of ``path``, or None if it is gone since it was listed."""
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def run_folders(root: Path) -> list[RunFolder]:
    """The run folders under ``root``, newest first (symlinks are not followed).

    Other processes of the same client may write and prune here meanwhile (a
    simulation's Ray actors share one state folder): a file or folder gone
    between listing and ``stat`` (a ``.tmp`` renamed, a run pruned) is skipped.
    """
    out: list[RunFolder] = []
    if not root.is_dir():
        return out
    for folder in root.iterdir():
        info = _lstat(folder)
        if info is None or not stat.S_ISDIR(info.st_mode):
            continue
        try:
            names = list(folder.iterdir())
        except FileNotFoundError:
            continue
        stats = [s for s in map(_lstat, names) if s and stat.S_ISREG(s.st_mode)]
        newest = max((s.st_mtime_ns for s in stats), default=info.st_mtime_ns)
        out.append(RunFolder(folder, newest, sum(s.st_size for s in stats)))
    return sorted(out, key=lambda r: (r.mtime_ns, r.path.name), reverse=True)


def _remove(path: Path) -> None:
    """``rmtree`` that tolerates another process removing the same tree."""
    while path.exists():
        try:
            shutil.rmtree(path)
        except FileNotFoundError:  # a part went meanwhile: remove what is left
            continue


def state_bytes(root: Path) -> int:
    """Bytes of every run folder's files under ``root``."""
    return sum(r.nbytes for r in run_folders(root))


def prune(
    root: Path, keep_runs: int, max_bytes: float, current: str | None = None
) -> list[Path]:
    """Remove the oldest run folders beyond ``keep_runs`` or ``max_bytes``.

    Parameters
    ----------
    root : Path
        The client's state folder.
    keep_runs : int
        Run folders kept, newest first (the ``current`` one counts among them).
    max_bytes : float
        Total size the kept folders may have; older ones go first.
    current : str or None
        Folder name of the run being served: never removed.

    Returns
    -------
    list[Path]
        The removed folders, oldest last.
    """
    if keep_runs < 0:
        raise ValueError(f"keep_runs={keep_runs} must be >= 0")
    folders = run_folders(root)
    mine = [r for r in folders if r.path.name == current]
    others = [r for r in folders if r.path.name != current]
    kept, removed = list(mine), []
    total = sum(r.nbytes for r in mine)
    full = False
    for run in others:  # newest first; once one does not fit, older ones go too
        full = full or len(kept) >= keep_runs or total + run.nbytes > max_bytes
        if not full:
            kept.append(run)
            total += run.nbytes
        else:  # another process of this client may be removing it too
            _remove(run.path)
            removed.append(run.path)
    if removed:
        log.info(
            "client state: removed %d old run folder(s) under %s, kept %d",
            len(removed),
            root,
            len(kept),
        )
    return removed
