"""The app bundle pin (issue 23): the client accepts only a FAB of its own installed
FedMuscle app; every other bundle is refused with one line. FABs built by Flower's
own builder (``flwr.cli.build.build_fab_from_disk``)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk

import fedmuscle_flwr
from fedmuscle_flwr.clientapp.bundle import (
    CLIENTAPP_REF,
    BundleRefused,
    check_bundle,
    installed_version,
)

PKG = Path(fedmuscle_flwr.__file__).parent


def app(folder: Path, *, name="fedmuscle-flwr", version=None, clientapp=CLIENTAPP_REF,
        files: dict[str, str] | None = None) -> bytes:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version or installed_version()}"\n\n'
        '[tool.flwr.app]\npublisher = "fedmuscle"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "anything.the.server.wants:app"\n'
        f'clientapp = "{clientapp}"\n\n[tool.flwr.app.config]\npreset = "default"\n'
    )
    for rel, text in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return build_fab_from_disk(folder)


def test_the_clients_own_app_is_accepted(tmp_path):
    check_bundle(app(tmp_path / "minimal"))  # pyproject only (installed packages)
    same = (PKG / "clientapp" / "app.py").read_text()
    check_bundle(app(tmp_path / "checkout",
                     files={"src/fedmuscle_flwr/clientapp/app.py": same,
                            "extras/anything.py": "x = 1\n"}))  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "hostile-app"}, "'hostile-app'"),
        ({"version": "0.0.1-evil"}, "'0.0.1-evil'"),
        ({"clientapp": "evil:app"}, "names ClientApp 'evil:app'"),
        ({"files": {"src/fedmuscle_flwr/clientapp/app.py": "import os\n"}},
         "carries src/fedmuscle_flwr/clientapp/app.py"),
        ({"files": {"fedmuscle_flwr/extra.py": "import os\n"}},
         "carries fedmuscle_flwr/extra.py"),
    ],
)  # fmt: skip
def test_every_other_bundle_is_refused_naming_the_difference(tmp_path, kwargs, needle):
    with pytest.raises(BundleRefused, match="this client") as err:
        check_bundle(app(tmp_path / "fab", **kwargs))
    assert needle in str(err.value)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleRefused, match="not a Flower app"):
        check_bundle(b"PK\x03\x04 not really a zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("README.md", "no pyproject")
    with pytest.raises(BundleRefused, match="not a Flower app"):
        check_bundle(buf.getvalue())
    with pytest.raises(BundleRefused, match="too large"):
        check_bundle(b"x" * (64 * 2**20 + 1))
