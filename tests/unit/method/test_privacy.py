"""Privacy knobs (privacy.py): clip + Gaussian noise + renormalise."""

import numpy as np
import pytest

from fedmuscle_flwr.config.run import PrivacyConfig, RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.method import privacy


def unit(*shape, seed=0):
    z = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def test_off_by_default_and_clipping_alone_is_a_no_op():
    z = unit(2, 8, 16)
    rng = np.random.default_rng(0)
    assert privacy.perturb(z, PrivacyConfig(), rng) is z
    assert privacy.perturb(z, PrivacyConfig(clip=0.2), rng) is z  # renormalised


@pytest.mark.parametrize("clip", [0.5, 1.0, 2.0])
def test_noise_gives_unit_rows_with_the_expected_distortion(clip):
    z = unit(4, 32, 64)
    cfg = PrivacyConfig(clip=clip, noise=0.1)
    out = privacy.perturb(z, cfg, np.random.default_rng(1))
    assert out.dtype == np.float32 and out.shape == z.shape
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)
    # cos(z, z~) = c / sqrt(c^2 + (sigma c)^2 d) with c = min(1, clip)
    c = min(1.0, clip)
    expected = c / np.sqrt(c**2 + (0.1 * clip) ** 2 * 64)
    cos = (out * z).sum(-1).mean()
    assert cos == pytest.approx(expected, abs=0.02)


def test_same_generator_same_noise_different_generator_different():
    z, cfg = unit(1, 8, 16), PrivacyConfig(noise=0.5)
    a = privacy.perturb(z, cfg, np.random.default_rng(3))
    b = privacy.perturb(z, cfg, np.random.default_rng(3))
    c = privacy.perturb(z, cfg, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_config_validation_names_key_and_value():
    with pytest.raises(ConfigError, match=r"privacy.noise.*-1"):
        RunConfig.from_flat({"privacy.noise": -1})
    with pytest.raises(ConfigError, match=r"privacy.clip.*0"):
        RunConfig.from_flat({"privacy.clip": 0})
