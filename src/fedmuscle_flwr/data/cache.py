"""The on-disk cache: its location and versioned ``.npz`` array bundles.

The cache holds prepared sources (unpacked npm / ``.deb`` files, torchvision
downloads) and derived datasets (mosaics, segmentation canvases, decoded PNGs) as
uncompressed ``.npz`` files named ``<key>-v<version>.npz``: bump the version when a
builder changes and stale files are simply ignored.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import platformdirs

logger = logging.getLogger(__name__)

#: Environment variable overriding the cache folder.
ENV_CACHE = "FEDMUSCLE_CACHE"
#: ``platformdirs`` application name of the default cache folder.
APP_NAME = "fedmuscle-flwr"

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path:
    """Return the cache folder: ``$FEDMUSCLE_CACHE`` or the app's user cache dir.

    Returns
    -------
    Path
        The folder (not created here).
    """
    override = os.environ.get(ENV_CACHE, "")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME))


def npz_path(key: str, version: str) -> Path:
    """Where the bundle ``key`` at ``version`` is stored."""
    return cache_dir() / "derived" / f"{key}-v{version}.npz"


def cached_arrays(key: str, version: str, build: Callable[[], Arrays]) -> Arrays:
    """Load the bundle ``key``/``version`` from the cache, building it if absent.

    Parameters
    ----------
    key : str
        Bundle name (a dataset name).
    version : str
        Version of the builder; part of the file name.
    build : Callable[[], Arrays]
        Makes the arrays (no object arrays: they are loaded without pickle).

    Returns
    -------
    Arrays
        The arrays, read fully into memory.
    """
    path = npz_path(key, version)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as bundle:
                return {name: bundle[name] for name in bundle.files}
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable cache file %s: %s", path, exc)
    arrays = build()
    _save(path, arrays)
    return arrays


def _save(path: Path, arrays: Arrays) -> None:
    """Write ``arrays`` atomically; a read-only cache only logs a warning."""
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        tmp.chmod(0o644)
        os.replace(tmp, path)
        logger.info("cached %s", path)
    except OSError as exc:
        logger.warning("could not write cache file %s: %s", path, exc)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
