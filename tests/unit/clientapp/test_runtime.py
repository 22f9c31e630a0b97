"""The client runtime: built from a profile, its identity, its state round trip."""

from __future__ import annotations

import torch

from fedmuscle_flwr.clientapp.runtime import ClientRuntime
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.wire.messages import CLIENT_NAME, LABEL_SPACE, TASK_KIND
from tests.unit.clientapp.test_runtime_cache import RUN, _profile


def test_runtime_identity_and_state_round_trip() -> None:
    # Prepare: a small digits client (96 training images)
    profile = _profile()
    algorithm = get_algorithm("fedmuscle")
    # Execute
    rt = ClientRuntime.build(profile, RUN, algorithm)
    twin = ClientRuntime.build(profile, RUN.model_copy(update={"seed": 7}), algorithm)
    twin.rounds_done = 3
    differed = any(
        not torch.equal(a, b)
        for a, b in zip(rt.model.parameters(), twin.model.parameters(), strict=True)
    )
    rt.load_state_dict(twin.state_dict())
    # Assert: the identity names the client and its label space (no data);
    # the state round trip restores the other seed's weights and counters
    ident = rt.identity()
    assert ident[CLIENT_NAME] == profile.name and ident[TASK_KIND] == "classification"
    assert ident[LABEL_SPACE] == "classification/digits/10"
    assert differed and rt.rounds_done == 3
    for a, b in zip(rt.model.parameters(), twin.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
