"""A hostile server against an unmodified client in a real deployment (issue 23).

The mirror of ``test_hostile.py``: Flower's own SuperLink on loopback runs a
hostile ServerApp (``tests/hostile_server.py``), submitted with ``flwr run``;
``fedmuscle client`` (warm, the default) serves the ``mnist5k-cnn`` profile,
whose private data are MNIST-5k images, with default settings except a privacy
floor (``policy.privacy.min-noise``). The server sends each attack of issue
23's table; the test asserts on what the server received:

* the honest instructions are answered (the client works);
* every attack is refused, one reply naming the rule, and the client logs the
  same reason; a refusal carries no array;
* nothing derived per sample from private data left the client: no reply to
  the ``mnist-5k-public`` attacks carries an array; no weights, no logits;
* the server cannot lower the privacy floor (its ``noise = 0`` evaluation equals
  the one at the floor);
* a new run name per message is refused and the state folder holds only 0700
  folders and 0600 files.

Figures: docs/reliability.md §2.5.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path

import pytest

from fedmuscle_flwr.clientapp.bundle import installed_version
from fedmuscle_flwr.launch.deploy.control import flwr_json, write_connection
from fedmuscle_flwr.launch.deploy.processes import (
    flower_env,
    flower_program,
    free_port,
)
from tests.integration.test_faults import (  # noqa: F401 (fleet_procs: a fixture)
    ROOT,
    _report,
    fleet_procs,
    wait_for,
)

pytestmark = [pytest.mark.integration]

#: attack -> the rule the client's refusal names (None: answered honestly)
EXPECTED = {
    "honest-train": None,
    "honest-eval": None,
    "private-as-public": "policy.disjoint-public",
    "private-as-public-eval": "policy.disjoint-public",
    "logits": "policy.uploads",
    "weights": "policy.uploads",
    "privacy-off": None,
    "privacy-floor": None,
    "huge-dim": "policy.caps.dim",
    "huge-encode": "policy.caps.encode-batches",
    "huge-probe": "policy.caps.probe-size",
    **{f"new-run-key-{i}": "policy.run-key" for i in range(4)},
}
#: the client's privacy floor (tests/hostile_server.py sends the same value)
FLOOR = "0.3"


def hostile_app(folder: Path) -> Path:
    """A Flower app whose ServerApp is the hostile one.

    It passes the client's bundle pin (the FedMuscle name and version, our
    ClientApp): the ServerApp is imported by module path on the server only.
    """
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "fedmuscle-flwr"\nversion = "{installed_version()}"\n\n'
        '[tool.flwr.app]\npublisher = "attacker"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "tests.hostile_server:app"\n'
        'clientapp = "fedmuscle_flwr.clientapp.app:app"\n\n'
        '[tool.flwr.app.config]\npreset = ""\n'
    )
    return folder


def superlink(fleet: str, control: str, env: dict[str, str], log: Path):
    host, port = control.rsplit(":", 1)
    cmd = [flower_program("flower-superlink"), "--insecure",
           "--fleet-api-type", "grpc-rere", "--fleet-api-address", fleet,
           "--host", host, "--port", port, "--isolation", "subprocess",
           "--disable-runtime-dependency-installation"]  # fmt: skip
    out = log.open("w")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log.parent)  # fmt: skip


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_unmodified_client_refuses_a_hostile_server(tmp_path, fleet_procs):  # noqa: F811
    t0 = time.monotonic()
    fleet, control = (f"127.0.0.1:{free_port()}" for _ in range(2))
    pythonpath = f"{ROOT}:{ROOT / 'src'}"
    env = flower_env(tmp_path / "flwr-home", {"PYTHONPATH": pythonpath})
    write_connection(tmp_path / "flwr-home", control, None)
    seen_file, settings = tmp_path / "seen.json", tmp_path / "settings.toml"
    settings.write_text(f'out = "{seen_file}"\nwait-s = 180\nreply-s = 120\n')
    # Prepare: the SuperLink with the hostile ServerApp, the unmodified client
    link = superlink(fleet, control, env, tmp_path / "superlink.log")
    try:
        state = tmp_path / "state"
        fleet_procs.start("victim", [
            "client", "--server", fleet, "--insecure", "--profile", "mnist5k-cnn",
            "--state-dir", str(state), "--set", "data.max-train=64",
            "--set", "data.max-test=64",
            "--set", f"policy.privacy.min-noise={FLOOR}",
            "--ready-file", str(tmp_path / "victim-ready")])  # fmt: skip
        wait_for((tmp_path / "victim-ready").exists, 120, "the client to join")
        # Execute: submit the hostile run, wait for its end
        app = hostile_app(tmp_path / "app")
        run = flwr_json(["run", str(app), "fedmuscle", "--run-config",
                         f'preset="{settings}"'], env, 120)  # fmt: skip
        run_id = str(run["run-id"])

        def finished() -> bool:
            data = flwr_json(["list", "fedmuscle", "--run-id", run_id], env)
            return str(data["runs"][0]["status"]).startswith("finished")

        wait_for(finished, 240, "the hostile run to finish", poll=2.0)
    finally:
        link.terminate()
        link.wait(30)
    seen = json.loads(seen_file.read_text())
    wall = time.monotonic() - t0
    by_attack = {r["attack"]: r for r in seen}
    assert set(by_attack) == set(EXPECTED), sorted(by_attack)
    victim_log = fleet_procs.log("victim")
    # Assert: honest instructions answered; every attack refused, rule named
    for attack, rule in EXPECTED.items():
        got = by_attack[attack]
        assert "error" not in got and "timed-out" not in got, (attack, got)
        refusal = got["configs"].get("refusal")
        if rule is None:
            assert refusal is None, (attack, refusal)
            assert got["arrays"], attack
            continue
        assert refusal is not None and refusal["rule"] == rule, (attack, got)
        assert not got["arrays"], (attack, got["arrays"])  # nothing computed left
        assert f"refused by client policy: {rule}" in victim_log, attack
    # Assert: nothing per sample of the private data, no weights, no logits
    leaked = [r for r in seen if r["attack"].startswith("private-as-public")]
    assert all(not r["arrays"] for r in leaked)
    for r in seen:
        for key, arr in r.get("arrays", {}).items():
            assert not key.startswith("weights/"), (r["attack"], key)
            if key.endswith("/z"):  # d, never C logits
                assert arr["shape"][-1] == 16, (r["attack"], key, arr)
    # Assert: the privacy floor held against noise = 0
    off, floor = by_attack["privacy-off"]["z"], by_attack["privacy-floor"]["z"]
    assert off is not None and off == floor
    # Assert: one state folder (the honest run), private modes
    folders = [p for p in state.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    assert _mode(state) == 0o700 and _mode(folders[0]) == 0o700
    assert all(_mode(f) == 0o600 for f in folders[0].iterdir())
    _report(tmp_path, {
        "wall-s": round(wall, 1),
        "refusals": {a: by_attack[a]["configs"]["refusal"]["reason"][:90]
                     for a, rule in EXPECTED.items() if rule},
    })  # fmt: skip
