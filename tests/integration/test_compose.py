"""docker-compose.yml + docker/with-tls.yml, checked without a Docker engine.

The compose services run ``fedmuscle server`` / ``fedmuscle client``; the test checks
their flags against the real typer commands, the Flower commands those expand to
against the installed 1.39 binaries' ``--help``, and the images, volumes, ports,
healthchecks, profiles and TLS secrets against each other.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import flwr
import pytest
import typer
import yaml

from fedmuscle_flwr.cli import deploy as cli_deploy
from fedmuscle_flwr.launch.deploy import certs
from fedmuscle_flwr.launch.deploy.server import (
    ClientOptions,
    ServerOptions,
    superlink_command,
    supernode_command,
)

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = [f"supernode-{i}" for i in range(1, 5)]


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def merged() -> dict[str, Any]:
    """docker-compose.yml with docker/with-tls.yml applied (compose merge rules)."""
    base, tls = load("docker-compose.yml"), load("docker/with-tls.yml")
    for name, override in tls["services"].items():
        base["services"][name].update(override)  # command/secrets replace wholesale
    base["secrets"] = tls["secrets"]
    return base


@cache
def help_flags(binary: str) -> set[str]:
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60)
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.stdout))


@cache
def cli_flags(command: str) -> set[str]:
    app = typer.Typer()
    cli_deploy.register(app)
    click_group = typer.main.get_command(app)
    params = click_group.commands[command].params  # type: ignore[attr-defined]
    return {opt for p in params for opt in [*p.opts, *p.secondary_opts]}


def options(command: list[str]) -> dict[str, str]:
    """``[cmd, --a, x, --flag, --b, y]`` -> ``{--a: x, --flag: "", --b: y}``."""
    out, args = {}, [str(a) for a in command[1:]]
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            out[arg] = "" if nxt.startswith("--") else nxt
    return out


def server_opts(cmd: dict[str, str]) -> ServerOptions:
    tls = Path(cmd["--tls-dir"]) if "--tls-dir" in cmd else None
    keys = Path(cmd["--auth-keys"]) if "--auth-keys" in cmd else None
    return ServerOptions(cmd["--address"], cmd["--control-address"], tls, keys)


def client_opts(cmd: dict[str, str]) -> ClientOptions:
    ca = Path(cmd["--tls-ca"]) if "--tls-ca" in cmd else None
    key = Path(cmd["--auth-key"]) if "--auth-key" in cmd else None
    return ClientOptions(cmd["--server"], cmd["--profile"], tls_ca=ca, auth_key=key)


@pytest.fixture(params=["plain", "tls"])
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load("docker-compose.yml") if request.param == "plain" else merged()


def test_services_images_and_dockerfiles():
    spec = load("docker-compose.yml")
    assert set(spec["services"]) == {"superlink", *CLIENTS}
    for name, svc in spec["services"].items():
        dockerfile = ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
        assert dockerfile.is_file(), name
        assert svc["build"]["args"]["FLWR_VERSION"] == flwr.__version__ == "1.39.0"
        text = dockerfile.read_text()
        base = "flwr/superlink" if name == "superlink" else "flwr/supernode"
        assert f"FROM {base}:${{FLWR_VERSION}}" in text
        assert 'ENTRYPOINT ["fedmuscle"]' in text
        assert svc["stop_signal"] == "SIGINT"
        assert svc["healthcheck"]["test"][0] == "CMD"
    client_docker = (ROOT / "docker" / "client.Dockerfile").read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in client_docker


def test_commands_use_real_flags(compose: dict[str, Any]):
    for name, svc in compose["services"].items():
        role = svc["command"][0]
        assert role == ("server" if name == "superlink" else "client"), name
        unknown = set(options(svc["command"])) - cli_flags(role)
        assert not unknown, f"{name}: flags fedmuscle {role} lacks: {unknown}"


def test_expanded_flower_commands_are_accepted_by_1_39(compose: dict[str, Any]):
    link = superlink_command(
        server_opts(options(compose["services"]["superlink"]["command"]))
    )
    assert {a for a in link if a.startswith("--")} <= help_flags("flower-superlink")
    for name in CLIENTS:
        opts = client_opts(options(compose["services"][name]["command"]))
        node = supernode_command(opts, 9094)
        assert {a for a in node if a.startswith("--")} <= help_flags("flower-supernode")
        config = node[node.index("--node-config") + 1]
        assert shlex.split(config)[0].startswith("profile=")


def test_addresses_ports_and_healthchecks(compose: dict[str, Any]):
    link = compose["services"]["superlink"]
    cmd = options(link["command"])
    fleet_port = cmd["--address"].rsplit(":", 1)[1]
    assert cmd["--address"].startswith("0.0.0.0:")  # reachable from other containers
    assert any(str(p).split(":")[-1] == fleet_port for p in link["ports"])
    assert f"', {fleet_port})" in link["healthcheck"]["test"][-1]
    for name in CLIENTS:
        svc = compose["services"][name]
        c = options(svc["command"])
        assert c["--server"] == f"superlink:{fleet_port}"
        assert f"', {c['--runtime-port']})" in svc["healthcheck"]["test"][-1]
        assert svc["depends_on"]["superlink"]["condition"] == "service_healthy"


def test_volumes_and_profiles(compose: dict[str, Any]):
    known = {p.stem for p in (ROOT / "clients").glob("*.toml")}
    profiles, data = [], []
    for name in CLIENTS:
        svc = compose["services"][name]
        c = options(svc["command"])
        profiles.append(c["--profile"])
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert c["--data-dir"] in mounts and svc["volumes"][0].endswith(":ro")
        assert c["--state-dir"] in mounts
        assert mounts[c["--state-dir"]] in compose["volumes"]
        data.append(mounts[c["--data-dir"]])
    assert set(profiles) <= known
    assert len(set(profiles)) == len(CLIENTS) and len(set(data)) == len(CLIENTS)
    runs = options(compose["services"]["superlink"]["command"])["--output"]
    assert any(
        v.endswith(f":{runs}") for v in compose["services"]["superlink"]["volumes"]
    )


def test_plain_compose_is_insecure_and_tls_override_is_not():
    plain, tls = load("docker-compose.yml"), merged()
    for name in ["superlink", *CLIENTS]:
        assert "--insecure" in options(plain["services"][name]["command"])
        assert "--insecure" not in options(tls["services"][name]["command"])


def test_tls_secrets_match_command_paths():
    spec = merged()
    link = spec["services"]["superlink"]
    targets = {s["target"] for s in link["secrets"]}
    tls_dir = options(link["command"])["--tls-dir"]
    for filename in (certs.CA_CERT, certs.SERVER_CERT, certs.SERVER_KEY):
        assert f"{tls_dir}/{filename}" in targets
    assert options(link["command"])["--auth-keys"] in targets
    for name in CLIENTS:
        svc = spec["services"][name]
        c = options(svc["command"])
        assert {c["--tls-ca"], c["--auth-key"]} == {s["target"] for s in svc["secrets"]}
    used = {s["source"] for svc in spec["services"].values() for s in svc["secrets"]}
    assert used == set(spec["secrets"])
    files = {Path(s["file"]).as_posix() for s in spec["secrets"].values()}
    assert "certs/ca.crt" in files and "certs/authorized-nodes.txt" in files
    assert {f"certs/nodes/node-{i}" for i in range(1, 5)} <= files
