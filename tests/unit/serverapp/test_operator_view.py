"""The operator's view: round progress lines and the online-clients line."""

from __future__ import annotations

import logging
import re

from fedmuscle_flwr.clientapp.app import summary
from fedmuscle_flwr.launch.deploy.control import OnlineNodes
from fedmuscle_flwr.serverapp import progress
from fedmuscle_flwr.serverapp.progress import RoundClock, fmt_seconds


def test_round_clock_estimates_from_the_real_rounds(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    clock = RoundClock(num_rounds=4)
    now[0] = 160.0
    assert clock.done(0, 60.0) == "round 0/4: elapsed 1 min 00 s, about 4 min 00 s left"
    now[0] = 170.0
    # round 0 (client start-up) no longer counts once a real round exists
    assert clock.done(1, 10.0) == "round 1/4: elapsed 1 min 10 s, about 30 s left"
    now[0] = 200.0
    assert clock.done(4, 10.0).endswith("run complete")


def test_fmt_seconds():
    assert [fmt_seconds(s) for s in (5, 65, 3725)] == ["5 s", "1 min 05 s",
                                                       "1 h 02 min"]  # fmt: skip


def test_online_line_only_when_the_set_changes(caplog):
    nodes = OnlineNodes(env={}, registered={11: "node-1", 22: "node-2"})
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy.control"):
        nodes.update(frozenset())
        nodes.update(frozenset())
        nodes.update(frozenset({11}))
        nodes.update(frozenset({11}))
        nodes.update(frozenset({11, 22}))
        nodes.update(frozenset({22}))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "0 of 2 registered clients online (missing: node-1 (node 11), node-2 (node 22))",
        "1 of 2 registered clients online (joined: node-1 (node 11); missing: "
        "node-2 (node 22))",
        "2 of 2 registered clients online (joined: node-2 (node 22))",
        "1 of 2 registered clients online (left: node-1 (node 11); missing: "
        "node-1 (node 11))",
    ]


def test_client_summary_names_its_own_metric():
    assert summary("evaluate", {"metric": 0.81234}, {"metric-name": "mAP"}) == (
        "mAP=0.8123"
    )
    assert summary("train", {"task-loss": 0.5}, {}) == "task-loss=0.5"
    assert summary("align", {}, {}) == ""


class _Joining:
    """Node ids as a SuperLink would report them while clients join."""

    def __init__(self, *steps: list[int]) -> None:
        self.steps = list(steps)

    def get_node_ids(self) -> list[int]:
        return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]


def test_waiting_line_when_the_count_changes(monkeypatch, caplog):
    from fedmuscle_flwr.serverapp import rounds as driver

    monkeypatch.setattr(driver.time, "sleep", lambda s: None)
    grid = _Joining([], [], [], [7], [7], [7, 9])
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.serverapp.rounds"):
        nodes = driver.wait_for_nodes(grid, 2, timeout=60, expected=())  # type: ignore[arg-type]
    assert nodes == [7, 9]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("waiting for clients: 0 of 2 connected")
    assert "1 of 2 connected, 1 missing (connected node ids [7];" in lines[1]
    assert "roster" not in lines[1]


def test_waiting_line_names_registered_keys_in_deployment(monkeypatch, caplog):
    from fedmuscle_flwr.serverapp import rounds as driver

    monkeypatch.setattr(driver.time, "sleep", lambda s: None)
    grid = _Joining([7], [7, 9])
    keys = {7: "node-1", 9: "node-2", 11: "node-3"}
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.serverapp.rounds"):
        driver.wait_for_nodes(grid, 2, timeout=60, keys=lambda: keys)  # type: ignore[arg-type]
    line = caplog.records[0].getMessage()
    assert (
        "connected: node-1 (node 7); registered keys not connected: node-2, node-3;"
        in (line)
    )


def test_log_files_get_one_timestamp_and_no_colour_codes(tmp_path, caplog):
    import io

    from fedmuscle_flwr.launch.deploy import processes, server

    sink, seen = tmp_path / "x.log", []
    src = io.StringIO("\x1b[92mINFO \x1b[0m:      SuperNode ID: 7\n")
    processes._pump(src, sink.open("w"), seen.append)
    assert sink.read_text() == "INFO :      SuperNode ID: 7\n"
    assert seen == ["INFO :      SuperNode ID: 7"]
    with caplog.at_level(logging.INFO, logger="fedmuscle_flwr.launch.deploy.server"):
        server.forward_serverapp_line(
            "2026-12-02 13:30:15,625 INFO fedmuscle_flwr.x: round 1 done"
        )
    assert (
        caplog.records[-1].getMessage()
        == "[serverapp] INFO fedmuscle_flwr.x: round 1 done"
    )
    # Flower's blank lines are not relayed
    n = len(caplog.records)
    server.forward_serverapp_line("INFO :      ")
    assert len(caplog.records) == n


def test_client_output_gets_one_timestamp_per_line(capsys):
    from fedmuscle_flwr.launch.deploy.supernode_log import SuperNodeLog

    out = SuperNodeLog("127.0.0.1:9092")
    out("INFO 2026-12-02 16:08:55,905:      SuperNode ID: 7")  # Flower's own stamp
    out("INFO:     Started server process [14124]")  # uvicorn: none
    out("For more information, visit: <https://flower.ai/...>")  # continuation
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "INFO 2026-12-02 16:08:55,905:      SuperNode ID: 7"
    stamp = r"^\d\d:\d\d:\d\d "
    assert re.match(stamp + "INFO:     Started server process", lines[1]), lines
    assert re.match(stamp + "For more information", lines[2]), lines
