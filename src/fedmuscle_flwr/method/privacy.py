r"""Privacy knobs on the client: clip, Gaussian noise, renormalise (no Flower).

Representations are the only thing a FedMuscle client uploads. With
``privacy.noise`` σ > 0 every uploaded row z (train and align batches and the
evaluation probe) is replaced before encoding for the wire by

.. math::

    \tilde z = \frac{\bar z + \xi}{\lVert \bar z + \xi \rVert},\quad
    \bar z = z \cdot \min\!\left(1, \frac{C}{\lVert z \rVert}\right),\quad
    \xi \sim \mathcal N(0, (\sigma C)^2 I_d)

i.e. the Gaussian mechanism on rows of L2 sensitivity C (``privacy.clip``),
then renormalised, because the protocol requires unit rows. Rows leave the
encoder with unit norm, so a clip C < 1 only rescales them and matters through
the noise scale σC; the noise norm is about σ·C·√d against a signal of norm
min(1, C). No privacy accounting is done here (ε, δ depend on how often the same
public rows are released: the probe is sent every evaluation).
"""

from __future__ import annotations

import numpy as np

from fedmuscle_flwr.config.run import PrivacyConfig

_TINY = 1e-12


def is_active(cfg: PrivacyConfig) -> bool:
    """Whether :func:`perturb` changes anything (only noise does, on unit rows)."""
    return cfg.noise > 0


def perturb(z: np.ndarray, cfg: PrivacyConfig, rng: np.random.Generator) -> np.ndarray:
    """Clip rows to norm C, add N(0, (σC)²) per coordinate, renormalise.

    Shape: z (..., d) -> (..., d) float32 with unit rows; ``z`` itself when
    ``privacy.noise`` is 0 (clipping alone is undone by the renormalisation).
    """
    if not is_active(cfg):
        return z
    x = np.asarray(z, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)  # (..., 1)
    x = x * np.minimum(1.0, cfg.clip / np.maximum(norms, _TINY))
    x = x + rng.normal(0.0, cfg.noise * cfg.clip, size=x.shape)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)  # (..., 1)
    return (x / np.maximum(norms, _TINY)).astype(np.float32)
