"""``docker-compose up`` runs the demo to completion, plain and with TLS, on a real engine.

What docker/README.md tells a user, from a copy of the working tree (tracked and
untracked, not ignored files: what a clean clone has, committed to a fresh git repository
there): build the image, prepare the demo (``docker/prepare-demo.sh``), ``docker/demo.sh``
(``up --exit-code-from superlink``, the status read from the server's container), then
``docker/demo.sh --tls`` (``docker/with-tls.yml`` on top). Each run must end by itself
with status 0 and print no warning, error or traceback; every client must exit 0, and the
session folder under ./runs must hold the FedMuscle and the Local run with final metrics
for all 4 clients and a report whose Δ column and mean Δ row are filled, all owned by the
user the stack ran as; the clients' state is removed once their runs finished. One more
run is interrupted with SIGINT to the demo's process group (Ctrl-C in its terminal): the
demo's status is 130, every container exits 130, none is left running, with no traceback
and no abort. Afterwards ``git status --porcelain`` in the copy is empty (everything the
demo wrote is git-ignored). Compose v1 (``docker-compose``) is used, v2 (``docker
compose``) too where it is installed (the plugin, e.g. Debian trixie's docker-compose).

Runs only when asked for (``pytest -m docker``; tests/conftest.py skips it otherwise,
also on machines with Docker), and then skips with one line when no engine is reachable
and none can be started (as root with ``dockerd`` installed the test starts its own:
overlay2, else fuse-overlayfs, else vfs; ``--iptables=false``, ``--bridge=none``; stopped
and removed at the end), when the base image can be neither found, pulled nor built, or
when no torch source can be had (local wheels, or the torch index). Also marked
``long``.

Environment (all optional):
  DOCKER_HOST                  an engine to use instead of starting one
  FEDMUSCLE_DOCKER_DATA_ROOT   where a started engine keeps its data (default: a temp dir)
  FEDMUSCLE_BASE_IMAGE         the base image; if the engine lacks it and cannot pull it,
                               docker/offline-base.sh builds it (root, debootstrap)
  FEDMUSCLE_TORCH_INDEX_URL, FEDMUSCLE_TORCH_FIND_LINKS, FEDMUSCLE_TORCH_PACKAGES
                               where torch comes from (docker/README.md)
  FEDMUSCLE_TORCH_WHEELS       a folder of wheels the test serves on loopback (a free
                               port) as FEDMUSCLE_TORCH_FIND_LINKS, for machines without
                               the CPU index (docker/README.md)
  FEDMUSCLE_BUILD_CA           a CA file, or a folder of *.crt, pip trusts during the build
  FEDMUSCLE_FASHION_MNIST_DIR  the Fashion-MNIST IDX files (default: Debian's folder)
  FEDMUSCLE_DOCKER_REPORT      write the measured times and image sizes there (JSON)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedmuscle_flwr.launch.deploy.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.long]

ROOT = Path(__file__).resolve().parents[2]
PROFILES = {"fmnist-cnn", "fmnist-vit", "digits-resnet", "mosaic-mlp"}
CLIENTS = [f"supernode-{i}" for i in range(1, 5)]
ROLES = ("server", "client")
TLS = ["-f", "docker-compose.yml", "-f", "docker/with-tls.yml"]
DEFAULT_BASE = "flwr/base:1.39.0-py3.11-ubuntu24.04"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: the uid:gid the stack runs as when the test runs as root (not root, not 49999)
DEMO_UID = 4321


@dataclass
class Stack:
    """An engine, a copy of the repository prepared for the demo, and measurements."""

    repo: Path
    env: dict[str, str]
    project: str
    uid: int
    data: Path
    report: dict[str, object] = field(default_factory=dict)

    def run(
        self, args: list[str], timeout: float, check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run a command in the repository copy; its output goes to a log file."""
        log = self.repo.parent / "commands.log"
        with log.open("a") as fh:
            fh.write(f"\n$ {' '.join(args)}\n")
            fh.flush()
            proc = subprocess.run(
                args, cwd=self.repo, env=env or self.env, stdout=fh, stderr=subprocess.STDOUT,
                text=True, timeout=timeout,
            )  # fmt: skip
        if check and proc.returncode != 0:
            tail = log.read_text()[-6000:]
            pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{tail}")
        return proc

    def compose(
        self, files: list[str], *args: str, timeout: float = 3600, v2: bool = False
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "compose"] if v2 else ["docker-compose"]
        return self.run([*cmd, "-p", self.project, *files, *args], timeout, False)

    def demo_env(self, v2: bool) -> dict[str, str]:
        """docker/demo.sh's environment: this stack's project, Compose v1 or v2."""
        compose = "docker compose" if v2 else "docker-compose"
        return self.env | {"COMPOSE_PROJECT_NAME": self.project,
                           "FEDMUSCLE_COMPOSE": compose}  # fmt: skip

    def log_size(self) -> int:
        return len((self.repo.parent / "commands.log").read_text())

    def log_since(self, offset: int) -> str:
        return (self.repo.parent / "commands.log").read_text()[offset:]

    def docker(self, *args: str) -> str:
        return subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True,
            timeout=120, check=True,
        ).stdout.strip()  # fmt: skip


def engine_answers(env: dict[str, str]) -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], env=env, capture_output=True, timeout=30
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


#: storage drivers tried in this order: copy-on-write first; vfs (every layer and every
#: container a full copy of the image) only where neither overlay works
STORAGE_DRIVERS = ("overlay2", "fuse-overlayfs", "vfs")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(60)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def unmount_under(folder: Path) -> None:
    """Unmount what is still mounted under ``folder`` (deepest first)."""
    mounts = [
        line.split()[1].encode().decode("unicode_escape")
        for line in Path("/proc/self/mounts").read_text().splitlines()
    ]
    inside = [m for m in mounts if Path(m).is_relative_to(folder)]
    for mount in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def start_dockerd(
    env: dict[str, str], data_root: Path, run_dir: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """dockerd on the first storage driver of STORAGE_DRIVERS that starts; else skip."""
    logs = []
    for driver in STORAGE_DRIVERS:
        cmd = ["dockerd", f"--storage-driver={driver}", "--iptables=false",
               "--bridge=none", "--data-root", str(data_root / driver),
               "--exec-root", str(run_dir / "exec"),
               "--pidfile", str(run_dir / "docker.pid"), "-H", env["DOCKER_HOST"]]  # fmt: skip
        with log_path.open("w") as log:
            daemon = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while daemon.poll() is None and time.monotonic() < deadline:
            if engine_answers(env):
                return daemon
            time.sleep(1)
        stop(daemon)
        logs.append(f"--- {driver}:\n{log_path.read_text()[-2000:]}")
    pytest.skip("dockerd did not start with any storage driver:\n" + "\n".join(logs))


@contextlib.contextmanager
def docker_engine(tmp: Path) -> Iterator[dict[str, str]]:
    """The environment of a reachable engine: DOCKER_HOST's, or one started here."""
    # vfs engines take minutes to create a container: Compose v1's default 60 s
    # HTTP timeout ended the first measured TLS run while it recreated the server
    env = {
        **os.environ,
        "COMPOSE_INTERACTIVE_NO_CLI": "1",
        "COMPOSE_HTTP_TIMEOUT": "900",
    }
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        pytest.skip("no docker / docker-compose client installed")
    if env.get("DOCKER_HOST") and engine_answers(env):
        yield env
        return
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip(
            "no Docker engine reachable, and none can be started (root+dockerd)"
        )
    data_root = Path(
        os.environ.get("FEDMUSCLE_DOCKER_DATA_ROOT") or tmp / "docker-data"
    )
    run_dir = Path(f"/run/fedmuscle-test-docker-{os.getpid()}")  # short socket paths
    run_dir.mkdir(parents=True)
    sock = run_dir / "docker.sock"
    env["DOCKER_HOST"] = f"unix://{sock}"
    daemon = start_dockerd(env, data_root, run_dir, tmp / "dockerd.log")
    try:
        yield env
    finally:
        stop(daemon)
        unmount_under(run_dir)  # dockerd leaves exec/netns/default mounted
        shutil.rmtree(run_dir, ignore_errors=True)
        if not os.environ.get("FEDMUSCLE_DOCKER_DATA_ROOT"):
            shutil.rmtree(data_root, ignore_errors=True)


def copy_worktree(dest: Path) -> None:
    """What a clean clone has: tracked files plus untracked ones git does not ignore.

    Committed to a fresh repository in ``dest``, so that ``git status`` there shows
    what the demo leaves behind.
    """
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=t@test"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "clean clone"]):
        subprocess.run([*git, *args], capture_output=True, check=True, timeout=120)


def untracked(repo: Path) -> list[str]:
    """``git status --porcelain`` of the copy: what the demo left that git would see."""
    return subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.splitlines()  # fmt: skip


def ensure_base_image(stack: Stack, base: str) -> None:
    """The engine has ``base``, pulled or built by docker/offline-base.sh; else skip."""
    if subprocess.run(["docker", "image", "inspect", base], env=stack.env,
                      capture_output=True).returncode == 0:  # fmt: skip
        return
    if stack.run(["docker", "pull", base], 600, check=False).returncode == 0:
        return
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip(f"no base image {base}: not pullable, and no root+debootstrap")
    t0 = time.monotonic()
    stack.run(["docker/offline-base.sh", base], 1800)
    stack.report["base_build_s"] = round(time.monotonic() - t0, 1)


DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def reachable(url: str) -> bool:
    """An HTTP(S) URL answers (any status below 500) within 20 s."""
    try:
        with urllib.request.urlopen(url, timeout=20) as page:
            return bool(page.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def check_torch_source() -> None:
    """Local wheels, or the torch index: else skip (one line)."""
    if os.environ.get("FEDMUSCLE_TORCH_FIND_LINKS"):
        return
    folder = os.environ.get("FEDMUSCLE_TORCH_WHEELS")
    if folder:
        if not list(Path(folder).glob("torch-*.whl")):
            pytest.skip(f"FEDMUSCLE_TORCH_WHEELS={folder} holds no torch wheel")
        return
    index = os.environ.get("FEDMUSCLE_TORCH_INDEX_URL") or DEFAULT_TORCH_INDEX
    if not reachable(index.rstrip("/") + "/torch/"):
        pytest.skip(
            f"torch index {index} not reachable: set FEDMUSCLE_TORCH_WHEELS "
            "(docker/README.md, Test)"
        )


@contextlib.contextmanager
def wheel_server(env: dict[str, str], tmp: Path) -> Iterator[None]:
    """Serve FEDMUSCLE_TORCH_WHEELS on loopback as the build's TORCH_FIND_LINKS."""
    folder = os.environ.get("FEDMUSCLE_TORCH_WHEELS")
    if not folder or os.environ.get("FEDMUSCLE_TORCH_FIND_LINKS"):
        yield
        return
    port = free_port()
    with (tmp / "wheels.log").open("w") as log:
        server = subprocess.Popen(
            ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1",
             "--directory", folder], stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    env["FEDMUSCLE_TORCH_FIND_LINKS"] = f"http://127.0.0.1:{port}/"
    try:
        yield
    finally:
        stop(server)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("compose")
    data = Path(os.environ.get("FEDMUSCLE_FASHION_MNIST_DIR") or FASHION_MNIST)
    if not (data / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no Fashion-MNIST IDX files in {data}")
    check_torch_source()
    with docker_engine(tmp) as env, wheel_server(env, tmp):
        repo = tmp / "repo"
        copy_worktree(repo)
        ca = os.environ.get("FEDMUSCLE_BUILD_CA")
        for crt in [] if not ca else sorted(Path(ca).glob("*.crt")) or [Path(ca)]:
            shutil.copy(crt, repo / "docker" / "build-ca" / crt.name)
        uid = DEMO_UID if os.geteuid() == 0 else os.geteuid()
        env |= {
            "FEDMUSCLE_UID": str(uid), "FEDMUSCLE_GID": str(uid),
            "FEDMUSCLE_FLEET_PORT": str(free_port()),
            "FEDMUSCLE_CONTROL_PORT": str(free_port()),
            "FEDMUSCLE_BASE_IMAGE": os.environ.get("FEDMUSCLE_BASE_IMAGE", DEFAULT_BASE),
        }  # fmt: skip
        stack = Stack(repo, env, f"fmtest{os.getpid()}", uid, data)
        try:
            ensure_base_image(stack, env["FEDMUSCLE_BASE_IMAGE"])
            dangling = set(stack.docker("images", "-qf", "dangling=true").split())
            t0 = time.monotonic()
            if stack.compose([], "build", timeout=5400).returncode != 0:
                pytest.fail((tmp / "commands.log").read_text()[-6000:])
            stack.report["build_s"] = round(time.monotonic() - t0, 1)
            ids = {stack.docker("image", "inspect", "-f", "{{.Id}}",
                                f"fedmuscle/{role}:0.1.0") for role in ROLES}  # fmt: skip
            assert len(ids) == 1  # one image for both roles
            size = stack.docker("image", "inspect", "-f", "{{.Size}}", ids.pop())
            stack.report["image_mb"] = round(int(size) / 1e6)
            # the build leaves no untagged image behind (issue 24: a 6.9 GB one)
            new = set(stack.docker("images", "-qf", "dangling=true").split())
            stack.report["new_dangling_images"] = sorted(new - dangling)
            stack.run(["docker/prepare-demo.sh", str(data)], 120)
            yield stack
        finally:
            for files in ([], TLS):
                stack.compose(
                    files, "down", "--volumes", "--remove-orphans", timeout=300
                )
            stack.report["load_average"] = [round(x, 2) for x in os.getloadavg()]
            if out := os.environ.get("FEDMUSCLE_DOCKER_REPORT"):
                Path(out).write_text(json.dumps(stack.report, indent=2) + "\n")


#: what a good run must not print (Flower's, ours, Compose's, Python's, the C++ runtime's)
ALARMS = re.compile(r"\bWARN(ING)?\b|\bERROR\b|\bCRITICAL\b|Traceback|terminate called")


def project_filter(stack: Stack, svc: str = "") -> list[str]:
    """``docker ps`` filters for the stack's containers (Compose v1 and v2 labels)."""
    labels = [f"label=com.docker.compose.project={stack.project}"]
    labels += [f"label=com.docker.compose.service={svc}"] if svc else []
    return [arg for label in labels for arg in ("--filter", label)]


def container_states(stack: Stack) -> dict[str, dict[str, object]]:
    """``{service: docker inspect .State}`` of the stack's containers."""
    states = {}
    for svc in ["superlink", *CLIENTS]:
        (cid,) = stack.docker("ps", "-aq", *project_filter(stack, svc)).split()
        states[svc] = json.loads(stack.docker("inspect", "-f", "{{json .State}}", cid))
    return states


def run_demo(stack: Stack, tls: bool, name: str, v2: bool = False) -> Path:
    """``docker/demo.sh`` to the end, no alarm printed; return the new session folder."""
    before = set((stack.repo / "runs").iterdir())
    start = stack.log_size()
    t0 = time.monotonic()
    cmd = ["docker/demo.sh", *(["--tls"] if tls else [])]
    proc = stack.run(cmd, 3600, check=False, env=stack.demo_env(v2))
    stack.report[f"{name}_run_s"] = round(time.monotonic() - t0, 1)
    out = stack.log_since(start)
    assert proc.returncode == 0, out[-8000:]
    # every client finished its part (130 = stopped before the run ended, 1 = failed)
    for svc, state in container_states(stack).items():
        assert state["ExitCode"] == 0 and not state["OOMKilled"], (svc, state, out)
    # a good run is quiet: no warning, error or traceback anywhere in its output
    alarms = [line for line in out.splitlines() if ALARMS.search(line)]
    assert not alarms, alarms[:10]
    assert "report: " in out  # the server's output is among what was checked
    stack.compose(TLS if tls else [], "down", "--volumes", timeout=300, v2=v2)
    assert not untracked(stack.repo)
    (session,) = set((stack.repo / "runs").iterdir()) - before
    return session


def assert_final_metrics(session: Path, uid: int) -> None:
    for algorithm in ("fedmuscle", "local"):  # the run and its Local comparison
        run_dir = session / algorithm
        config = json.loads((run_dir / "config.json").read_text())
        rounds = config["num-rounds"]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert set(summary["clients"]) == PROFILES
        for client, row in summary["clients"].items():
            assert row["round"] == rounds, (client, row)
            assert isinstance(row["metric"], float) and 0.0 <= row["metric"] <= 1.0
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
        final = {r["client"] for r in rows if r["round"] == rounds and "metric" in r}
        assert final == PROFILES
    # the report's Δ column and mean Δ row are filled, and so is the Δ plot
    report = (session / "report.md").read_text()
    assert "No finished `local` run" not in report
    table = [line for line in report.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[-3:] == ["local", "fedmuscle", "Δ fedmuscle %"], header
    delta = {
        line.split("|")[1].strip(): line.split("|")[-2].strip() for line in table[1:]
    }
    assert set(delta) == PROFILES | {"**mean Δ**"}, delta
    for client, value in delta.items():
        assert re.fullmatch(r"\**[+-]\d+\.\d\**", value), (client, value)
    assert (session / "plots" / "delta.png").stat().st_size > 0
    # results belong to the user the stack ran as
    for path in [session, *session.rglob("*")]:
        assert path.stat().st_uid == uid, path


def assert_state_removed(stack: Stack) -> None:
    """Clients whose runs all finished leave no state behind."""
    left = [p for p in (stack.repo / "state").rglob("*") if p.is_file()]
    assert not left, left


def test_plain_compose_runs_to_completion(stack: Stack) -> None:
    session = run_demo(stack, False, "plain")
    assert_final_metrics(session, stack.uid)
    assert_state_removed(stack)
    assert not stack.report["new_dangling_images"]


def test_tls_compose_runs_to_completion(stack: Stack) -> None:
    stack.run(["docker/prepare-demo.sh", "--certs", str(stack.data)], 300)
    key = stack.repo / "certs" / "nodes" / "node-1"
    assert key.stat().st_uid == stack.uid and key.stat().st_mode & 0o077 == 0
    # no warning either (the clients' shutdown probes complete TLS): run_demo checks
    session = run_demo(stack, True, "tls")
    assert_final_metrics(session, stack.uid)


def interrupt_demo(stack: Stack, v2: bool) -> None:
    """Ctrl-C once training started: status 130, every container 130, none running."""
    log = stack.repo.parent / f"ctrl-c{'-v2' if v2 else ''}.log"
    with log.open("w") as out:
        demo = subprocess.Popen(["docker/demo.sh"], cwd=stack.repo, env=stack.demo_env(v2),
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 900
            while "round 1/8" not in log.read_text():  # training has started
                assert demo.poll() is None and time.monotonic() < deadline, (
                    log.read_text()
                )
                time.sleep(2)
            # a terminal's Ctrl-C: SIGINT to the foreground process group
            os.killpg(demo.pid, signal.SIGINT)
            status = demo.wait(300)
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
    running = stack.docker("ps", "-q", *project_filter(stack))
    states = container_states(stack)
    logs = subprocess.run(
        ["docker-compose", "-p", stack.project, "logs", "--no-color"],
        cwd=stack.repo, env=stack.env, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    stack.compose([], "down", "--volumes", timeout=300, v2=v2)
    text = log.read_text()
    assert status == 130, text[-4000:]  # Compose v1 itself says 0 (docker/demo.sh)
    assert not running, running
    for svc, state in states.items():
        assert state["ExitCode"] == 130, (svc, state, logs[-4000:])
    assert "Traceback" not in logs + text, logs[-4000:]
    assert "terminate called" not in logs  # no abort (134)
    # the demo says how to continue the session it names, or start afresh
    assert re.search(r"--resume runs/\d{8}-\d{6}-default;", text), text[-2000:]
    assert not untracked(stack.repo)


def test_ctrl_c_stops_every_container_with_130(stack: Stack) -> None:
    interrupt_demo(stack, v2=False)


def v2_or_skip(stack: Stack) -> None:
    if stack.run(["docker", "compose", "version"], 60, check=False).returncode != 0:
        pytest.skip("docker compose v2 is not installed")


def test_compose_v2_where_present(stack: Stack) -> None:
    v2_or_skip(stack)
    assert_final_metrics(run_demo(stack, False, "plain_v2", v2=True), stack.uid)


def test_compose_v2_ctrl_c_where_present(stack: Stack) -> None:
    v2_or_skip(stack)
    interrupt_demo(stack, v2=True)
