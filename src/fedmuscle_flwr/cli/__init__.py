"""The ``fedmuscle`` command: thin, it validates input and drives Flower's runtimes."""

from __future__ import annotations

import typer

from fedmuscle_flwr.cli import deploy, run

cli = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__)
data_cli = typer.Typer(help="Datasets: prepare what a dataset needs.")
cli.add_typer(data_cli, name="data")
run.register(cli, data_cli)
deploy.register(cli)


def main() -> None:
    """Console-script entry point."""
    cli()


__all__ = ["cli", "main"]
