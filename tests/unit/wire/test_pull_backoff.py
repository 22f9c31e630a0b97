"""The object-pull backoff adjustment (wire/pull_backoff.py) against Flower.

Fails loudly when Flower 1.39.0's object pulls change: the adjustment relies on
the first retry wait being the keyword default ``initial_backoff`` (1 s,
``PULL_INITIAL_BACKOFF``) of ``pull_objects`` and
``pull_and_inflate_object_from_tree``, which every pull site in 1.39 uses
(the ServerApp's ``HttpGrid.pull_messages``, the SuperNode's loop, the
ClientApp's task input).
"""

import inspect
import logging
import threading
import time

import flwr
import pytest
from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

from fedmuscle_flwr.wire import pull_backoff


@pytest.fixture
def restore(monkeypatch):
    """Flower's own defaults for the test (an earlier test in this process may
    have run the ServerApp, which shortens them), whatever they were after it."""
    from flwr.supercore.constant import PULL_INITIAL_BACKOFF

    for name in pull_backoff._FUNCTIONS:
        function = getattr(inflatable_utils, name)
        defaults = {**function.__kwdefaults__, "initial_backoff": PULL_INITIAL_BACKOFF}
        monkeypatch.setattr(function, "__kwdefaults__", defaults)


def test_flower_is_the_version_the_adjustment_was_written_for():
    assert flwr.__version__ == pull_backoff.FLWR_VERSION, (
        "Flower changed: re-check wire/pull_backoff.py against the new "
        "flwr/supercore/inflatable/inflatable_utils.py before bumping FLWR_VERSION"
    )
    assert pull_backoff.pull_backoff_problem() is None


def test_every_pull_site_uses_the_default():
    from flwr.superlink.grid import http_grid
    from flwr.supernode import start_client_internal

    for module in (http_grid, start_client_internal):
        source = inspect.getsource(module)
        assert "pull_objects(" in source and "initial_backoff" not in source
    utils = inspect.getsource(inflatable_utils.pull_and_inflate_object_from_tree)
    assert "initial_backoff=initial_backoff" in utils


def test_the_first_retry_comes_after_the_shortened_wait(restore):
    assert pull_backoff.shorten_pull_backoff(0.05)
    arrived = threading.Event()
    threading.Timer(0.1, arrived.set).start()  # the object arrives after 0.1 s

    def pull(object_id: str) -> bytes:
        if not arrived.is_set():
            raise ObjectUnavailableError(object_id)
        return b"content"

    t0 = time.monotonic()
    assert inflatable_utils.pull_objects(["a"], pull) == {"a": b"content"}
    # Flower's 1 s first wait would make this >= 0.8 s (1 s minus its 20 % jitter)
    assert time.monotonic() - t0 < 0.6


def test_a_changed_flower_keeps_its_wait(restore, monkeypatch, caplog):
    monkeypatch.setattr(pull_backoff, "FLWR_VERSION", "0.0.0")
    with caplog.at_level(logging.WARNING):
        assert not pull_backoff.shorten_pull_backoff(0.05)
    assert inflatable_utils.pull_objects.__kwdefaults__["initial_backoff"] == 1
    assert "keep Flower's 1 s" in caplog.text
