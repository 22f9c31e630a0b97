"""The SuperNode loop adjustment (supernode_main.py) against the installed Flower.

Fails loudly when Flower's SuperNode loop changes: the adjustment relies on the
exact waits ``time.sleep(3)`` (idle) and ``time.sleep(0.5)`` (reply, twice) of
``flwr/supernode/start_client_internal.py`` in Flower 1.39.0.
"""

import inspect
import time

import flwr
import pytest
from flwr.supernode import start_client_internal as loop

from fedmuscle_flwr.launch.deploy import supernode as supernode_main


def test_flower_is_the_version_the_adjustment_was_written_for():
    assert flwr.__version__ == supernode_main.FLWR_VERSION, (
        "Flower changed: re-check supernode_main.py against the new "
        "flwr/supernode/start_client_internal.py before bumping FLWR_VERSION"
    )
    assert supernode_main.patch_problem() is None


def test_the_waits_are_where_the_adjustment_expects_them():
    source = inspect.getsource(loop.start_client_internal)
    # the idle sleep follows a pull that brought no message
    assert "if run_id is None:" in source
    assert source.index("if run_id is None:") < source.index("time.sleep(3)")
    pushing = inspect.getsource(loop._push_messages)
    assert "while not (reply_messages := state.get_messages(is_reply=True)):" in (
        pushing
    )
    assert pushing.count("time.sleep(0.5)") == 2


def test_patch_maps_only_flowers_two_waits(monkeypatch):
    monkeypatch.setattr(loop, "time", time)  # undone after the test
    assert supernode_main.patch_waits(idle_s=0.01, reply_s=0.002)
    clock = loop.time
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    clock.sleep(3)
    clock.sleep(0.5)
    clock.sleep(1.25)
    assert slept == [0.01, 0.002, 1.25]
    assert clock.monotonic is time.monotonic  # everything else is time's


def test_patch_refuses_a_changed_loop(monkeypatch, caplog):
    monkeypatch.setattr(loop, "time", time)
    monkeypatch.setattr(supernode_main, "_EXPECTED", {"time.sleep(7)": 1})
    assert supernode_main.patch_problem() is not None
    assert not supernode_main.patch_waits(0.01, 0.01)
    assert loop.time is time
    assert "left as Flower's" in caplog.text


@pytest.mark.parametrize("argv", [["--idle-s", "x", "--"], ["--bogus", "--"]])
def test_bad_options_exit(argv):
    with pytest.raises(SystemExit):
        supernode_main.main(argv)
