"""docker-compose.yml + docker/with-tls.yml + docker/Dockerfile, checked without an engine.

The compose services run ``fedmuscle server`` / ``fedmuscle client``; the test checks
their flags against the real typer commands, the Flower commands those expand to
against the installed 1.39 binaries' ``--help``, and the images, build arguments
(against the Dockerfile's stages), volumes, ports, healthchecks, profiles, TLS secrets
and .dockerignore against each other. test_compose_docker.py runs them for real.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import flwr
import pytest
import typer
import yaml

from fedmuscle_flwr.cli import deploy as cli_deploy
from fedmuscle_flwr.launch.deploy import certs
from fedmuscle_flwr.launch.deploy.client_options import (
    ClientOptions,
    supernode_command,
)
from fedmuscle_flwr.launch.deploy.processes import free_port
from fedmuscle_flwr.launch.deploy.superlink_process import (
    ServerOptions,
    superlink_command,
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


def dockerfile_stages() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """docker/Dockerfile: global ARG defaults, and per stage its base and ARG defaults."""
    text = (ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    global_args: dict[str, str] = {}
    stages: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        words = line.split(maxsplit=1)
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            base, _, name = words[1].partition(" AS ")
            current = stages.setdefault(name.strip(), {"FROM": base.strip()})
        elif words[0] == "ARG":
            name, _, default = words[1].partition("=")
            (global_args if current is None else current)[name] = default.strip('"')
        elif current is not None and words[0] in ("RUN", "COPY", "ENV"):
            current.setdefault("_body", "")
            current["_body"] += line + "\n"
    return global_args, stages


def test_services_images_and_dockerfile():
    spec = load("docker-compose.yml")
    assert set(spec["services"]) == {"superlink", *CLIENTS}
    global_args, stages = dockerfile_stages()
    for name, svc in spec["services"].items():
        build = svc["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        assert build["target"] == "app"  # one image, two tags: the command is the role
        role = "server" if name == "superlink" else "client"
        assert svc["image"].startswith(f"fedmuscle/{role}:")
        assert svc["stop_signal"] == "SIGINT" and svc["init"] is True
        assert svc["healthcheck"]["test"][0] == "CMD"
        # every container runs as the invoking user (runs/, state/, 0600 keys)
        assert svc["user"].startswith("${FEDMUSCLE_UID:?")
    assert flwr.__version__ == "1.39.0"
    assert "FLWR_VERSION" not in global_args  # the bug: empty inside the stage
    assert set(global_args) == {"BASE_IMAGE"}
    assert global_args["BASE_IMAGE"].endswith("-ubuntu24.04")  # glibc, not Alpine
    # one stage: the classic builder builds every stage up to the target, so a build
    # stage or per-role stages left an untagged multi-GB image behind (issue 24)
    assert set(stages) == {"app"} and stages["app"]["FROM"] == "${BASE_IMAGE}"
    body = stages["app"]["_body"]
    assert "COPY --from" not in body
    for arg in (
        "FLWR_VERSION",
        "TORCH_INDEX_URL",
        "TORCH_FIND_LINKS",
        "TORCH_PACKAGES",
    ):
        assert arg in stages["app"], f"ARG {arg} must be declared inside the stage"
        assert f"${{{arg}" in body, f"ARG {arg} is never used"
    assert stages["app"]["FLWR_VERSION"] == flwr.__version__
    assert stages["app"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    # the local wheels are really used: torch and torchvision only from them
    assert "pip-local-first.py" in body and "--local-only torch torchvision" in body
    # the build's CA bundle and pip's files are removed in the step that made them
    deps = next(
        line for line in body.splitlines() if "pip-local-first.py --find" in line
    )
    assert deps.rstrip().endswith("rm -rf /tmp/build")


def test_compose_build_args_default_to_the_dockerfile_ones():
    global_args, stages = dockerfile_stages()
    defaults = {**global_args, **stages["app"]}
    for name, svc in load("docker-compose.yml")["services"].items():
        for arg, value in svc["build"]["args"].items():
            value = str(value)
            m = re.fullmatch(r"\$\{FEDMUSCLE_\w+:-(.*)\}", value)
            assert (m.group(1) if m else value) == defaults[arg], (name, arg)


def test_dockerignore_sends_only_what_the_build_copies():
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # deny by default, then allow
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml", "README.md", "src", "clients", "server", "docker/build-ca",
        "docker/pip-local-first.py",
    }  # fmt: skip
    # no private keys, data, results, state or VCS can pass an allow rule
    for secret in (".git", "runs", "data", "certs", "state", ".env", ".venv"):
        assert not any(a == secret or a.startswith(secret + "/") for a in allowed)


def test_commands_use_real_flags(compose: dict[str, Any]):
    for name, svc in compose["services"].items():
        role = svc["command"][0]
        assert role == ("server" if name == "superlink" else "client"), name
        unknown = set(options(svc["command"])) - cli_flags(role)
        assert not unknown, f"{name}: flags fedmuscle {role} lacks: {unknown}"


def test_expanded_flower_commands_are_accepted_by_1_39(compose: dict[str, Any]):
    opts = server_opts(options(compose["services"]["superlink"]["command"]))
    # with --auth-keys: fedmuscle's launcher, then the SuperLink's flags after "--"
    for link in (
        superlink_command(opts),
        superlink_command(opts, (Path("keys.pub"), Path("ids.json"))),
    ):
        flower = link[link.index("--") + 1 :] if "--" in link else link
        assert {a for a in flower if a.startswith("--")} <= help_flags(
            "flower-superlink"
        )
    for name in CLIENTS:
        opts = client_opts(options(compose["services"][name]["command"]))
        node = supernode_command(opts, 9094)
        # warm clients: fedmuscle's launcher, then the SuperNode's flags after "--"
        flower = node[node.index("--") + 1 :] if "--" in node else node
        flags = {a for a in flower if a.startswith("--")}
        assert flags <= help_flags("flower-supernode")
        config = node[node.index("--node-config") + 1]
        assert shlex.split(config)[0].startswith("profile=")


def test_addresses_ports_and_healthchecks(compose: dict[str, Any]):
    link = compose["services"]["superlink"]
    cmd = options(link["command"])
    fleet_port = cmd["--address"].rsplit(":", 1)[1]
    assert cmd["--address"].startswith("0.0.0.0:")  # reachable from other containers
    assert any(str(p).split(":")[-1] == fleet_port for p in link["ports"])
    # the Control API (run submission = code execution on the server) listens on the
    # server container's loopback: no client container can reach it (issue 23), and
    # the only published port is the Fleet API
    control = cmd["--control-address"]
    assert control.startswith("127.0.0.1:")
    assert [str(p).split(":")[-1] for p in link["ports"]] == [fleet_port]
    assert control.rsplit(":", 1)[1] != fleet_port
    # healthy = the role's --ready-file exists (keys registered / node registered)
    assert link["healthcheck"]["test"] == ["CMD", "test", "-e", cmd["--ready-file"]]
    for name in CLIENTS:
        svc = compose["services"][name]
        c = options(svc["command"])
        assert c["--server"] == f"superlink:{fleet_port}"
        assert svc["healthcheck"]["test"] == ["CMD", "test", "-e", c["--ready-file"]]
        assert svc["depends_on"]["superlink"]["condition"] == "service_healthy"
        assert svc["restart"].startswith("on-failure")
        # clients leave after the run, but only once the server is gone: Compose
        # stops every service when the first container exits
        assert "--exit-after-run" in c and float(c["--wait-server-exit"]) >= 60
    assert "restart" not in link  # the server's exit status ends the demo


def test_volumes_and_profiles(compose: dict[str, Any]):
    known = {p.stem for p in (ROOT / "clients").glob("*.toml")}
    profiles, data, state = [], [], []
    for name in CLIENTS:
        svc = compose["services"][name]
        c = options(svc["command"])
        profiles.append(c["--profile"])
        mounts = {v.split(":")[1]: v for v in svc["volumes"]}
        assert mounts[c["--data-dir"]].endswith(":ro")
        data.append(mounts[c["--data-dir"]].split(":")[0])
        state.append(mounts[c["--state-dir"]].split(":")[0])
    assert set(profiles) <= known
    assert len(set(profiles)) == len(CLIENTS)
    assert all(d.startswith("./data/") for d in data) and len(set(data)) == len(CLIENTS)
    assert all(s.startswith("./state/") for s in state) and len(set(state)) == len(
        CLIENTS
    )
    # the folders docker/prepare-demo.sh creates (else Docker makes them, owned by root)
    prepare = (ROOT / "docker" / "prepare-demo.sh").read_text()
    assert "mkdir -p runs" in prepare and 'mkdir -p "state/client-$i"' in prepare
    link = compose["services"]["superlink"]
    runs = options(link["command"])["--output"]
    assert f"./runs:{runs}" in link["volumes"]


def test_the_demo_carries_its_local_comparison(compose: dict[str, Any]):
    cmd = compose["services"]["superlink"]["command"]
    assert cmd[cmd.index("--compare") + 1] == "local"  # the Δ column of the report
    preset = str(cmd[cmd.index("--preset") + 1])
    assert preset.endswith(":-default}")  # 8 rounds: a comparison that means something
    env = compose["services"]["superlink"]["environment"]
    assert env["FEDMUSCLE_RESUME"] == "${FEDMUSCLE_RESUME:-}"  # --resume, by variable
    assert env["FEDMUSCLE_EXEC_HINT"].endswith("exec superlink")


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


def test_local_wheels_over_http_keep_the_local_version(tmp_path: Path):
    # http.server quotes the "+" of torch-2.13.0+cpu: the build must still see +cpu
    spec = importlib.util.spec_from_file_location(
        "pip_local_first", ROOT / "docker" / "pip-local-first.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
                 "torchvision-0.28.0-cp311-cp311-manylinux_2_28_x86_64.whl"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url, found = f"http://127.0.0.1:{port}/", set()
        for _ in range(100):  # until the server listens
            try:
                found = module.local_wheels(url)
                break
            except OSError:
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(30)
    assert found == {("torch", "2.13.0+cpu"), ("torchvision", "0.28.0")}
    assert module.local_wheels(str(tmp_path)) == found  # a folder: the same


def test_demo_script_checks_its_arguments(tmp_path: Path):
    demo = ROOT / "docker" / "demo.sh"
    run = subprocess.run(["sh", "-n", str(demo)], capture_output=True, timeout=30)
    assert run.returncode == 0, run.stderr
    usage = subprocess.run([str(demo), "--help"], capture_output=True, text=True,
                           cwd=ROOT, timeout=30)  # fmt: skip
    assert usage.returncode == 0 and "--resume" in usage.stdout
    assert "set -u" not in usage.stdout  # the header only
    for args, said in ((["--bogus"], "unknown argument"),
                       (["--resume", str(tmp_path / "absent")], "no session folder"),
                       (["--resume"], "needs a session folder")):  # fmt: skip
        bad = subprocess.run([str(demo), *args], capture_output=True, text=True,
                             cwd=ROOT, timeout=30)  # fmt: skip
        assert bad.returncode == 2 and said in bad.stderr, (args, bad.stderr)
    # outside the repository root, or before docker/prepare-demo.sh: a clear refusal
    elsewhere = subprocess.run([str(demo)], capture_output=True, text=True,
                               cwd=tmp_path, timeout=30)  # fmt: skip
    assert elsewhere.returncode == 2 and "repository root" in elsewhere.stderr
