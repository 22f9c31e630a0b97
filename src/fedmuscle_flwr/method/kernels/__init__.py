"""Kernels of the Muscle log-partition (docs/method.md §2), behind ``losses.py``.

``dispatch``: which kernel runs (``method`` of ``muscle_loss``).
``muscle_grid``: the reference (B, B^M) logit grid, one-shot or streamed in chunks.
``muscle_torch``: the factorised form, exp(logit) = W[j] prod_m E_m[i, j_m], as GEMMs.
``muscle_online``: Triton, two launches, online log-sum-exp over register tiles.
``muscle_triton``: Triton fused factorised form that never writes W.
Triton is optional. Nothing here imports flwr or pydantic, so the GPU benchmark
runs without them. See docs/performance.md for measurements.
"""

from __future__ import annotations
