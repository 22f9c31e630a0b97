"""The ``fedmuscle`` command: thin, it validates input and drives Flower's runtimes."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from fedmuscle_flwr import cli_deploy
from fedmuscle_flwr.config import ConfigError, RunConfig, deep_merge, unflatten
from fedmuscle_flwr.data.sources import DataUnavailableError
from fedmuscle_flwr.profiles import (
    check_federation,
    list_entries,
    load_preset,
    read_toml,
)

cli = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__)
data_cli = typer.Typer(help="Datasets: prepare what a dataset needs.")
cli.add_typer(data_cli, name="data")
console = Console()
log = logging.getLogger("fedmuscle_flwr")


class _QuietFlower(logging.Filter):
    """Drop Flower's records below WARNING.

    Flower sets its logger to DEBUG when imported (after we configured logging) and
    its records propagate to our handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.split(".")[0] == "flwr" and record.levelno < logging.WARNING
        )


def _setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=console, show_path=False, markup=False)
    if not verbose:
        handler.addFilter(_QuietFlower())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )


def _parse_set(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        out[key.strip()] = _coerce(raw.strip())
    return out


def _coerce(raw: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def build_run_config(
    preset: str, config: Path | None, overrides: dict[str, Any]
) -> RunConfig:
    """Preset, then ``--config FILE``, then ``--set``/flags; validated once."""
    data = load_preset(preset)
    if config is not None:
        data = deep_merge(data, read_toml(config))
    return RunConfig.from_mapping(deep_merge(data, unflatten(overrides)))


@cli.command()
def run(
    preset: Annotated[str, typer.Option(help="server/<preset>.toml")] = "default",
    config: Annotated[
        Path | None, typer.Option(help="TOML overriding the preset")
    ] = None,
    rounds: Annotated[int | None, typer.Option(help="number of rounds")] = None,
    algorithm: Annotated[
        str, typer.Option(help="comma list; 'local' is the Δ reference")
    ] = "fedmuscle,local",
    seed: Annotated[int | None, typer.Option()] = None,
    output: Annotated[Path, typer.Option(help="parent folder of the run")] = Path(
        "runs"
    ),
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="dotted key=value, repeatable")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="simulation (Flower + Ray) | inprocess (no Ray)")
    ] = "simulation",
    resume: Annotated[
        Path | None,
        typer.Option(help="continue this session folder (same options as before)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a federation in Flower's simulation engine (default: the embedded one).

    With ``--resume DIR`` the runs of an interrupted session continue from their
    checkpoints (finished runs are reused); the options must give the same
    configuration, otherwise the differences are listed and nothing runs.
    """
    from fedmuscle_flwr.engines import get_engine

    _setup_logging(verbose)
    overrides = _parse_set(set_ or [])
    if rounds is not None:
        overrides["num-rounds"] = rounds
    if seed is not None:
        overrides["seed"] = seed
    session = output / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(preset).stem}"
    if resume is not None:
        session, overrides["checkpoint.resume"] = resume, True
    algorithms = [a.strip() for a in algorithm.split(",") if a.strip()]
    try:
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
        if resume is not None:
            from fedmuscle_flwr.checkpoint import check_session

            check_session(runs, session)
        # the whole roster against its data and public set, before any training
        check_federation(next(iter(runs.values())), build_models=False)
    except (ConfigError, DataUnavailableError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    from fedmuscle_flwr.runner import run_and_report

    run_and_report(runs, session, console, runner.run)


@cli.command("list")
def list_(
    what: Annotated[
        str, typer.Argument(help="models|tasks|datasets|algorithms|presets|profiles")
    ],
) -> None:
    """Print a registry."""
    from fedmuscle_flwr.runner import registries

    table = registries()
    if what not in table:
        console.print(f"[red]unknown list {what!r}; choose from {sorted(table)}[/red]")
        raise typer.Exit(2)
    for name, description in table[what]().items():
        console.print(f"[bold]{name}[/bold]  {description}")


@data_cli.command("prepare")
def data_prepare(name: Annotated[str, typer.Argument(help="dataset name")]) -> None:
    """Install or fetch what dataset NAME needs (apt when root, else instructions)."""
    from fedmuscle_flwr.data.prepare import prepare
    from fedmuscle_flwr.data.sources import DataUnavailableError

    try:
        console.print(prepare(name))
    except (DataUnavailableError, KeyError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def main() -> None:
    """Console-script entry point."""
    cli()


cli_deploy.register(cli)


@cli.command()
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
    from fedmuscle_flwr.engines import get_engine
    from fedmuscle_flwr.experiment import (
        Plan,
        experiment_configs,
        run_experiment,
        write_plan,
    )
    from fedmuscle_flwr.report import write_report

    _setup_logging(verbose)
    overrides = _parse_set(set_ or [])
    if rounds is not None:
        overrides["num-rounds"] = rounds
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = resume or output / f"{stamp}-{Path(preset).stem}-experiment"
    names = tuple(a.strip() for a in algorithms.split(",") if a.strip())
    plan = Plan(preset, names, tuple(range(seeds)))
    try:
        if resume is not None and not resume.is_dir():
            raise ConfigError(f"--resume {resume}: no such experiment folder")
        runner = get_engine(engine)
        configs = experiment_configs(
            plan,
            folder,
            lambda run: build_run_config(preset, None, {**overrides, **run}),
            resume is not None,
        )
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    write_plan(folder, plan)
    run_experiment(configs, folder, runner.run)
    write_report(folder, console)


@cli.command()
def report(
    run_dir: Annotated[
        Path, typer.Argument(help="a `fedmuscle run` session or experiment folder")
    ],
) -> None:
    """Write RUN_DIR/report.md (the paper's table) and RUN_DIR/plots/*.png."""
    from fedmuscle_flwr.report import write_report

    _setup_logging(False)
    if not run_dir.is_dir():
        console.print(f"[red]{run_dir}: no such folder[/red]")
        raise typer.Exit(2)
    write_report(run_dir, console)


__all__ = ["build_run_config", "cli", "list_entries", "main"]
