"""Every Flower adjustment (wire/flower_compat.py) against the installed Flower.

Fails loudly when the Flower 1.39.0 code an adjustment relies on changes:

* ``supernode-waits``: the exact waits ``time.sleep(3)`` (idle) and
  ``time.sleep(0.5)`` (reply, twice) of ``flwr/supernode/start_client_internal.py``;
* ``pull-backoff``: the first retry wait is the keyword default
  ``initial_backoff`` (1 s, ``PULL_INITIAL_BACKOFF``) of ``pull_objects`` and
  ``pull_and_inflate_object_from_tree``, which every pull site in 1.39 uses
  (the ServerApp's ``HttpGrid.pull_messages``, the SuperNode's loop, the
  ClientApp's task input);
* ``register-before-fleet``: the module global ``SuperLinkLifespan`` that
  ``_run_superlink_http_api`` passes to ``create_app``, its ``startup`` readying
  the LinkState before ``_start_fleet_api``, and the LinkState's ``create_node``;
* the log lines the launch code steers by, literally in Flower's source (the
  ``Exit Code: 305`` line as ``flwr_exit`` forms it).
  ``tests/integration/test_deploy_registration.py`` and
  ``tests/integration/test_deployment.py`` check them against real Flower
  processes.
"""

import importlib
import inspect
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import flwr
import pytest
from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError
from flwr.superlink.config_loader import (
    get_federation_manager,
    get_objectstore_linkstate_factories,
)
from flwr.superlink.servicer.control import control_handlers
from flwr.supernode import start_client_internal as loop

from fedmuscle_flwr.wire import flower_compat

cli = flower_compat.flower_superlink_module()


@pytest.fixture
def restore(monkeypatch):
    """Flower's own defaults for the test (an earlier test in this process may
    have run the ServerApp, which shortens them), whatever they were after it."""
    from flwr.supercore.constant import PULL_INITIAL_BACKOFF

    for name in flower_compat._PULL_FUNCTIONS:
        function = getattr(inflatable_utils, name)
        defaults = {**function.__kwdefaults__, "initial_backoff": PULL_INITIAL_BACKOFF}
        monkeypatch.setattr(function, "__kwdefaults__", defaults)


def test_flower_is_the_version_the_adjustment_was_written_for():
    assert flwr.__version__ == flower_compat.FLWR_VERSION, (
        "Flower changed: re-check wire/flower_compat.py against the new "
        "flwr/supercore/inflatable/inflatable_utils.py before bumping FLWR_VERSION"
    )
    assert flower_compat.pull_backoff_problem() is None


def test_every_pull_site_uses_the_default():
    from flwr.superlink.grid import http_grid
    from flwr.supernode import start_client_internal

    for module in (http_grid, start_client_internal):
        source = inspect.getsource(module)
        assert "pull_objects(" in source and "initial_backoff" not in source
    utils = inspect.getsource(inflatable_utils.pull_and_inflate_object_from_tree)
    assert "initial_backoff=initial_backoff" in utils


def test_the_first_retry_comes_after_the_shortened_wait(restore):
    assert flower_compat.shorten_pull_backoff(0.05)
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


@pytest.mark.parametrize("off", ["0.0.0", "pull-backoff", "all"])
def test_a_changed_flower_or_the_switch_keeps_its_wait(
    restore, monkeypatch, caplog, off
):
    if off[0].isdigit():
        monkeypatch.setattr(flower_compat, "FLWR_VERSION", off)
    else:
        monkeypatch.setenv(flower_compat.OFF_ENV, f"supernode-waits,{off}")
    with caplog.at_level(logging.WARNING):
        assert not flower_compat.shorten_pull_backoff(0.05)
    assert inflatable_utils.pull_objects.__kwdefaults__["initial_backoff"] == 1
    assert "keep Flower's 1 s" in caplog.text


# ------------------------------------------------------- supernode-waits
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


def test_the_clock_maps_only_flowers_two_waits(monkeypatch):
    monkeypatch.setattr(loop, "time", time)  # undone after the test
    assert flower_compat.shorten_supernode_waits(idle_s=0.01, reply_s=0.002)
    clock = loop.time
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    clock.sleep(3)
    clock.sleep(0.5)
    clock.sleep(1.25)
    assert slept == [0.01, 0.002, 1.25]
    assert clock.monotonic is time.monotonic  # everything else is time's


def test_a_changed_loop_is_left_alone(monkeypatch, caplog):
    monkeypatch.setattr(loop, "time", time)
    monkeypatch.setattr(flower_compat, "_EXPECTED_SLEEPS", {"time.sleep(7)": 1})
    assert flower_compat.supernode_waits_problem() is not None
    assert not flower_compat.shorten_supernode_waits(0.01, 0.01)
    assert loop.time is time
    assert "left as Flower's" in caplog.text


def test_the_switch_leaves_the_loop_alone(monkeypatch, caplog):
    monkeypatch.setattr(loop, "time", time)
    monkeypatch.setenv(flower_compat.OFF_ENV, "supernode-waits")
    assert not flower_compat.shorten_supernode_waits(0.01, 0.01)
    assert loop.time is time
    assert flower_compat.OFF_ENV in caplog.text


def test_an_unknown_name_in_the_switch_is_an_error(monkeypatch):
    monkeypatch.setenv(flower_compat.OFF_ENV, "pull-backof")
    with pytest.raises(ValueError, match="unknown adjustment.*pull-backoff"):
        flower_compat.switched_off(flower_compat.PULL_BACKOFF)


# ------------------------------------------------- register-before-fleet
def test_flowers_startup_readies_the_state_then_starts_the_fleet_api():
    startup = inspect.getsource(cli.SuperLinkLifespan.startup)
    state = startup.index("self.state_factory.state()")
    assert state < startup.index("self._start_fleet_api()")
    assert "SuperLinkLifespan)" in inspect.getsource(cli._run_superlink_http_api)
    # the Control API's RegisterNode is this LinkState call with the no-op account
    handler = inspect.getsource(control_handlers.register_node)
    assert "state.create_node(" in handler and "HEARTBEAT_DEFAULT_INTERVAL" in handler


def test_the_hook_sees_the_state_before_the_fleet_api(monkeypatch):
    monkeypatch.setattr(cli, "SuperLinkLifespan", cli.SuperLinkLifespan)  # undone
    seen: list[object] = []
    assert flower_compat.before_fleet_api(seen.append)
    patched = cli.SuperLinkLifespan
    assert patched.__name__ == "RegisteringLifespan"
    _, factory = get_objectstore_linkstate_factories(
        ":flwr-in-memory:", get_federation_manager()
    )
    # simulation=True: Flower's _start_fleet_api returns without a server
    lifespan = patched(SimpleNamespace(simulation=True), factory)
    assert seen == []
    lifespan._start_fleet_api()
    assert seen == [factory.state()]


@pytest.mark.parametrize("off", ["source", "switch"])
def test_a_changed_superlink_or_the_switch_is_left_alone(monkeypatch, caplog, off):
    monkeypatch.setattr(cli, "SuperLinkLifespan", cli.SuperLinkLifespan)
    if off == "source":
        monkeypatch.setattr(flower_compat, "_CREATE_APP", "create_app(c, Lifespan)")
    else:
        monkeypatch.setenv(flower_compat.OFF_ENV, "register-before-fleet")
    original = cli.SuperLinkLifespan
    with caplog.at_level(logging.WARNING):
        assert not flower_compat.before_fleet_api(lambda state: None)
    assert cli.SuperLinkLifespan is original
    assert "registered after the SuperLink started" in caplog.text


# ------------------------------------------------------------- log lines
def flower_source() -> str:
    """Every Python source file of the installed Flower, concatenated."""
    root = Path(flwr.__file__).parent
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*.py"))


@pytest.mark.parametrize("mark", flower_compat.SUPERNODE_MARKS)
def test_every_log_mark_is_in_flowers_source(mark):
    assert mark in flower_source(), f"Flower no longer logs {mark!r}"


def test_the_305_line_is_formed_as_the_mark_says():
    from flwr.supercore.exit.exit_code import ExitCode

    code = ExitCode.SUPERNODE_CONNECTION_ERROR
    assert code == flower_compat.SUPERNODE_CONNECTION_ERROR
    source = inspect.getsource(importlib.import_module("flwr.supercore.exit.exit"))
    assert 'exit_message = f"Exit Code: {code}' in source
    # Flower's own flwr_exit in a process of its own (it ends the process):
    # the line it logs, and the status the process exits with
    call = (
        "from flwr.supercore.exit import ExitCode, flwr_exit\n"
        "flwr_exit(ExitCode.SUPERNODE_CONNECTION_ERROR, 'x', emit_telemetry=False)"
    )
    done = subprocess.run(
        [sys.executable, "-c", call], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert flower_compat.SUPERNODE_REFUSED in done.stdout + done.stderr


def test_the_cli_refuses_an_unknown_name_in_the_switch(monkeypatch, tmp_path):
    """Checked where the operator starts things, not in a process Flower starts."""
    from typer.testing import CliRunner

    from fedmuscle_flwr.cli import cli

    monkeypatch.setenv(flower_compat.OFF_ENV, "supernode-wait")
    args = ["client", "--server", "127.0.0.1:1", "--profile", "x", "--insecure"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "unknown adjustment ['supernode-wait']" in result.output
