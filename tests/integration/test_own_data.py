"""Clients on their own files, in a real loopback deployment and in simulation (issue 22).

* deployment: ``fedmuscle server`` and three ``fedmuscle client`` processes (Flower
  1.39, gRPC on loopback); two clinics train on their own image folders (one reads
  the public set from its own copy of the files) and finish the run; a third
  clinic, whose copy of the public set differs in one image, is refused when the
  run starts: one line naming both fingerprints and where its files came from;
* simulation: the in-process engine with an image-folder client and a CSV client.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from fedmuscle_flwr.launch.deploy.processes import free_port
from tests import datafiles
from tests.integration.test_deployment import Procs, procs  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration]

RUN_TIMEOUT_S = 600
PUBLIC = 48
#: run settings of both tests: a small public set, batches that fit it
RUN_SET = [
    "--set", "public.dataset=imagefolder", "--set", f"public.size={PUBLIC}",
    "--set", "muscle.batch-size=16", "--set", "muscle.partners=1",
    "--set", "eval.probe-size=16", "--set", "federation.min-clients=2",
]  # fmt: skip


def profile(path: Path, name: str, data: str, public: Path | None = None) -> Path:
    """A client profile TOML naming its own folder (and its own public copy)."""
    text = (
        f'name = "{name}"\n[model]\nbackbone = "small-cnn"\npretrained = false\n'
        f'[task]\nkind = "classification"\n[data]\n{data}\nworkers = 1\n'
    )
    if public is not None:
        text += (
            f'[public]\ndataset = "imagefolder"\noptions = {{ root = "{public}" }}\n'
        )
    path.write_text(text)
    return path


def image_data(root: Path) -> str:
    return f'dataset = "imagefolder"\noptions = {{ root = "{root}" }}'


def metrics_rows(runs: Path) -> list[dict[str, object]]:
    """The rows of the run's metrics (``fedmuscle run``: its fedmuscle run)."""
    found = sorted(runs.rglob("metrics.jsonl"))
    if len(found) > 1:
        found = [p for p in found if p.parent.name == "fedmuscle"]
    (path,) = found
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_clinics_train_on_their_own_folders_and_another_public_set_is_refused(
    tmp_path: Path,
    procs: Procs,  # noqa: F811 (the fixture)
) -> None:
    # Prepare: two clinics' folders; the public folder and two copies of it, one
    # with a single image changed
    a = datafiles.image_folder(tmp_path / "clinic-a", per_class=12, test_per_class=4)
    b = datafiles.image_folder(
        tmp_path / "clinic-b", per_class=12, test_per_class=4, offset=100
    )
    public = datafiles.public_folder(tmp_path / "public", n=64)
    copy = Path(shutil.copytree(public, tmp_path / "public-copy"))
    other = Path(shutil.copytree(public, tmp_path / "public-other"))
    changed = datafiles.pixels(2, 999)
    datafiles.write_png(other / "part0" / "0000.png", changed)
    profiles = {
        # a deployed client reads public files only where its own profile says
        # (issue 23, policy.server-paths): clinic-a names the server's folder
        "clinic-a": profile(tmp_path / "a.toml", "clinic-a", image_data(a), public),
        "clinic-b": profile(tmp_path / "b.toml", "clinic-b", image_data(b), copy),
        "clinic-c": profile(tmp_path / "c.toml", "clinic-c", image_data(a), other),
    }
    fleet, control = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    # Execute: the server, then the three clinics
    server = procs.start("server", [
        "server", "--preset", "tiny", *RUN_SET,
        "--set", f"public.options.root={public}",
        "--address", fleet, "--control-address", control, "--insecure",
        "--output", str(tmp_path / "runs"), "--timeout", str(RUN_TIMEOUT_S),
    ])  # fmt: skip
    for name, path in profiles.items():
        procs.start(name, [
            "client", "--server", fleet, "--profile", str(path), "--insecure",
            "--state-dir", str(tmp_path / f"state-{name}"), "--exit-after-run",
        ])  # fmt: skip
    # Assert: the run completes with the two clinics whose public set is the server's
    assert server.wait(RUN_TIMEOUT_S) == 0, procs.log("server")[-4000:]
    rows = metrics_rows(tmp_path / "runs")
    failed = [r for r in rows if isinstance(r.get("failed"), str)]  # incident rows
    assert {r["client"] for r in rows if r not in failed} == {
        "*",
        "clinic-a",
        "clinic-b",
    }
    evaluated = [r for r in rows if r["client"] != "*" and "accuracy" in r]
    assert {r["client"] for r in evaluated} == {"clinic-a", "clinic-b"}
    # the refused node's messages failed, each with the refusal as its reason
    assert failed and all("client 'clinic-c': public set differs" in str(r["failed"])
                          for r in failed), failed[:2]  # fmt: skip
    # Assert: the third clinic refused in one line naming both fingerprints and its files
    deadline = time.monotonic() + 60
    while "public set differs" not in procs.log("clinic-c"):
        assert time.monotonic() < deadline, procs.log("clinic-c")[-4000:]
        time.sleep(1)
    lines = [
        ln for ln in procs.log("clinic-c").splitlines() if "public set differs" in ln
    ]
    fingerprints = {w.strip(",;()") for w in lines[0].split() if w.startswith("pub1-")}
    assert len(fingerprints) == 2, lines
    assert f"imagefolder {other}" in lines[0]
    assert "Traceback" not in procs.log("clinic-c")
    assert "REFUSED: client 'clinic-c': public set differs" in lines[0]
    assert len(lines) == 1, lines  # one line, not one per refused message
    server_log = procs.log("server")
    assert "client 'clinic-c': public set differs" in server_log


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_simulation_with_an_image_folder_and_a_csv_client(tmp_path: Path) -> None:
    """The text client needs captions: the public set is image-caption pairs."""
    from fedmuscle_flwr.cli import main  # in-process: the console script's entry

    # Prepare
    a = datafiles.image_folder(tmp_path / "a", per_class=12, test_per_class=4)
    table = datafiles.text_table(tmp_path / "notes.csv", n=60)
    public = datafiles.public_folder(tmp_path / "public", n=64)
    rows = [f"part{i % 2}/{i:04d}.png,picture {i} of a {('cat', 'dog')[i % 2]}"
            for i in range(64)]  # fmt: skip
    (public / "captions.csv").write_text("file,caption\n" + "\n".join(rows) + "\n")
    profile(tmp_path / "a.toml", "clinic-a", image_data(a))
    (tmp_path / "notes.toml").write_text(
        'name = "notes"\n[model]\nbackbone = "text-cnn"\n[task]\n'
        'kind = "text-classification"\n'
        f'[data]\ndataset = "csv"\noptions = {{ path = "{table}" }}\n'
    )
    roster = tmp_path / "roster.toml"
    roster.write_text(
        f'[[clients]]\nprofile = "{tmp_path / "a.toml"}"\n'
        f'[[clients]]\nprofile = "{tmp_path / "notes.toml"}"\n'
    )
    import sys

    argv = ["fedmuscle", "run", "--engine", "inprocess", "--preset", "tiny", *RUN_SET,
            "--set", f"public.options.root={public}", "--set", "num-rounds=1",
            "--set", "public.dataset=image-captions",
            "--set", "eval.every=1", "--set", f"federation.roster={roster}",
            "--output", str(tmp_path / "runs")]  # fmt: skip
    # Execute
    old, sys.argv = sys.argv, argv
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        sys.argv = old
    # Assert
    assert exit_.value.code in (0, None)
    rows = metrics_rows(tmp_path / "runs")
    assert {"clinic-a", "notes"} <= {r["client"] for r in rows}
    assert np.isfinite([r["accuracy"] for r in rows if "accuracy" in r]).all()


def _masks(root: Path) -> Path:
    """``root/{train,test}/{images,masks}/<stem>.png`` (two object classes)."""
    for split, n in (("train", 12), ("test", 4)):
        for i in range(n):
            img = datafiles.pixels(i % 3, i, size=16)
            datafiles.write_png(root / split / "images" / f"s{i}.png", img)
            mask = np.zeros((16, 16), np.uint8)
            mask[4:10, 4:10] = 1 + i % 2
            datafiles.write_png(root / split / "masks" / f"s{i}.png", mask)
    return root


def _image_labels(root: Path) -> Path:
    """Images plus a labels CSV (multi-label, ``|``-separated)."""
    rows = []
    for i in range(24):
        datafiles.write_png(root / "img" / f"{i}.png", datafiles.pixels(i % 3, i))
        rows.append(f"img/{i}.png,{'cat|dog' if i % 2 else 'fox'}")
    (root / "labels.csv").write_text("file,labels\n" + "\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_every_file_format_trains_in_simulation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client per format of issue 22 trains, aligns and evaluates one round."""
    from fedmuscle_flwr.cli import main

    # Prepare: npz, a saved datasets folder, a plugin Dataset, image-labels
    # (multi-label), image-masks (segmentation), JSONL and Parquet text tables;
    # the public set is image-caption pairs read from files
    plugin = datafiles.plugin_module(tmp_path / "plugins")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "plugins"))
    image = 'backbone = "small-cnn"\npretrained = false'
    text = 'backbone = "text-cnn"'
    clients = {
        "arrays": (image, "classification", "npz",
                   {"path": datafiles.npz_file(tmp_path / "a.npz")}),
        "hf": (image, "classification", "hf-disk",
               {"path": datafiles.hf_folder(tmp_path / "hf")}),
        "plugin": (image, "classification", plugin, {"n": 20}),
        "tags": (image, "multilabel", "image-labels",
                 {"root": _image_labels(tmp_path / "ml"), "test-fraction": 0.25}),
        "seg": ('backbone = "small-cnn"\npretrained = false\n'
                "options = { image_size = 16, channels = 1 }",
                "segmentation", "image-masks", {"root": _masks(tmp_path / "seg")}),
        "notes-jsonl": (text, "text-classification", "jsonl",
                        {"path": datafiles.text_table(tmp_path / "n.jsonl", n=60),
                         "test-fraction": 0.2}),
        "notes-parquet": (text, "text-classification", "parquet",
                          {"path": datafiles.text_table(tmp_path / "n.parquet", n=60),
                           "test-fraction": 0.2}),
    }  # fmt: skip
    roster = tmp_path / "roster.toml"
    lines = []
    for name, (model, kind, dataset, options) in clients.items():
        opts = ", ".join(f'{k} = "{v}"' if isinstance(v, (str, Path)) else f"{k} = {v}"
                         for k, v in options.items())  # fmt: skip
        (tmp_path / f"{name}.toml").write_text(
            f'name = "{name}"\n[model]\n{model}\n[task]\nkind = "{kind}"\n'
            f'[data]\ndataset = "{dataset}"\noptions = {{ {opts} }}\nworkers = 0\n'
        )
        lines.append(f'[[clients]]\nprofile = "{tmp_path / f"{name}.toml"}"\n')
    roster.write_text("".join(lines))
    public = datafiles.public_folder(tmp_path / "public", n=64)
    rows = [f"part{i % 2}/{i:04d}.png,picture {i} of a {('cat', 'dog')[i % 2]}"
            for i in range(64)]  # fmt: skip
    (public / "captions.csv").write_text("file,caption\n" + "\n".join(rows) + "\n")
    import sys

    argv = ["fedmuscle", "run", "--engine", "inprocess", "--preset", "tiny", *RUN_SET,
            "--set", f"public.options.root={public}", "--set", "num-rounds=1",
            "--set", "public.dataset=image-captions", "--set", "eval.every=1",
            "--set", f"federation.roster={roster}",
            "--set", f"federation.min-clients={len(clients)}",
            "--output", str(tmp_path / "runs")]  # fmt: skip
    # Execute
    old, sys.argv = sys.argv, argv
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        sys.argv = old
    # Assert: every client has a finite metric after round 1 and took part in
    # the alignment (its align-loss recorded)
    assert exit_.value.code in (0, None)
    rows_ = metrics_rows(tmp_path / "runs")
    final = {r["client"]: r for r in rows_ if r.get("round") == 1 and "metric" in r}
    assert set(final) == set(clients), sorted(final)
    assert all(np.isfinite(float(r["metric"])) for r in final.values())  # type: ignore[arg-type]
    aligned = {r["client"] for r in rows_ if "align-loss" in r}
    assert aligned == set(clients), sorted(aligned)
