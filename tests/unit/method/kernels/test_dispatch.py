"""Tests of fedmuscle_flwr.method.kernels.dispatch: which kernel runs, and that it is exact."""

from __future__ import annotations

import pytest
import torch

from fedmuscle_flwr.method.kernels import dispatch, muscle_triton
from fedmuscle_flwr.method.kernels.muscle_grid import grid_log_partition


def grams(m: int, b: int, d: int = 8, tau: float = 0.2) -> tuple[torch.Tensor, ...]:
    """A (M, B, B) and G (M, M, B, B) of random unit vectors, float64."""
    g = torch.Generator().manual_seed(m * 100 + b)
    z = torch.nn.functional.normalize(
        torch.randn(b, d, generator=g, dtype=torch.float64), dim=1
    )
    zp = torch.nn.functional.normalize(
        torch.randn(m, b, d, generator=g, dtype=torch.float64), dim=2
    )
    a = torch.einsum("id,mkd->mik", z, zp) / tau  # (M, B, B)
    gg = torch.einsum("mjd,nkd->mnjk", zp, zp)  # (M, M, B, B)
    return z, zp, a, gg


def test_auto_never_picks_the_online_kernel_on_cpu() -> None:
    z, zp, _, _ = grams(3, 4)
    assert not dispatch.use_online(z, zp, "auto")
    assert dispatch.use_online(z, zp, "online")
    assert not dispatch.use_online(z, zp, "grid")


@pytest.mark.parametrize("method", ["auto", "grid", "factorised"])
@pytest.mark.parametrize(("m", "b"), [(2, 5), (3, 4), (3, 12)])
def test_every_cpu_method_gives_the_grid_value(method: str, m: int, b: int) -> None:
    # Prepare: (3, 12) has B^(M+1) > SMALL_GRID? no: 12^4 = 20736; auto takes the grid
    _, _, a, g = grams(m, b)
    gamma = 1 / 0.15 - 1 / 0.2
    # Execute
    got = dispatch.log_partition(a, g, gamma, 2**20, method)
    want = grid_log_partition(a, g, gamma, 2**20)
    # Assert
    assert got.shape == (b,)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_auto_switches_to_the_factorised_kernel_past_the_small_grid() -> None:
    # Prepare: B^(M+1) = 18^4 = 104976 > SMALL_GRID = 65536
    b, m = 18, 3
    assert b ** (m + 1) > dispatch.SMALL_GRID
    _, _, a, g = grams(m, b)
    gamma = 1 / 0.15 - 1 / 0.2
    # Execute / Assert: same value as the explicit grid
    torch.testing.assert_close(
        dispatch.log_partition(a, g, gamma, 2**26, "auto"),
        grid_log_partition(a, g, gamma, 2**26),
        rtol=1e-10,
        atol=1e-10,
    )


def test_one_partner_is_a_plain_logsumexp() -> None:
    _, _, a, g = grams(1, 6)
    got = dispatch.log_partition(a, g, 3.0, 2**20, "factorised")
    torch.testing.assert_close(got, torch.logsumexp(a[0], dim=1))


def test_unknown_method_is_refused_with_the_choices() -> None:
    _, _, a, g = grams(2, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        dispatch.log_partition(a, g, 1.0, 2**20, "fast")


@pytest.mark.skipif(muscle_triton.available(), reason="triton and a GPU are present")
def test_triton_without_a_gpu_is_a_clear_error() -> None:
    _, _, a, g = grams(2, 40)
    with pytest.raises(RuntimeError, match="needs the triton package"):
        dispatch.log_partition(a, g, 1.0, 2**20, "triton")
