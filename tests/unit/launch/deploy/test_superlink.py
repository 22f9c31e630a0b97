"""The SuperLink start-up adjustment (launch/deploy/superlink.py) against Flower.

Fails loudly when the Flower 1.39.0 code it relies on changes: the module global
``SuperLinkLifespan`` that ``_run_superlink_http_api`` passes to ``create_app``,
its ``startup`` readying the LinkState before ``_start_fleet_api``, and the
LinkState's ``create_node`` (the call the Control API's ``RegisterNode`` makes).
"""

import inspect
import logging
from types import SimpleNamespace

import flwr
import pytest
from flwr.common.constant import NOOP_FLWR_AID
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.superlink.config_loader import (
    get_federation_manager,
    get_objectstore_linkstate_factories,
)
from flwr.superlink.servicer.control import control_handlers

from fedmuscle_flwr.launch.deploy import superlink
from fedmuscle_flwr.launch.deploy.certs import generate, read_public_keys

cli = superlink.flower_superlink_module()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("certs")
    generate(out, ["127.0.0.1"], nodes=2)
    return read_public_keys(out / "authorized-nodes.txt")


def fresh_state_factory() -> LinkStateFactory:
    """An in-memory LinkState as the SuperLink builds it (its default --database)."""
    _, factory = get_objectstore_linkstate_factories(
        ":flwr-in-memory:", get_federation_manager()
    )
    return factory


def test_flower_is_the_version_the_adjustment_was_written_for():
    assert flwr.__version__ == superlink.FLWR_VERSION, (
        "Flower changed: re-check launch/deploy/superlink.py against the new "
        "flwr/superlink/cli/flower_superlink.py before bumping FLWR_VERSION"
    )
    assert superlink.patch_problem() is None


def test_flowers_startup_readies_the_state_then_starts_the_fleet_api():
    startup = inspect.getsource(cli.SuperLinkLifespan.startup)
    state = startup.index("self.state_factory.state()")
    assert state < startup.index("self._start_fleet_api()")
    assert "SuperLinkLifespan)" in inspect.getsource(cli._run_superlink_http_api)
    # the Control API's RegisterNode is this LinkState call with the no-op account
    handler = inspect.getsource(control_handlers.register_node)
    assert "state.create_node(" in handler and "HEARTBEAT_DEFAULT_INTERVAL" in handler


def test_register_keys_as_the_control_api_would(keys):
    state = fresh_state_factory().state()
    ids = superlink.register_keys(state, keys)
    assert len(set(ids)) == 2 and all(ids)
    for line, node_id in zip(keys, ids, strict=True):
        assert state.get_node_id_by_public_key(superlink.public_key_bytes(line)) == (
            node_id
        )
    # listed for the account `flwr supernode list` asks with (no-op authentication)
    listed = {n.node_id for n in state.get_node_info(owner_aids=[NOOP_FLWR_AID])}
    assert listed == set(ids)
    # a key listed twice keeps its node id
    assert superlink.register_keys(state, [keys[0]]) == ids[:1]


def test_register_keys_refuses_a_key_that_is_not_a_nist_ec_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    line = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        .decode()
    )
    with pytest.raises(ValueError, match="NIST"):
        superlink.register_keys(fresh_state_factory().state(), [line])


def test_patched_lifespan_registers_before_the_fleet_api(keys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "SuperLinkLifespan", cli.SuperLinkLifespan)  # undone
    out = tmp_path / "ids.json"
    assert superlink.patch_lifespan(keys, out)
    patched = cli.SuperLinkLifespan
    assert patched.__name__ == "RegisteringLifespan"
    factory = fresh_state_factory()
    # simulation=True: Flower's _start_fleet_api returns without a server
    lifespan = patched(SimpleNamespace(simulation=True), factory)
    assert superlink.read_registered(out) is None
    lifespan._start_fleet_api()
    ids = superlink.read_registered(out)
    assert ids is not None and len(ids) == 2
    state = factory.state()
    assert [
        state.get_node_id_by_public_key(superlink.public_key_bytes(k)) for k in keys
    ] == ids


def test_patch_refuses_a_changed_superlink(keys, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cli, "SuperLinkLifespan", cli.SuperLinkLifespan)
    monkeypatch.setattr(superlink, "_CREATE_APP", "create_app(config, Lifespan)")
    original = cli.SuperLinkLifespan
    with caplog.at_level(logging.WARNING):
        assert not superlink.patch_lifespan(keys, tmp_path / "ids.json")
    assert cli.SuperLinkLifespan is original
    assert "registered after the SuperLink started" in caplog.text


def test_read_registered_round_trip(tmp_path):
    path = tmp_path / "ids.json"
    superlink.write_registered(path, [3, 2**63 + 5])
    assert superlink.read_registered(path) == [3, 2**63 + 5]
    assert superlink.read_registered(tmp_path / "missing.json") is None
