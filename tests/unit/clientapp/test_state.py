"""Client state on disk: several processes may serve one node (Ray actors, ClientApp
processes); a process must never resume from a state another one has replaced."""

import torch

from fedmuscle_flwr.clientapp.state import ClientStateStore


def test_second_process_sees_the_newer_state(tmp_path):
    # Prepare: two stores on one folder stand for two worker processes
    a, b = ClientStateStore(tmp_path), ClientStateStore(tmp_path)
    a.save("run", 7, {"w": torch.zeros(3)})  # train phase on worker a
    # Execute: worker b runs the align phase and saves; worker a evaluates
    state = b.load("run", 7)
    assert state is not None
    b.save("run", 7, {"w": state["w"] + 1})
    seen = a.load("run", 7)
    # Assert
    assert seen is not None and torch.equal(seen["w"], torch.ones(3))


def test_missing_state_is_none_and_cache_hits_are_equal(tmp_path):
    store = ClientStateStore(tmp_path)
    assert store.load("run", 1) is None
    store.save("run", 1, {"w": torch.arange(4.0)})
    first, second = store.load("run", 1), store.load("run", 1)
    assert first is second  # served from memory while the file is unchanged
    store.path("run", 1).unlink()
    assert store.load("run", 1) is None
