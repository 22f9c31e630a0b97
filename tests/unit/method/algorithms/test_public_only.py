"""The public-only control (issue 25): its loss against a brute-force reference, its
augmentations, and a round in which nobody receives anything from another client."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import ALGORITHMS
from fedmuscle_flwr.method.algorithms.public_only import (
    MIN_AREA,
    augment,
    crop_and_flip,
    drop_words,
    two_view_infonce,
)
from fedmuscle_flwr.method.phases import Phase
from fedmuscle_flwr.runs.metrics import SERVER_ROW
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.protocol import (
    ALIGN,
    PARTNERS,
    STEP_INDICES,
    Instruction,
    decode_instruction,
    encode_instruction,
    instruction_specs,
)
from tests.unit.method.algorithms._cases import TOL, unit
from tests.unit.method.algorithms.test_registry_rounds import _run


def _reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """Loops: for each row i, -log softmax of its positive, both directions."""
    b = z1.shape[0]
    total = 0.0
    for a, c in ((z1, z2), (z2, z1)):
        for i in range(b):
            logits = [float(a[i] @ c[j]) / tau for j in range(b)]
            top = max(logits)
            lse = top + math.log(sum(math.exp(v - top) for v in logits))
            total += lse - logits[i]
    return total / (2 * b)


@pytest.mark.parametrize(("b", "d", "tau"), [(2, 3, 0.2), (5, 4, 0.5), (8, 16, 0.07)])
def test_two_view_infonce_matches_the_loops(b: int, d: int, tau: float) -> None:
    z1, z2 = unit(b, d, seed=b), unit(b, d, seed=100 + b)
    got = float(two_view_infonce(z1, z2, tau))
    assert abs(got - _reference(z1, z2, tau)) < TOL * 100
    # identical views: the positives win, lower loss than two unrelated views
    assert float(two_view_infonce(z1, z1, tau)) < got


def test_two_view_infonce_gives_gradients_to_both_views() -> None:
    z1 = unit(4, 3, seed=1).requires_grad_(True)
    z2 = unit(4, 3, seed=2).requires_grad_(True)
    two_view_infonce(z1, z2, 0.2).backward()
    assert z1.grad is not None and z2.grad is not None
    assert float(z1.grad.abs().sum()) > 0 and float(z2.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("z1", "z2", "tau"),
    [
        (torch.zeros(4, 3), torch.zeros(4, 2), 0.2),  # other shapes
        (torch.zeros(1, 3), torch.zeros(1, 3), 0.2),  # one row: no negatives
        (torch.zeros(4), torch.zeros(4), 0.2),  # not (B, d)
        (torch.zeros(4, 3), torch.zeros(4, 3), 0.0),  # tau <= 0
    ],
)
def test_two_view_infonce_refuses_bad_inputs(
    z1: torch.Tensor, z2: torch.Tensor, tau: float
) -> None:
    with pytest.raises(ValueError):
        two_view_infonce(z1, z2, tau)


@pytest.mark.parametrize("shape", [(6, 28, 28), (6, 64, 64, 3)])
def test_crops_keep_shape_and_dtype_and_differ_from_the_input(
    shape: tuple[int, ...],
) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    views = crop_and_flip(images, np.random.default_rng(1))
    assert views.shape == images.shape and views.dtype == np.uint8
    assert not np.array_equal(views, images)
    again = crop_and_flip(images, np.random.default_rng(1))
    assert np.array_equal(views, again)  # seeded: repeatable


def test_a_full_crop_without_flip_is_the_image() -> None:
    """With the whole image kept (area 1, aspect 1) the crop resizes nothing."""
    images = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)

    class Whole:
        def uniform(self, lo: float, hi: float) -> float:
            return 1.0 if lo == MIN_AREA else 0.0  # area 1, log-aspect 0

        def integers(self, lo: int, hi: int) -> int:
            return 0

        def random(self) -> float:
            return 0.9  # no flip

    got = crop_and_flip(images, Whole())  # type: ignore[arg-type]
    assert np.array_equal(got, images)


def test_word_dropout_keeps_one_word_at_least_and_is_seeded() -> None:
    texts = ["a red kangaroo", "dog", "grinning face with big eyes", ""]
    for seed in range(20):
        out = drop_words(texts, np.random.default_rng(seed))
        assert len(out) == len(texts) and out[3] == ""
        for before, after in zip(texts[:3], out[:3], strict=True):
            assert after and set(after.split()) <= set(before.split())
    assert augment(texts, np.random.default_rng(3)) == drop_words(
        texts, np.random.default_rng(3)
    )


def test_the_align_instruction_carries_indices_only() -> None:
    run = RunConfig.from_flat({"algorithm": "public-only"})
    b = run.muscle.batch_size
    idx = np.zeros((2, b), np.int64)
    record = encode_instruction(
        Instruction(run, 1, 0, {STEP_INDICES: idx, p.ENCODE_INDICES: idx[:0]})
    )
    payloads = ALGORITHMS["public-only"]().payloads(run.muscle)
    assert payloads.relay == {}  # declared: nothing relayed
    specs = instruction_specs(run, Phase.ALIGN, payloads)
    assert set(specs) == {STEP_INDICES, p.ENCODE_INDICES}
    assert decode_instruction(record, ALIGN).arrays[STEP_INDICES].shape == (2, b)
    partners = np.zeros((2, 1, b, run.muscle.dim), np.float32)
    bad = encode_instruction(
        Instruction(
            run,
            1,
            0,
            {STEP_INDICES: idx, p.ENCODE_INDICES: idx[:0], PARTNERS: partners},
        )
    )
    # an extra partner payload is never decoded: the client cannot read one
    assert PARTNERS not in decode_instruction(bad, ALIGN).arrays


def test_every_client_aligns_and_nothing_comes_down_but_indices(
    tmp_path: Path, state_dir: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alone, run = _run(tmp_path / "a", "public-only")
    with_partners, _ = _run(tmp_path / "b", "pairwise")
    aligned = {r["client"] for r in alone.rows if r.get("phase") == "align"}
    assert len(aligned) == 3
    last = [r for r in alone.rows if r["client"] == SERVER_ROW][-1]
    ref = [r for r in with_partners.rows if r["client"] == SERVER_ROW][-1]
    partner_bytes = 3 * run.muscle.steps * run.muscle.batch_size * run.muscle.dim * 2
    assert ref["bytes-down"] - last["bytes-down"] >= partner_bytes  # (M ≥ 1 partners)
    assert last["rejected"] == 0
