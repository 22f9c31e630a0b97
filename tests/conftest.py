import os
from pathlib import Path

import pytest

os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: tests marked ``docker`` build images and run the compose demo (minutes, GBs of disk):
#: they run only when asked for with ``-m docker`` (docker/README.md, "Test")
DOCKER_SKIP = pytest.mark.skip(
    reason="compose tests run only when asked: pytest -m docker"
)


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip the ``docker`` tests unless the ``-m`` expression names that marker."""
    if "docker" in (config.getoption("markexpr", "") or "").replace("not docker", ""):
        return
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.add_marker(DOCKER_SKIP)


@pytest.fixture
def tiny_roster(tmp_path: Path) -> Path:
    """Three small heterogeneous clients (3 architectures, 2 datasets, 2 task kinds)."""
    path = tmp_path / "tiny.toml"
    path.write_text(
        '[[clients]]\nprofile = "fmnist-cnn"\nset = { "data.max-train" = 160, "data.max-test" = 200 }\n'
        '[[clients]]\nprofile = "fmnist-vit"\nset = { "data.max-train" = 160, "data.max-test" = 200 }\n'
        '[[clients]]\nprofile = "mosaic-mlp"\nset = { "data.max-train" = 160, "data.max-test" = 200 }\n'
    )
    return path


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "client-state"
    monkeypatch.setenv("FEDMUSCLE_STATE_DIR", str(path))
    return path


def tiny_flat(roster: Path, out: Path, **extra):
    base = {
        "num-rounds": 2,
        "public.size": 400,
        "train.batch-size": 32,
        "muscle.steps": 8,
        "muscle.batch-size": 16,
        "muscle.dim": 32,
        "muscle.partners": 2,
        "muscle.lr": 3e-3,
        "eval.probe-size": 32,
        "federation.roster": str(roster),
        "federation.poll-s": 0.01,
        "output-dir": str(out),
        "device": "cpu",
    }
    return {**base, **extra}
