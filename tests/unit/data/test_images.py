"""Image helpers: the IDX parser and the float-tensor conversion."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from fedmuscle_flwr.data.images import read_idx, resize_uint8, to_float_tensor


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_plain_and_gzipped(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-ubyte").write_bytes(_idx(array))
    (tmp_path / "a-ubyte.gz").write_bytes(gzip.compress(_idx(array)))
    assert np.array_equal(read_idx(tmp_path / "a-ubyte"), array)
    assert np.array_equal(read_idx(tmp_path / "a-ubyte.gz"), array)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")


def test_to_float_tensor_grayscale_to_rgb() -> None:
    x = np.zeros((2, 28, 28), dtype=np.uint8)
    x[1] = 255
    out = to_float_tensor(x, 64, 3)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert torch.all(out[0] == -1.0) and torch.all(out[1] == 1.0)


def test_to_float_tensor_rgb_to_gray_uses_luma() -> None:
    x = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    x[..., 1] = 255  # pure green
    out = to_float_tensor(x, 8, 1)
    assert out.shape == (1, 1, 8, 8)
    assert torch.allclose(out, torch.full_like(out, 0.587 * 2 - 1), atol=1e-5)


def test_to_float_tensor_resizes_and_keeps_range() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    out = to_float_tensor(x, 32, 3)
    assert out.shape == (3, 3, 32, 32)
    assert out.min() >= -1.0 and out.max() <= 1.0
    same = to_float_tensor(x, 64, 3)
    expected = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(same, expected, atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        to_float_tensor(x.astype(np.float32), 32, 3)
    with pytest.raises(ValueError, match="channels"):
        to_float_tensor(x, 32, 2)


def test_resize_uint8_keeps_dtype_and_layout() -> None:
    gray = np.full((2, 8, 8), 200, dtype=np.uint8)
    rgb = np.full((2, 8, 8, 3), 10, dtype=np.uint8)
    assert resize_uint8(gray, 28).shape == (2, 28, 28)
    assert resize_uint8(rgb, 28).shape == (2, 28, 28, 3)
    assert (
        np.all(resize_uint8(gray, 28) == 200) and resize_uint8(rgb, 4).dtype == np.uint8
    )
