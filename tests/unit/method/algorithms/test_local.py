"""Local: no phase 2, nothing relayed, the Δ reference."""

from __future__ import annotations

import numpy as np

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import get_algorithm


def test_local_has_no_alignment_phase_and_uploads_nothing() -> None:
    run = RunConfig.from_flat({"device": "cpu"})
    local = get_algorithm("local")
    assert local.align_steps(run) == 0 and local.messages_per_round(run) == 0
    assert local.train_upload(None) is None  # type: ignore[arg-type]
    try:
        local.align_loss(np.zeros(1), {}, None)  # type: ignore[arg-type]
    except ValueError as exc:
        assert "no alignment phase" in str(exc)
    else:  # pragma: no cover - the assertion below reports it
        raise AssertionError("local.align_loss must refuse")


def test_the_registry_name_local_is_the_local_module_class() -> None:
    from fedmuscle_flwr.method.algorithms import local as local_module

    # Assert: the registry builds the class defined in local.py, whose
    # declared wire payload is representation-only and which never aligns
    alg = get_algorithm("local")
    assert type(alg) is local_module.Local and local_module.Local.name == "local"
    assert local_module.Local.aligns is False
