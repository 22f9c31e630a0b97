"""``--resume`` on the command line: refused before anything starts when it cannot work."""

import pytest
from typer.testing import CliRunner

from fedmuscle_flwr.cli import cli
from fedmuscle_flwr.cli.common import build_run_config
from fedmuscle_flwr.launch.inprocess import InProcessGrid
from fedmuscle_flwr.runs.checkpoint import load_checkpoint
from fedmuscle_flwr.runs.metrics import SERVER_ROW, read_rows
from fedmuscle_flwr.serverapp.app import serve
from fedmuscle_flwr.wire import protocol as p
from tests.faulty import Structured


def finished_run(output, name, algorithm="fedmuscle"):
    """A finished run of the tiny preset with scripted clients (no models)."""
    run = build_run_config(
        "tiny",
        None,
        {"output-dir": str(output), "run-name": name, "algorithm": algorithm},
    )
    client = Structured()
    grid = InProcessGrid(client, 3, first_id=101)
    client.register(grid.contexts)
    return serve(grid, run)


@pytest.fixture
def runner():
    return CliRunner()


def text(result):
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_run_resume_refuses_a_changed_config(tmp_path, runner):
    session = tmp_path / "session"
    finished_run(session, "fedmuscle")
    args = ["run", "--preset", "tiny", "--algorithm", "fedmuscle", "--resume",
            str(session), "--output", str(tmp_path / "unused")]  # fmt: skip
    result = runner.invoke(cli, [*args, "--set", "muscle.lr=0.5"])
    assert result.exit_code == 2
    assert "muscle.lr: 0.003 (saved) != 0.5 (given)" in text(result)
    # the same options: the finished run is reused, nothing is executed again
    rows_before = (session / "fedmuscle" / "metrics.jsonl").read_text()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (session / "fedmuscle" / "metrics.jsonl").read_text() == rows_before
    assert (session / "report.md").is_file()
    assert not (tmp_path / "unused").exists()


def test_run_resume_needs_an_existing_session(tmp_path, runner):
    result = runner.invoke(cli, ["run", "--resume", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such session folder" in text(result)


def test_fresh_run_never_overwrites_a_checkpointed_run(tmp_path):
    run_dir = finished_run(tmp_path, "x")
    with pytest.raises(Exception, match="already holds a run"):
        finished_run(tmp_path, "x")
    assert load_checkpoint(run_dir).round == 3


def test_server_resume_refusals_come_before_any_process(tmp_path, runner):
    run_dir = finished_run(tmp_path / "runs", "srv")
    base = ["server", "--preset", "tiny", "--insecure", "--resume"]
    result = runner.invoke(cli, [*base, str(run_dir), "--set", "seed=3"])
    assert result.exit_code == 2
    assert "seed: 0 (saved) != 3 (given)" in text(result)
    assert "SuperLink" not in text(result)  # refused before starting anything
    result = runner.invoke(cli, [*base, str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such run folder" in text(result)


class Crash(Exception):
    """The process dies mid-run."""


def test_run_resume_continues_an_interrupted_session(tmp_path, runner, monkeypatch):
    # Prepare: `fedmuscle run` on the in-process engine with scripted clients,
    # crashing when round 2 of the fedmuscle run starts its alignment phase
    import fedmuscle_flwr.launch.inprocess as inprocess

    client = Structured()
    monkeypatch.setattr(inprocess, "client_app", client)
    push = InProcessGrid.push_messages
    armed = {"on": True}

    def push_or_crash(self, messages):
        messages = list(messages)
        kind = messages[0].metadata.message_type
        ins = p.decode_instruction(messages[0].content, kind)
        if armed["on"] and (ins.run.algorithm, ins.server_round, kind) == (
            "fedmuscle", 2, p.ALIGN,
        ):  # fmt: skip
            raise Crash
        return push(self, messages)

    monkeypatch.setattr(InProcessGrid, "push_messages", push_or_crash)
    out = tmp_path / "runs"
    args = ["run", "--preset", "tiny", "--engine", "inprocess", "--output", str(out)]
    # Execute: the first attempt dies in round 2; --resume finishes the session
    first = runner.invoke(cli, args)
    assert isinstance(first.exception, Crash)
    (session,) = out.iterdir()
    assert load_checkpoint(session / "fedmuscle").round == 1
    armed["on"] = False
    again = runner.invoke(cli, [*args, "--resume", str(session)])
    # Assert: both runs complete, every round recorded once, the Δ report written
    assert again.exit_code == 0, again.output
    for name in ("fedmuscle", "local"):
        rows = read_rows(session / name)
        assert [r["round"] for r in rows if r["client"] == SERVER_ROW] == [0, 3]
        trains = [(r["round"], r["client"]) for r in rows if r.get("phase") == "train"]
        assert len(trains) == len(set(trains)) == 3 * 3
    assert load_checkpoint(session / "fedmuscle").segments == 2
    assert (session / "report.md").is_file()
