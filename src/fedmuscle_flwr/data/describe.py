"""What a client's data or a public set resolves to: ``fedmuscle data check``'s lines.

Counts per split and class, the label space, image sizes and modes (from the
file headers for file sets, from the arrays otherwise), text lengths in
characters, skipped files, and the public set's fingerprint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from fedmuscle_flwr.data.base import (
    DatasetInfo,
    LazySamples,
    PrivateData,
    PublicData,
    Split,
)
from fedmuscle_flwr.data.fingerprint import public_fingerprint
from fedmuscle_flwr.data.lazy import ImageFiles
from fedmuscle_flwr.data.partitioning import primary_labels

#: samples whose lengths/sizes are read when a source cannot say cheaply
SAMPLE_FOR_STATS = 256


def _counts(split: Split, info: DatasetInfo) -> str:
    if info.target_kind == "multilabel":
        per = split.y.sum(axis=0).astype(int).tolist()
    else:
        labels = primary_labels(split.y, info.target_kind)
        per = np.bincount(labels, minlength=info.num_classes).tolist()
    names = info.class_names or tuple(str(i) for i in range(info.num_classes))
    shown = ", ".join(f"{n}={c}" for n, c in zip(names, per, strict=False))
    what = (
        "images per class (primary mask class)"
        if info.target_kind == "mask"
        else "per class"
    )
    return f"{what}: {shown}"


def _top(counter: Counter[str], limit: int = 4) -> str:
    items = counter.most_common(limit)
    more = len(counter) - len(items)
    text = ", ".join(f"{k} x{v}" for k, v in items)
    return text + (f", +{more} more" if more > 0 else "")


def _images(x: object, n: int) -> list[str]:
    if isinstance(x, ImageFiles):
        stats = getattr(x, "stats", None)
        lines = [
            f"decoded as {x.mode} {x.size[0]}x{x.size[1]} (files: {x.origin})",
        ]
        if stats is not None:
            sizes = Counter({f"{w}x{h}": c for (w, h), c in stats.sizes.items()})
            lines.append(
                f"source files: sizes {_top(sizes)}; modes {_top(Counter(stats.modes))}"
            )
            if stats.skipped:
                first = stats.skipped[0]
                lines.append(
                    f"skipped {len(stats.skipped)} unreadable files: {first}, ..."
                )
        return lines
    if isinstance(x, np.ndarray):
        mode = "RGB" if x.ndim == 4 else "L"
        return [f"in memory: uint8 {mode} {x.shape[2]}x{x.shape[1]}, {n} images"]
    if isinstance(x, LazySamples):
        first = x.decode(np.arange(min(1, len(x))))
        shape = "x".join(map(str, np.shape(first)[1:])) if len(x) else "-"
        return [f"decoded per batch (H x W[x C] = {shape}) from {x.origin}"]
    return []


def _text_lengths(texts: Sequence[str]) -> str:
    lengths = np.asarray([len(t) for t in texts])
    if not lengths.size:
        return "text lengths: -"
    q = np.percentile(lengths, [0, 50, 100]).astype(int).tolist()
    return f"text lengths (characters): min {q[0]}, median {q[1]}, max {q[2]}"


def _split_lines(name: str, split: Split, info: DatasetInfo) -> list[str]:
    lines = [f"{name}: {len(split)} samples; {_counts(split, info)}"]
    if info.modality == "image":
        lines += [f"  {line}" for line in _images(split.x, len(split))]
    else:
        sample = np.arange(min(len(split), SAMPLE_FOR_STATS * 8))
        lines.append(f"  {_text_lengths(split.batch(sample))}")  # type: ignore[arg-type]
    return lines


def describe_private(data: PrivateData, evaluated: str = "test") -> list[str]:
    """Lines describing a client's share: label space, splits, inputs."""
    info = data.info
    names = list(info.class_names) or [str(i) for i in range(info.num_classes)]
    lines = [
        f"source: {info.name}",
        f"task data: {info.modality} inputs, {info.target_kind} targets",
        f"label space ({info.num_classes}): {names}",
    ]
    lines += _split_lines("train", data.train, info)
    lines += _split_lines(evaluated, data.test, info)
    return lines


def describe_public(public: PublicData) -> list[str]:
    """Lines describing a public set in use, with its fingerprint."""
    lines = [
        f"public set: {public.name} from {public.origin}",
        f"samples: {len(public)}; modalities: {sorted(public.modalities)}",
    ]
    if "image" in public.modalities:
        images = public.batch(np.arange(min(len(public), SAMPLE_FOR_STATS)), "image")
        shape = "x".join(map(str, np.shape(images)[1:]))
        lines.append(
            f"images: uint8 {shape} (H x W[x C]), as every participant decodes them"
        )
    if "text" in public.modalities:
        texts = public.batch(np.arange(len(public)), "text")
        lines.append(_text_lengths(texts))  # type: ignore[arg-type]
    lines.append(f"fingerprint: {public_fingerprint(public)}")
    return lines
