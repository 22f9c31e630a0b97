"""``fedmuscle data check`` and ``data export`` through the console-script entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import typer

from fedmuscle_flwr.cli import data as data_commands
from fedmuscle_flwr.cli import main
from fedmuscle_flwr.config.profile import DataSpec
from fedmuscle_flwr.data.fingerprint import public_fingerprint
from fedmuscle_flwr.data.registry import load_private, load_public
from tests import datafiles


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["fedmuscle", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out + out.err


def profile(tmp_path: Path, root: Path, public: Path | None = None) -> Path:
    text = (
        'name = "clinic"\n[model]\nbackbone = "small-cnn"\npretrained = false\n'
        '[task]\nkind = "classification"\n'
        f'[data]\ndataset = "imagefolder"\noptions = {{ root = "{root}" }}\n'
    )
    if public is not None:
        text += (
            f'[public]\ndataset = "imagefolder"\noptions = {{ root = "{public}" }}\n'
        )
    path = tmp_path / "clinic.toml"
    path.write_text(text)
    return path


def test_export_then_check_describes_a_client_and_its_public_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: export a client share and the public set, as the tutorial does
    share, public = tmp_path / "share", tmp_path / "public"
    code, text = run_cli(
        monkeypatch, capsys, "data", "export", "digits", "--out", str(share),
        "--num-partitions", "2", "--index", "1", "--max-test", "40",
    )  # fmt: skip
    assert code == 0, text
    code, text = run_cli(
        monkeypatch, capsys, "data", "export", "digits-public", "--out", str(public)
    )
    assert code == 0 and "1797 public samples" in text, text
    preset = tmp_path / "server.toml"
    preset.write_text(
        f'[public]\ndataset = "imagefolder"\noptions = {{ root = "{public}" }}\n'
        "size = 300\n"
    )
    # Execute
    code, text = run_cli(
        monkeypatch, capsys, "data", "check", "--profile",
        str(profile(tmp_path, share)), "--preset", str(preset),
    )  # fmt: skip
    # Assert: the exported share is the packaged share; the fingerprint is the
    # packaged public set's
    assert code == 0, text
    packaged = load_private(
        DataSpec.model_validate(
            {"dataset": "digits", "max-test": 40,
             "partition": {"num-partitions": 2, "index": 1}}
        )
    )  # fmt: skip
    assert f"train: {len(packaged.train)} samples" in text
    assert "test: 40 samples" in text
    assert "label space (10): ['0', '1'," in text
    assert "decoded as L 28x28" in text and "sizes 28x28" in text
    assert public_fingerprint(load_public("digits-public", 300)) in text
    assert "Traceback" not in text
    exported = load_private(DataSpec(dataset="imagefolder", options={"root": share}))
    order = np.argsort(exported.train.y, kind="stable")
    assert sorted(exported.train.y.tolist()) == sorted(packaged.train.y.tolist())
    assert exported.train.batch(order[:1]).shape == (1, 28, 28)


def test_check_of_a_text_table_reports_lengths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = datafiles.text_table(tmp_path / "t.csv", n=12)
    path = profile(tmp_path, tmp_path)
    path.write_text(
        'name = "notes"\n[model]\nbackbone = "text-cnn"\n[task]\n'
        'kind = "text-classification"\n'
        f'[data]\ndataset = "csv"\noptions = {{ path = "{table}" }}\n'
    )
    code, text = run_cli(
        monkeypatch, capsys, "data", "check", "--profile", str(path), "--preset", "tiny"
    )
    assert code == 0, text
    assert "text lengths (characters): min 24, median 25, max 26" in text
    assert "warning: 10 train samples, fewer than train.batch-size=32" in text


@pytest.mark.parametrize(
    ("setting", "fragments"),
    [
        ("data.options.root=/no/such/folder", ["/no/such/folder", "no such folder"]),
        ("task.kind=segmentation", ["task.kind", "'mask'", "'class'"]),
        ("data.options.colour=1", ["colour", "data.options of 'imagefolder'"]),
    ],
)
def test_check_answers_bad_input_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    fragments: list[str],
) -> None:
    root = datafiles.image_folder(tmp_path / "img", per_class=3, test_per_class=1)
    code, text = run_cli(
        monkeypatch, capsys, "data", "check", "--profile",
        str(profile(tmp_path, root)), "--set", setting,
    )  # fmt: skip
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2 and len(lines) <= 2, text
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_export_refuses_a_non_empty_folder_and_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    code, text = run_cli(
        monkeypatch,
        capsys,
        "data",
        "export",
        "digits",
        "--out",
        str(tmp_path / "taken"),
    )
    assert code == 2 and "not empty" in text
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    code, text = run_cli(
        monkeypatch, capsys, "data", "export", "nope", "--out", str(tmp_path / "new")
    )
    assert code == 2 and "'nope'" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_register_adds_check_and_export() -> None:
    app = typer.Typer()
    data_commands.register(app)
    names = {c.name for c in app.registered_commands}
    assert names == {"check", "export"}
