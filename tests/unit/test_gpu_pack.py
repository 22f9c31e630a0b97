"""experiments/gpu_pack.sh + gpu_stash.sh: weights split over device commands come back whole.

The device tool carries 64 MiB per command; the packs travel one piece per command and the
stash unpacks a pack only once every piece has arrived (docs/results.md §4c).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A stand-in checkout holding the two scripts (they work relative to their folder)."""
    co = tmp_path / "co"
    (co / "experiments").mkdir(parents=True)
    for name in ("gpu_pack.sh", "gpu_stash.sh"):
        shutil.copy(REPO / "experiments" / name, co / "experiments" / name)
    (co / ".gitignore").write_text("/.gpu-pack\n")
    return co


def _stage(root: Path) -> dict[str, bytes]:
    rng = random.Random(7)
    files = {
        ".gpu-bundle/wheels/a.whl": rng.randbytes(2_500_000),
        ".gpu-assets-9/site/pkg/weights.bin": rng.randbytes(1_200_000),
        ".gpu-assets-9/cache/derived/x.npz": b"small",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _stash(co: Path, tmp: Path, pieces: list[Path]) -> str:
    """One device command: only ``pieces`` were carried this time."""
    shutil.rmtree(co / ".gpu-pack", ignore_errors=True)
    (co / ".gpu-pack").mkdir()
    for piece in pieces:
        shutil.copytree(piece, co / ".gpu-pack" / piece.name)
    env = dict(
        os.environ, FM_PACK_STASH=str(tmp / "stash"), FM_PACK_ROOT=str(tmp / "root")
    )
    done = subprocess.run(
        ["bash", str(co / "experiments" / "gpu_stash.sh")],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def test_pieces_over_several_commands_unpack_once_whole(
    checkout: Path, tmp_path: Path
) -> None:
    stage = tmp_path / "stage"
    files = _stage(stage)
    subprocess.run(
        ["bash", str(checkout / "experiments" / "gpu_pack.sh"), "T", "1", str(stage)],
        check=True, capture_output=True,
    )  # fmt: skip
    saved = tmp_path / "pieces"
    shutil.move(checkout / ".gpu-pack", saved)
    pieces = sorted(saved.iterdir())
    assert [p.name for p in pieces] == [f"T-{i:02d}" for i in range(len(pieces))]
    assert len(pieces) >= 4  # 3.7 MB of random bytes in 1 MiB pieces
    assert all(f.stat().st_size <= 1 << 20 for p in pieces for f in p.iterdir())

    # every piece but one: nothing is unpacked, nothing linked
    for piece in pieces[:-2] + pieces[-1:]:
        out = _stash(checkout, tmp_path, [piece])
        assert "pieces here" in out and "unpacked" not in out
    assert not (checkout / ".gpu-bundle").exists()

    out = _stash(checkout, tmp_path, [pieces[-2]])  # the missing one comes last
    assert "pack T: unpacked" in out
    for rel, data in files.items():
        assert (checkout / rel).read_bytes() == data
    assert (checkout / ".gpu-assets-9").is_symlink()

    # a later command finds it unpacked and leaves it alone
    (tmp_path / "root" / ".gpu-bundle" / "wheels" / "marker").write_text("kept")
    out = _stash(checkout, tmp_path, [])
    assert "unpacked" not in out
    assert (checkout / ".gpu-bundle" / "wheels" / "marker").read_text() == "kept"


def test_pack_refuses_a_checkout_that_would_commit_the_pieces(
    checkout: Path, tmp_path: Path
) -> None:
    (checkout / ".gitignore").write_text("")
    stage = tmp_path / "stage"
    _stage(stage)
    done = subprocess.run(
        ["bash", str(checkout / "experiments" / "gpu_pack.sh"), "T", "1", str(stage)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and ".gitignore" in done.stderr
    assert not (checkout / ".gpu-pack").exists()
