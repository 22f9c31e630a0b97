"""A client's SuperNode command line and ``--node-config`` (client_options.py)."""

import sys
from pathlib import Path

from fedmuscle_flwr.launch.deploy.client_options import (
    SUPERNODE_MAIN,
    ClientOptions,
    data_env,
    node_config,
    supernode_command,
)


def test_warm_runs_our_supernode_with_process_isolation(tmp_path: Path):
    opts = ClientOptions(server="10.0.0.1:9092", profile="fmnist", idle_s=0.3)
    cmd = supernode_command(opts, runtime_port=9094)
    assert cmd[:3] == [sys.executable, "-m", SUPERNODE_MAIN]
    ours, flower = cmd[: cmd.index("--")], cmd[cmd.index("--") + 1 :]
    assert ours[ours.index("--idle-s") + 1] == "0.3"
    assert flower[:2] == ["--isolation", "process"]
    assert flower[flower.index("--superlink") + 1] == "10.0.0.1:9092"
    assert flower[flower.index("--port") + 1] == "9094"
    assert "--insecure" in flower


def test_stock_runs_flowers_supernode_with_tls_and_auth(tmp_path: Path):
    ca, key = tmp_path / "ca.crt", tmp_path / "node-1"
    opts = ClientOptions(
        server="h:1", profile="p", warm=False, tls_ca=ca, auth_key=key, max_retries=2
    )
    cmd = supernode_command(opts, runtime_port=1)
    assert Path(cmd[0]).name == "flower-supernode"
    assert cmd[1:3] == ["--isolation", "subprocess"] and "--insecure" not in cmd
    assert cmd[cmd.index("--root-certificates") + 1] == str(ca)
    assert cmd[cmd.index("--auth-supernode-private-key") + 1] == str(key)
    assert cmd[cmd.index("--max-retries") + 1] == "2"


def test_node_config_carries_profile_state_and_overrides(tmp_path: Path):
    opts = ClientOptions(
        server="h:1",
        profile="fmnist",
        state_dir=tmp_path / "state",
        overrides={"train.local-epochs": 2, "model.name": "cnn"},
    )
    text = node_config(opts)
    assert text.startswith('profile="fmnist" ')
    assert "train.local-epochs=2" in text and 'model.name="cnn"' in text
    assert f'state-dir="{(tmp_path / "state").resolve()}"' in text


def test_a_data_dir_without_datasets_gives_no_env_and_a_warning(tmp_path, caplog):
    assert data_env(tmp_path) == {}
    assert "holds no known dataset folder" in caplog.text
