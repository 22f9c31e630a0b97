"""A client's refusal at the server (issue 23): logged, counted with the failed
replies, recorded in the client's row with the rule; the client is dropped for
the round and the run goes on. Real ClientApp, real strategy, in process."""

from __future__ import annotations

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.metrics import SERVER_ROW, RunRecorder
from fedmuscle_flwr.serverapp.strategy import FedMuscle
from tests.conftest import tiny_flat
from tests.loopback import LoopbackGrid


def test_a_refusal_is_counted_and_the_run_goes_on(tmp_path, state_dir, caplog):
    # Prepare: two clients that enforce their profiles' policies; the second opts
    # in to logits uploads, the first keeps the default (representations only)
    roster = tmp_path / "strict.toml"
    roster.write_text(
        'policy = "profiles"\n'
        'set = { "data.max-train" = 96, "data.max-test" = 96 }\n'
        '[[clients]]\nprofile = "fmnist-cnn"\n'
        '[[clients]]\nprofile = "fmnist-cnn"\n'
        'set = { "policy.uploads" = ["representation", "logits"], '
        '"data.partition.num-partitions" = 2, "data.partition.index" = 1 }\n'
    )
    flat = tiny_flat(roster, tmp_path, **{"run-name": "fedmd", "algorithm": "fedmd",
                                          "federation.min-clients": 1,
                                          "eval.initial": False})  # fmt: skip
    rec = RunRecorder(tmp_path / "fedmd")
    # Execute: a logits run (fedmd), 2 rounds
    FedMuscle(RunConfig.from_flat(flat), rec).start(grid=LoopbackGrid(client_app, 2))
    # Assert: every train instruction of the strict client refused, rule named
    refused = [r for r in rec.rows if "refused" in r]
    assert [(r["round"], r["phase"]) for r in refused] == [(1, "train"), (2, "train")]
    assert all(r["refused"].startswith("policy.uploads: algorithm 'fedmd' uploads "
                                       "logits") for r in refused)  # fmt: skip
    assert {r["client"] for r in refused} == {"node-101"}  # never introduced itself
    server = [r for r in rec.rows if r["client"] == SERVER_ROW]
    assert [r["failed"] for r in server] == [1.0, 1.0]  # counted, per round
    assert "refused: policy.uploads" in caplog.text  # the server's log line
    # the opted-in client trained and was evaluated in both rounds
    evals = [r for r in rec.rows if r["client"] != SERVER_ROW and "metric" in r]
    assert [r["round"] for r in evals] == [1, 2]
