"""``fedmuscle run | list | experiment | report | data``: federations on one machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from fedmuscle_flwr.cli.common import (
    build_run_config,
    console,
    fail,
    log,
    parse_set,
    setup_logging,
)
from fedmuscle_flwr.config.files import list_entries
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.data.sources import DataUnavailableError
from fedmuscle_flwr.launch.preflight import check_federation, check_names


def _names(what: str) -> str:
    """The registered names of ``what`` for a --help text (lazy registries)."""
    from fedmuscle_flwr.launch.engines import ENGINES
    from fedmuscle_flwr.method.algorithms import ALGORITHMS

    table = {
        "algorithms": lambda: list(ALGORITHMS),
        "engines": lambda: list(ENGINES),
        "presets": lambda: list_entries("server"),
    }
    return ", ".join(table[what]())


def run(
    preset: Annotated[
        str, typer.Option(help=f"server/<preset>.toml or a path: {_names('presets')}")
    ] = "default",
    config: Annotated[
        Path | None, typer.Option(help="TOML overriding the preset")
    ] = None,
    rounds: Annotated[int | None, typer.Option(help="number of rounds")] = None,
    algorithm: Annotated[
        str,
        typer.Option(
            help=f"comma list; 'local' is the Δ reference: {_names('algorithms')}"
        ),
    ] = "fedmuscle,local",
    seed: Annotated[int | None, typer.Option()] = None,
    output: Annotated[Path, typer.Option(help="parent folder of the run")] = Path(
        "runs"
    ),
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="dotted key=value, repeatable")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help=f"{_names('engines')}: Flower's simulation (Ray) | one process"
        ),
    ] = "simulation",
    resume: Annotated[
        Path | None,
        typer.Option(help="continue this session folder (same options as before)"),
    ] = None,
    live_csv: Annotated[
        bool,
        typer.Option(help="rewrite <run>/rounds.csv after every round (a live view)"),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a federation in Flower's simulation engine (default: the embedded one).

    With ``--resume DIR`` the runs of an interrupted session continue from their
    checkpoints (finished runs are reused); the options must give the same
    configuration, otherwise the differences are listed and nothing runs.
    """
    from fedmuscle_flwr.launch.engines import get_engine

    setup_logging(verbose, calm=True)
    session = output / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(preset).stem}"
    algorithms = [a.strip() for a in algorithm.split(",") if a.strip()]
    try:
        overrides = parse_set(set_ or [])
        if rounds is not None:
            overrides["num-rounds"] = rounds
        if seed is not None:
            overrides["seed"] = seed
        if live_csv:
            overrides["live-csv"] = True
        if resume is not None:
            if not resume.is_dir():
                raise ConfigError(f"--resume {resume}: no such session folder")
            session, overrides["checkpoint.resume"] = resume, True
        if not algorithms:
            raise ConfigError(f"--algorithm: none given; from {_names('algorithms')}")
        runs = {
            name: build_run_config(
                preset,
                config,
                {
                    **overrides,
                    "algorithm": name,
                    "output-dir": str(session),
                    "run-name": name,
                },
            )
            for name in algorithms
        }
        runner = get_engine(engine)
        for one in runs.values():  # names (algorithm, roster, models): no data yet
            check_names(one)
        if resume is not None:
            from fedmuscle_flwr.runs.checkpoint import check_session

            check_session(runs, session)
        # the whole roster against its data and public set, before any training
        first = next(iter(runs.values()))
        log.info(
            "checking roster %r against its data and the public set",
            first.federation.roster,
        )
        check_federation(first, build_models=False)
    except (ConfigError, DataUnavailableError) as exc:
        raise fail(str(exc)) from None
    from fedmuscle_flwr.launch.session import run_and_report
    from fedmuscle_flwr.runs.metrics import EXIT_INCOMPLETE, IncompleteRun

    try:
        run_and_report(runs, session, console, runner.run)
    except IncompleteRun as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_INCOMPLETE) from None


def list_(
    what: Annotated[
        str, typer.Argument(help="models|tasks|datasets|algorithms|presets|profiles")
    ],
) -> None:
    """Print a registry."""
    from fedmuscle_flwr.launch.session import registries

    table = registries()
    if what not in table:
        raise fail(f"unknown list {what!r}; choose from {', '.join(table)}")
    for name, description in table[what]().items():
        console.print(f"[bold]{name}[/bold]  {description}")


def data_prepare(name: Annotated[str, typer.Argument(help="dataset name")]) -> None:
    """Install or fetch what dataset NAME needs (apt when root, else instructions)."""
    from fedmuscle_flwr.data.prepare import prepare
    from fedmuscle_flwr.data.sources import DataUnavailableError

    try:
        console.print(prepare(name))
    except (DataUnavailableError, KeyError) as exc:
        console.print(f"error: {exc}", style="red", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None


def experiment(
    preset: Annotated[str, typer.Argument(help="server/<preset>.toml")],
    algorithms: Annotated[
        str, typer.Option(help="comma list; 'local' is the Δ reference")
    ] = "fedmuscle,pairwise,local",
    seeds: Annotated[int, typer.Option(help="seeds 0 … N-1", min=1)] = 3,
    rounds: Annotated[int | None, typer.Option(help="number of rounds")] = None,
    engine: Annotated[
        str, typer.Option(help="simulation (Flower + Ray) | inprocess (no Ray)")
    ] = "simulation",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="dotted key=value, repeatable")
    ] = None,
    output: Annotated[
        Path, typer.Option(help="parent folder of the experiment")
    ] = Path("runs"),
    resume: Annotated[
        Path | None,
        typer.Option(help="continue this experiment folder (finished runs skipped)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run every algorithm × seed of PRESET on the same clients, then report.

    Results go to ``OUTPUT/<stamp>-<preset>-experiment/seed-<s>/<algorithm>/``;
    ``--resume FOLDER`` skips finished runs and continues the others.
    """
    from fedmuscle_flwr.launch.engines import get_engine
    from fedmuscle_flwr.runs.experiment import (
        Plan,
        experiment_configs,
        run_experiment,
        write_plan,
    )
    from fedmuscle_flwr.runs.report import write_report

    setup_logging(verbose, calm=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = resume or output / f"{stamp}-{Path(preset).stem}-experiment"
    names = tuple(a.strip() for a in algorithms.split(",") if a.strip())
    plan = Plan(preset, names, tuple(range(seeds)))
    try:
        overrides = parse_set(set_ or [])
        if rounds is not None:
            overrides["num-rounds"] = rounds
        if resume is not None and not resume.is_dir():
            raise ConfigError(f"--resume {resume}: no such experiment folder")
        if not names:
            raise ConfigError(f"--algorithms: none given; from {_names('algorithms')}")
        runner = get_engine(engine)
        configs = experiment_configs(
            plan,
            folder,
            lambda run: build_run_config(preset, None, {**overrides, **run}),
            resume is not None,
        )
        for one in {c.algorithm: c for c in configs.values()}.values():
            check_names(one)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    write_plan(folder, plan)
    run_experiment(configs, folder, runner.run)
    write_report(folder, console)


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="a `fedmuscle run` session or experiment folder")
    ],
) -> None:
    """Write RUN_DIR/report.md (the paper's table) and RUN_DIR/plots/*.png."""
    from fedmuscle_flwr.runs.report import write_report

    setup_logging(False)
    if not run_dir.is_dir():
        raise fail(f"{run_dir}: no such folder (a run, session or experiment)")
    write_report(run_dir, console)


def register(cli: typer.Typer, data_cli: typer.Typer) -> None:
    """Add ``run``, ``list``, ``experiment``, ``report`` and ``data prepare``."""
    cli.command()(run)
    cli.command("list")(list_)
    cli.command()(experiment)
    cli.command()(report)
    data_cli.command("prepare")(data_prepare)
