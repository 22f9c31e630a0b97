"""The server's app bundle (FAB), pinned to the client's installed package (no Flower).

Flower ships every run's app to the SuperNodes as a FAB (a zip of the app's
``pyproject.toml`` and ``*.py`` files). Flower's stock ClientApp process
installs it and imports its ``clientapp`` component from it: code the server
chose, running next to the client's private data and its SuperNode key.
``fedmuscle client`` never does that: its resident ClientApp runs the package
installed on the client machine. :func:`check_bundle` is what it accepts of a
bundle: the FedMuscle app of the very version installed here, naming this
package's ClientApp, and any file of the package it carries byte-identical to
the installed one (a source-checkout FAB carries ``src/fedmuscle_flwr/...``).
Anything else is refused with one line naming what differs.
"""

from __future__ import annotations

import hashlib
import io
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath

#: the distribution and the ClientApp a bundle must name
DISTRIBUTION = "fedmuscle-flwr"
CLIENTAPP_REF = "fedmuscle_flwr.clientapp.app:app"
PACKAGE = "fedmuscle_flwr"
#: the installed package's folder (this file is <package>/clientapp/bundle.py)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: the largest bundle read (Flower's own FAB limit is 10 MB)
MAX_BUNDLE_BYTES = 64 * 2**20


class BundleRefused(ValueError):
    """The server's app bundle is not this client's installed FedMuscle app."""


def installed_version() -> str:
    """The installed ``fedmuscle-flwr`` version."""
    return metadata.version(DISTRIBUTION)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_file(name: str) -> Path | None:
    """The installed file a bundle path stands for, if it is one of the package."""
    parts = PurePosixPath(name).parts
    if PACKAGE not in parts:
        return None
    inner = parts[parts.index(PACKAGE) + 1 :]
    return PACKAGE_DIR.joinpath(*inner)


def check_bundle(content: bytes, version: str | None = None) -> None:
    """Refuse a bundle that is not this client's installed FedMuscle app.

    Raises
    ------
    BundleRefused
        One line: the bundle's name, version or ClientApp differs, or one of
        the package's files in it differs from the installed file.
    """
    if len(content) > MAX_BUNDLE_BYTES:
        raise BundleRefused(f"app bundle of {len(content)} bytes refused (too large)")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as fab:
            files = {i.filename: fab.read(i) for i in fab.infolist() if not i.is_dir()}
        config = tomllib.loads(files["pyproject.toml"].decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise BundleRefused(
            "the app bundle is not a Flower app (no pyproject.toml)"
        ) from None
    project = config.get("project", {})
    components = config.get("tool", {}).get("flwr", {}).get("app", {})
    clientapp = components.get("components", {}).get("clientapp", "")
    mine = version or installed_version()
    name, theirs = project.get("name", ""), project.get("version", "")
    if name != DISTRIBUTION or theirs != mine:
        raise BundleRefused(
            f"the server's app bundle is {name!r} {theirs!r}; this client runs only "
            f"its installed {DISTRIBUTION} {mine}"
        )
    if clientapp != CLIENTAPP_REF:
        raise BundleRefused(
            f"the server's app bundle names ClientApp {clientapp!r}; this client "
            f"runs only {CLIENTAPP_REF}"
        )
    for path, data in sorted(files.items()):
        local = _package_file(path)
        if local is None or not path.endswith(".py"):
            continue
        if not local.is_file() or _digest(local.read_bytes()) != _digest(data):
            raise BundleRefused(
                f"the server's app bundle carries {path}, which differs from this "
                f"client's installed {DISTRIBUTION} {mine}"
            )
