"""The ``fedmuscle`` command: thin, it validates input and drives Flower's runtimes."""

from __future__ import annotations

import sys
from typing import Annotated

try:  # Ctrl-C while the libraries load: the signal's status, no traceback
    import typer

    from fedmuscle_flwr.cli import data, deploy, run
    from fedmuscle_flwr.cli.common import console
except KeyboardInterrupt:
    raise SystemExit(130) from None

_CONTEXT = {"help_option_names": ["-h", "--help"]}
cli = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help=__doc__,
    context_settings=_CONTEXT,
    pretty_exceptions_show_locals=False,
)
data_cli = typer.Typer(
    help="Datasets: prepare, check (your own files too), export.",
    context_settings=_CONTEXT,
)
cli.add_typer(data_cli, name="data")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(
            f"fedmuscle-flwr {version('fedmuscle-flwr')} (Flower {version('flwr')})"
        )
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print versions, exit"
        ),
    ] = False,
) -> None:
    """The ``fedmuscle`` command: thin, it validates input and drives Flower."""


def main() -> None:
    """Console-script entry point: usage errors in one line, exit status 2."""
    import click

    try:
        code = cli(standalone_mode=False)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "fedmuscle"
        console.print(
            f"error: {exc.format_message()} (see {command} -h)",
            style="red",
            soft_wrap=True,
            markup=False,
        )
        sys.exit(2)
    except click.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


run.register(cli, data_cli)
data.register(data_cli)
deploy.register(cli)

__all__ = ["cli", "main"]
