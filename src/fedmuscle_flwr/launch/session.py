"""What ``fedmuscle run`` does after validation: simulate each algorithm, report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from rich.console import Console

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.checkpoint import is_complete
from fedmuscle_flwr.runs.metrics import INCOMPLETE, IncompleteRun, read_summary
from fedmuscle_flwr.runs.report import write_report

log = logging.getLogger(__name__)


def run_and_report(
    runs: Mapping[str, RunConfig],
    session: Path,
    console: Console,
    execute: Callable[[RunConfig], Path] | None = None,
) -> None:
    """Run every run of ``runs`` in order, then write the report of the session.

    The report is :func:`~fedmuscle_flwr.runs.report.write_report`'s (``fedmuscle
    report``): ``report.md`` with the table (metric per client and algorithm, Δ vs
    ``local``) and the plots in ``plots/``.

    Raises :class:`~fedmuscle_flwr.runs.metrics.IncompleteRun` at the end when a run
    ended ``incomplete`` (the report is written first).
    ``execute`` runs one config to completion and returns its folder (an engine of
    :mod:`fedmuscle_flwr.launch.engines`; default: Flower's simulation).
    """
    if execute is None:
        from fedmuscle_flwr.launch.engines import get_engine

        execute = get_engine("simulation").run
    incomplete: dict[str, str] = {}
    for name, run in runs.items():
        run_dir = Path(run.output_dir) / run.run_name
        if run.checkpoint.resume and is_complete(run, run_dir):
            log.info("%s finished before the interruption: reusing %s", name, run_dir)
        else:
            run_dir = execute(run)
        summary = read_summary(run_dir)
        if summary.get("status") == INCOMPLETE:
            incomplete[name] = str(summary.get("reason", ""))
    write_report(session, console)  # the same as `fedmuscle report SESSION`
    console.print(f"runs, report.md and plots/ in {session}")
    if incomplete:
        raise IncompleteRun(
            "incomplete: "
            + "; ".join(f"{name}: {why}" for name, why in incomplete.items())
        )


def registries() -> dict[str, Callable[[], Mapping[str, str]]]:
    """The listable registries, loaded lazily."""

    def models() -> Mapping[str, str]:
        from fedmuscle_flwr.models.registry import SCHEMES, list_models

        return {**list_models(), **SCHEMES}  # registered names, then the open forms

    def tasks() -> Mapping[str, str]:
        from fedmuscle_flwr.tasks.registry import list_tasks

        return list_tasks()

    def datasets() -> Mapping[str, str]:
        from fedmuscle_flwr.data.registry import list_datasets

        return list_datasets()

    def algorithms() -> Mapping[str, str]:
        from fedmuscle_flwr.method.algorithms import ALGORITHMS

        return {n: a.description for n, a in ALGORITHMS.items()}

    def presets() -> Mapping[str, str]:
        from fedmuscle_flwr.config.files import list_entries

        return {n: "server preset" for n in list_entries("server")}

    def profiles() -> Mapping[str, str]:
        from fedmuscle_flwr.config.files import list_entries

        return {n: "client profile" for n in list_entries("clients")}

    return {
        "models": models,
        "tasks": tasks,
        "datasets": datasets,
        "algorithms": algorithms,
        "presets": presets,
        "profiles": profiles,
    }
