"""Local training only: the Δ reference (same models, same epochs, no exchange)."""

from __future__ import annotations

from fedmuscle_flwr.method.algorithms.base import ALGORITHMS, Algorithm


@ALGORITHMS.register("local")
class Local(Algorithm):
    """No phase 2: nothing leaves the client but evaluation metrics and probes."""

    description = "Local training only: same models, same epochs, no communication"
    wire = "nothing but evaluation metrics (and probe representations)"
    aligns = False
