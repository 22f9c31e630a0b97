"""The SuperLink launcher (launch/deploy/superlink_main.py) with Flower's LinkState.

Its keys enter a real LinkState as the Control API's ``RegisterNode`` would put
them; the start-up hook it rides on (``register-before-fleet``) is tested against
Flower in ``tests/unit/wire/test_flower_compat.py``.
"""

from types import SimpleNamespace

import pytest
from flwr.common.constant import NOOP_FLWR_AID
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.superlink.config_loader import (
    get_federation_manager,
    get_objectstore_linkstate_factories,
)

from fedmuscle_flwr.launch.deploy import superlink_main as superlink
from fedmuscle_flwr.launch.deploy.certs import generate, read_public_keys
from fedmuscle_flwr.wire import flower_compat

cli = flower_compat.flower_superlink_module()


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


def test_keys_are_registered_before_the_fleet_api(keys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "SuperLinkLifespan", cli.SuperLinkLifespan)  # undone
    out = tmp_path / "ids.json"
    assert superlink.register_at_start(keys, out)
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


def test_switched_off_nothing_is_registered_at_start(keys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "SuperLinkLifespan", cli.SuperLinkLifespan)
    monkeypatch.setenv(flower_compat.OFF_ENV, flower_compat.REGISTER_BEFORE_FLEET)
    original = cli.SuperLinkLifespan
    assert not superlink.register_at_start(keys, tmp_path / "ids.json")
    assert cli.SuperLinkLifespan is original


def test_read_registered_round_trip(tmp_path):
    path = tmp_path / "ids.json"
    superlink.write_registered(path, [3, 2**63 + 5])
    assert superlink.read_registered(path) == [3, 2**63 + 5]
    assert superlink.read_registered(tmp_path / "missing.json") is None
