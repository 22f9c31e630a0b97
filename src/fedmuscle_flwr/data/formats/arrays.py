"""Arrays from a NumPy ``.npz`` file: ``x`` and ``y`` (and ``x_test``, ``y_test``).

``x``: uint8 images (N, H, W) / (N, H, W, 3), or strings (N,). ``y``: int class
ids (N,), 0/1 multi-hot (N, K), or int masks (N, H, W). An optional
``class_names`` array names the classes (else ``"0"`` .. ``"K-1"``). The file is
read without pickle.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fedmuscle_flwr.data.base import LabelledData, Modality, Split, TargetKind
from fedmuscle_flwr.data.decode import DataFileError
from fedmuscle_flwr.data.formats.base import (
    FORMATS,
    FileFormat,
    SplitOptions,
    assemble,
    make_info,
)


class NpzOptions(SplitOptions):
    """The ``.npz`` file."""

    path: Path


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as bundle:
            return {k: bundle[k] for k in bundle.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFileError(
            f"{path}: not a readable .npz without pickle ({exc})"
        ) from None


def _inputs(x: np.ndarray, where: str) -> tuple[Modality, np.ndarray | list[str]]:
    if x.dtype.kind in "US":
        return "text", [str(s) for s in x.tolist()]
    if (
        x.dtype != np.uint8
        or x.ndim not in (3, 4)
        or (x.ndim == 4 and x.shape[-1] != 3)
    ):
        raise DataFileError(
            f"{where}: x must be uint8 (N, H, W) or (N, H, W, 3) images or strings, "
            f"got {x.dtype} {x.shape}"
        )
    return "image", x


def _kind(y: np.ndarray, x: np.ndarray, where: str) -> TargetKind:
    if y.ndim == 1 and y.dtype.kind in "iu":
        return "class"
    if y.ndim == 2 and np.isin(y, (0, 1)).all():
        return "multilabel"
    if y.ndim == 3 and y.dtype.kind in "iu" and y.shape == x.shape[:3]:
        return "mask"
    raise DataFileError(
        f"{where}: y must be int class ids (N,), 0/1 multi-hot (N, K) or int masks "
        f"(N, H, W) matching x, got {y.dtype} {y.shape}"
    )


@FORMATS.register("npz")
class NpzArrays(FileFormat):
    """``x``/``y`` arrays (and an optional test pair) of a ``.npz`` file."""

    summary = "arrays: a .npz with x, y (and x_test, y_test, class_names)"
    Options = NpzOptions

    @classmethod
    def load(cls, opts: Any) -> LabelledData:
        """Read and check the arrays; ``y``'s shape gives the target kind."""
        path = opts.path.expanduser()
        arrays = _read(path)
        for key in ("x", "y"):
            if key not in arrays:
                raise DataFileError(
                    f"{path}: missing array {key!r}; has {sorted(arrays)}"
                )
        x, y = arrays["x"], arrays["y"]
        if len(x) != len(y):
            raise DataFileError(f"{path}: {len(x)} x rows but {len(y)} y rows")
        modality, inputs = _inputs(x, str(path))
        kind = _kind(y, x, str(path))
        k = y.shape[1] if kind == "multilabel" else int(y.max()) + 1
        if y.min() < 0:
            raise DataFileError(f"{path}: negative label {int(y.min())} in y")
        names = [str(n) for n in arrays.get("class_names", np.arange(k)).tolist()]
        if opts.classes:
            names = list(opts.classes)
        if len(names) < k:
            raise DataFileError(
                f"{path}: label {k - 1} is not in the label space {names}"
            )
        info = make_info(f"npz {path}", modality, kind, names)
        train = Split(
            inputs, y.astype(np.float32 if kind == "multilabel" else np.int64)
        )
        test = None
        if "x_test" in arrays and "y_test" in arrays:
            xt, yt = arrays["x_test"], arrays["y_test"]
            if len(xt) != len(yt) or _kind(yt, xt, f"{path} (test)") != kind:
                raise DataFileError(f"{path}: x_test/y_test do not match x/y")
            if yt.max() >= len(names) and kind != "multilabel":
                raise DataFileError(
                    f"{path}: test label {int(yt.max())} is not in the label space"
                )
            test = Split(_inputs(xt, str(path))[1], yt.astype(train.y.dtype))
        return assemble(info, train, test, opts.test_fraction)
