"""What a client trusts of the server, and the operator's edges (issue 13, 5-8).

* client state paths built from the server's run name stay below the state dir;
* ``fedmuscle certs`` never replaces a CA silently, adds node keys, and creates
  private keys 0600 from the start;
* config bounds (finite timeouts, a cap on rounds), edited checkpoints and
  corrupt metric rows are refused naming the field / file and line;
* TLS without node authentication is said at start.
"""

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from fedmuscle_flwr.clientapp.state import MAX_KEY_CHARS, ClientStateStore, safe_key
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.launch.deploy import certs
from fedmuscle_flwr.launch.deploy.server import (
    INSECURE_NOTE,
    ServerOptions,
    security_warnings,
)
from fedmuscle_flwr.runs.checkpoint import CHECKPOINT, ResumeError, open_run
from fedmuscle_flwr.runs.metrics import MetricsFileError, RunRecorder, read_rows

TRAVERSALS = [
    "/tmp/elsewhere",
    "../../escape",
    "a/../../b",
    "..",
    ".",
    "",
    "~root",
    "run\x00name",
    "C:\\windows\\x",
    "x" * 5000,
    "ok/../../../../etc/passwd",
]


# ------------------------------------------------------------- state paths
@pytest.mark.parametrize("run_key", TRAVERSALS)
def test_state_path_from_a_server_run_name_stays_under_state_dir(tmp_path, run_key):
    root = tmp_path / "state"
    store = ClientStateStore(root)
    path = store.path(run_key, 3)
    assert path.is_relative_to(root.resolve()), path
    assert path.parent.parent == root.resolve()  # exactly <root>/<key>/node-3.pt
    assert len(path.parent.name) <= MAX_KEY_CHARS
    store.save(run_key, 3, {"w": torch.zeros(1)})
    assert list(root.rglob("*.pt")) == [path]
    assert store.load(run_key, 3)["w"].shape == (1,)


def test_safe_keys_keep_plain_names_and_never_collide():
    assert safe_key("20261202-fedmuscle-ab12") == "20261202-fedmuscle-ab12"
    assert safe_key("a/b") != safe_key("a_b") and safe_key("a/b") != safe_key("a\\b")


# ------------------------------------------------------------------- certs
def test_certs_refuse_to_replace_a_ca_unless_forced(tmp_path):
    out = tmp_path / "tls"
    certs.generate(out, nodes=1)
    ca = (out / certs.CA_CERT).read_bytes()
    with pytest.raises(certs.CertsError, match="exists"):
        certs.generate(out, nodes=1)
    assert (out / certs.CA_CERT).read_bytes() == ca
    certs.generate(out, nodes=2, force=True)
    assert (out / certs.CA_CERT).read_bytes() != ca
    assert len(certs.read_public_keys(out / certs.KEY_LIST)) == 2


def test_add_nodes_keeps_the_ca_and_extends_the_key_list(tmp_path):
    out = tmp_path / "tls"
    certs.generate(out, nodes=2)
    ca = (out / certs.CA_CERT).read_bytes()
    before = certs.read_public_keys(out / certs.KEY_LIST)
    bundle = certs.add_nodes(out, 3)
    assert [k.name for k in bundle.node_keys] == ["node-3", "node-4", "node-5"]
    after = certs.read_public_keys(out / certs.KEY_LIST)
    assert after[:2] == before and len(after) == 5
    assert (out / certs.CA_CERT).read_bytes() == ca


def test_private_keys_created_0600_without_a_later_chmod(tmp_path, monkeypatch):
    # Prepare: no chmod at all, a permissive umask: only the creation mode counts
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)
    old = os.umask(0o022)
    try:
        certs.generate(tmp_path / "tls", nodes=1)
    finally:
        os.umask(old)
    for name in (certs.CA_KEY, certs.SERVER_KEY, f"{certs.NODES_DIR}/node-1"):
        mode = stat.S_IMODE((tmp_path / "tls" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_certs_cli_exit_status(tmp_path):
    from typer.testing import CliRunner

    from fedmuscle_flwr.cli import cli

    runner = CliRunner()
    out = str(tmp_path / "tls")
    assert runner.invoke(cli, ["certs", "--out", out, "--nodes", "1"]).exit_code == 0
    assert runner.invoke(cli, ["certs", "--out", out]).exit_code == 2
    added = runner.invoke(cli, ["certs", "--out", out, "--add-nodes", "2"])
    assert added.exit_code == 0
    assert len(certs.read_public_keys(tmp_path / "tls" / certs.KEY_LIST)) == 3


# ---------------------------------------------------------- config bounds
@pytest.mark.parametrize(
    ("flat", "needle"),
    [
        ({"federation.phase-timeout-s": float("inf")}, "phase-timeout-s"),
        ({"federation.wait-clients-s": float("nan")}, "wait-clients-s"),
        ({"federation.phase-timeout-s": 1e12}, "phase-timeout-s"),
        ({"federation.poll-s": 0}, "poll-s"),
        ({"num-rounds": 10**12}, "num-rounds"),
        ({"muscle.tau": float("inf")}, "muscle.tau"),
    ],
)
def test_config_bounds(flat, needle):
    with pytest.raises(ConfigError, match=needle):
        RunConfig.from_flat(flat)


# ------------------------------------------------------------- checkpoints
def finished_run(tmp_path) -> tuple[RunConfig, Path]:
    run = RunConfig.from_flat(
        {"num-rounds": 2, "output-dir": str(tmp_path), "run-name": "r"}
    )
    session = open_run(run, tmp_path / "r")
    session.recorder.record(1, "c0", phase="train", **{"task-loss": 1.0})
    session.save(1, {"clients": 1.0}, 1.0)
    resume = run.model_copy(
        update={"checkpoint": run.checkpoint.model_copy(update={"resume": True})}
    )
    return resume, tmp_path / "r"


def edit(run_dir: Path, **changes) -> None:
    path = run_dir / CHECKPOINT
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_checkpoint_round_beyond_the_run_refused_naming_the_field(tmp_path):
    run, run_dir = finished_run(tmp_path)
    edit(run_dir, round=99)
    with pytest.raises(ResumeError, match="field round = 99 .*num-rounds = 2"):
        open_run(run, run_dir)


def test_checkpoint_edited_config_hash_refused_naming_the_field(tmp_path):
    run, run_dir = finished_run(tmp_path)
    data = json.loads((run_dir / CHECKPOINT).read_text())
    data["config"]["muscle"]["tau"] = 0.5  # edited config, hash left as it was
    (run_dir / CHECKPOINT).write_text(json.dumps(data))
    with pytest.raises(ResumeError, match="field config-hash"):
        open_run(run, run_dir)


def test_corrupt_metrics_row_names_file_and_line(tmp_path):
    run, run_dir = finished_run(tmp_path)
    path = run_dir / "metrics.jsonl"
    path.write_text('{"round": 1}\n{"round": 1, "client": \n')
    with pytest.raises(MetricsFileError, match=r"metrics.jsonl, line 2"):
        read_rows(run_dir)
    edit(run_dir, rows=2)
    with pytest.raises(ResumeError, match=r"metrics.jsonl, line 2"):
        open_run(run, run_dir)


def test_resume_keeps_rows_and_names(tmp_path):
    run, run_dir = finished_run(tmp_path)
    edit(run_dir, names={"c0": {"node": 7, "key": ""}})
    session = open_run(run, run_dir)
    assert session.names == {"c0": {"node": 7, "key": ""}}
    assert len(session.recorder.rows) == 1
    assert isinstance(session.recorder, RunRecorder)


# ---------------------------------------------------------------- TLS note
def test_tls_without_auth_keys_warns(tmp_path):
    tls = ServerOptions(tls_dir=tmp_path)
    assert "without --auth-keys" in security_warnings(tls)[0]
    assert security_warnings(ServerOptions(tls_dir=tmp_path, auth_keys=tmp_path)) == []
    # --insecure is the operator's choice: one INFO line (INSECURE_NOTE), no warning
    assert security_warnings(ServerOptions()) == []
    assert "TLS is OFF" in INSECURE_NOTE and "--tls-dir" in INSECURE_NOTE


def test_full_disk_is_named_not_a_raw_oserror(tmp_path):
    from fedmuscle_flwr.runs.metrics import MetricsWriteError

    recorder = RunRecorder(tmp_path / "run")
    (tmp_path / "run" / "metrics.jsonl").symlink_to("/dev/full")  # ENOSPC on write
    with pytest.raises(
        MetricsWriteError, match=r"metrics.jsonl: cannot append .*--resume"
    ):
        recorder.record(1, "c0", phase="train")
    assert recorder.rows == []  # what is in memory is what is on disk
