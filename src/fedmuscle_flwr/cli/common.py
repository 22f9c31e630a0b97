"""What every ``fedmuscle`` command shares: console, logging, ``--set``, run config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from fedmuscle_flwr.config.files import load_preset, read_toml
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError, deep_merge, unflatten

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


def setup_logging(verbose: bool) -> None:
    """Rich console logging; Flower's records below WARNING unless ``verbose``."""
    handler = RichHandler(console=console, show_path=False, markup=False)
    if not verbose:
        handler.addFilter(_QuietFlower())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs -> {dotted key: TOML-typed value}."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
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
        data = deep_merge(data, read_toml(config))
    return RunConfig.from_mapping(deep_merge(data, unflatten(overrides)))
