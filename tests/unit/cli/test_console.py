"""The calm console of ``fedmuscle run``: what is shown, what is dropped, the bar."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from fedmuscle_flwr.cli.common import OneLinePerRound, QuietOthers, RoundBar
from fedmuscle_flwr.runs.logs import PROGRESS_LOGGER


def _record(name: str, level: int, msg: str, *args: object, **extra: object):
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_other_libraries_below_warning_and_phase_lines_are_dropped() -> None:
    quiet, calm = QuietOthers(), OneLinePerRound()
    driver = "fedmuscle_flwr.serverapp.strategy"  # the round loop
    assert not quiet.filter(_record("alembic.runtime", logging.INFO, "setup plugin"))
    assert not quiet.filter(_record("flwr", logging.INFO, "Starting"))
    assert quiet.filter(_record("ray", logging.WARNING, "low memory"))
    assert quiet.filter(_record("fedmuscle_flwr.strategy", logging.INFO, "client"))
    assert not calm.filter(_record(driver, logging.INFO, "round %d train: %s", 1, ""))
    assert calm.filter(_record(driver, logging.WARNING, "round %d: %d valid", 1, 2))
    assert calm.filter(_record(driver, logging.INFO, "%d clients connected", 3))
    assert calm.filter(_record(PROGRESS_LOGGER, logging.INFO, "round 1/2 | 3 s"))


def test_round_bar_follows_rounds_and_phases_on_a_terminal() -> None:
    out = io.StringIO()
    bar = RoundBar(Console(file=out, force_terminal=True, width=100))
    # Execute: round 0 (initial evaluation) done, round 1 trained, rounds 1-2 done
    bar.emit(_record(PROGRESS_LOGGER, logging.INFO, "x", round=0, total=2))
    assert bar.bar is not None and bar.task is not None
    task = bar.bar.tasks[0]
    assert (task.completed, task.total, task.description) == (0, 2, "round 1: train")
    bar.emit(
        _record(
            "fedmuscle_flwr.serverapp.strategy",
            logging.INFO,
            "round %d train: %s",
            1,
            "",
        )
    )
    assert task.description == "round 1: align, evaluate"
    bar.emit(_record(PROGRESS_LOGGER, logging.INFO, "x", round=1, total=2))
    assert task.completed == 1
    bar.emit(_record(PROGRESS_LOGGER, logging.INFO, "x", round=2, total=2))
    # Assert: the bar of the run ended with its last round (the next run gets one)
    assert bar.bar is None and bar.task is None
    assert "round" in out.getvalue()
