"""What every ``fedmuscle`` command shares: console, logging, ``--set``, run config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from fedmuscle_flwr.config.files import load_preset, read_toml
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError, deep_merge, unflatten
from fedmuscle_flwr.runs.logs import PACKAGE_LOGGER, PROGRESS_LOGGER

console = Console()
log = logging.getLogger("fedmuscle_flwr")
#: the logger of the round loop's per-phase lines (summed up by the progress line)
_ROUND_LOGGER = f"{PACKAGE_LOGGER}.serverapp.strategy"


class QuietOthers(logging.Filter):
    """Drop other libraries' records below WARNING (Flower, Ray, alembic, ...).

    Flower sets its logger to DEBUG when imported (after we configured logging) and
    its records propagate to our handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Ours at any level, others' from WARNING."""
        ours = record.name.split(".")[0] == PACKAGE_LOGGER
        return ours or record.levelno >= logging.WARNING


class OneLinePerRound(logging.Filter):
    """Drop the per-phase round lines: the progress line sums each round up."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Everything but the round loop's INFO lines about one phase."""
        phase_line = record.name == _ROUND_LOGGER and str(record.msg).startswith(
            "round %d "
        )
        return not (phase_line and record.levelno < logging.WARNING)


class RoundBar(logging.Handler):
    """A rich progress bar of the rounds (and the phase) on a terminal.

    Fed by the progress lines (``extra`` round/total) and the driver's per-phase
    records; the bar of a run ends with its last round.
    """

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def _start(self, total: int) -> tuple[Progress, TaskID]:
        if self.bar is None or self.task is None:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.bar.add_task("round 1: train", total=total)
            self.bar.start()
        return self.bar, self.task

    def emit(self, record: logging.LogRecord) -> None:
        """Advance on a finished round, name the phase after a finished phase."""
        total = getattr(record, "total", None)
        if record.name == PROGRESS_LOGGER and isinstance(total, int):
            done = int(getattr(record, "round", 0))
            bar, task = self._start(total)
            bar.update(task, completed=done, description=f"round {done + 1}: train")
            if done >= total:
                bar.stop()
                self.bar = self.task = None
        elif self.bar is not None and str(record.msg).startswith("round %d train"):
            rnd = record.args[0] if isinstance(record.args, tuple) else "?"
            assert self.task is not None
            self.bar.update(self.task, description=f"round {rnd}: align, evaluate")


def setup_logging(verbose: bool, calm: bool = False) -> None:
    """Our INFO lines, others' warnings; ``calm``: one line per round (tty: a bar)."""
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, markup=False)
    else:  # a log file: one line per record, never wrapped at 80 columns
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        )
    handlers: list[logging.Handler] = [handler]
    if not verbose:
        handler.addFilter(QuietOthers())
    if calm and not verbose:
        handler.addFilter(OneLinePerRound())
        if console.is_terminal:
            bar = RoundBar(console)
            bar.addFilter(lambda r: r.name.startswith(PACKAGE_LOGGER))
            handlers.append(bar)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=handlers,
        force=True,
    )


def fail(message: str) -> typer.Exit:
    """Print ``message`` (one or two lines, never wrapped); the exit to raise (2)."""
    console.print(f"error: {message}", style="red", soft_wrap=True, markup=False)
    return typer.Exit(2)


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs -> {dotted key: TOML-typed value}."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(
                f"--set {pair!r}: expected key=value (dotted key, TOML value), "
                "e.g. --set muscle.partners=2"
            )
        key, raw = pair.split("=", 1)
        out[key.strip()] = coerce(raw.strip())
    return out


def coerce(raw: str) -> Any:
    """A value as TOML reads it (``3`` -> 3, ``true`` -> True), else the string."""
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
        if not config.is_file():
            raise ConfigError(f"--config {config}: no such file (a TOML run config)")
        data = deep_merge(data, read_toml(config))
    return RunConfig.from_mapping(deep_merge(data, unflatten(overrides)))
