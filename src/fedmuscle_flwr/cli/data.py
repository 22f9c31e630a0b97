"""``fedmuscle data check | export``: a client's data before it joins; tutorial data.

``check`` is the first command a new client runs: what its profile's data (and
its copy of the public set) resolves to, with the fingerprint the server will
compare. ``export`` writes packaged data as a user keeps their own (an image
folder, a CSV), so the tutorial needs no download.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from fedmuscle_flwr.cli.common import build_run_config, console, fail, parse_set

log = logging.getLogger(__name__)

_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError, RuntimeError)


def _print(lines: list[str]) -> None:
    for line in lines:
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def _check_profile(profile_ref: str, overrides: dict[str, Any], preset: str) -> None:
    from fedmuscle_flwr.config.files import load_profile
    from fedmuscle_flwr.data.describe import describe_private
    from fedmuscle_flwr.data.registry import load_private
    from fedmuscle_flwr.tasks.registry import get_task

    profile = load_profile(profile_ref, overrides)
    run = build_run_config(preset, None, {})
    data = load_private(profile.data)
    task = get_task(profile.task.kind, profile.task.options)
    try:
        task.check_data(data.info)
    except ValueError as exc:
        raise ValueError(f"profile {profile.name!r}: task.kind: {exc}") from None
    evaluated = "validation" if profile.data.validation else "test"
    _print(
        [
            f"client {profile.name!r} (task {task.kind})",
            *describe_private(data, evaluated),
        ]
    )
    batch = run.train.batch_size
    if len(data.train) < batch:
        console.print(
            f"warning: {len(data.train)} train samples, fewer than train.batch-size="
            f"{batch} of preset {preset!r}: every step sees the same few samples",
            style="yellow",
            soft_wrap=True,
            markup=False,
        )
    if profile.public is not None:
        _check_public(profile.public.dataset, profile.public.options, run.public.size)
    else:
        _check_public(run.public.dataset, run.public.options, run.public.size)


def _check_public(name: str, options: dict[str, Any], size: int) -> None:
    from fedmuscle_flwr.data.describe import describe_public
    from fedmuscle_flwr.data.registry import load_public

    _print(describe_public(load_public(name, size, options)))


def data_check(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", "-p", help="client profile (clients/NAME or a TOML file)"
        ),
    ] = None,
    preset: Annotated[
        str, typer.Option("--preset", help="server preset (its public set, batch size)")
    ] = "default",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="dotted override of the profile (or, without "
            "--profile, of the preset), e.g. data.options.root=/data",
        ),
    ] = None,
) -> None:
    """Describe what a profile's data and public set resolve to (with fingerprint)."""
    try:
        overrides = parse_set(set_ or [])
        if profile is not None:
            _check_profile(profile, overrides, preset)
        else:
            run = build_run_config(preset, None, overrides)
            _check_public(run.public.dataset, run.public.options, run.public.size)
    except _ERRORS as exc:
        raise fail(str(exc)) from None


def data_export(
    name: Annotated[str, typer.Argument(help="a packaged dataset or public set")],
    out: Annotated[Path, typer.Option("--out", "-o", help="new folder to write")],
    num_partitions: Annotated[
        int,
        typer.Option("--num-partitions", min=1, help="IID shares of the train split"),
    ] = 1,
    index: Annotated[int, typer.Option("--index", min=0, help="which share")] = 0,
    max_train: Annotated[int, typer.Option("--max-train", min=0, help="0 = all")] = 0,
    max_test: Annotated[int, typer.Option("--max-test", min=0, help="0 = all")] = 0,
) -> None:
    """Write packaged data as your own files (image folder, CSV, text file)."""
    from fedmuscle_flwr.config.profile import DataSpec, PartitionSpec
    from fedmuscle_flwr.data.catalog import PRIVATE, PUBLIC
    from fedmuscle_flwr.data.export import export_private, export_public
    from fedmuscle_flwr.data.registry import load_private

    try:
        if name in PUBLIC:
            pool = PUBLIC[name].load()
            fmt = export_public(pool, out)
            console.print(
                f"wrote {len(pool)} public samples of {name!r} to {out} "
                f"(public.dataset = {fmt!r})",
                markup=False,
                soft_wrap=True,
            )
            return
        if name not in PRIVATE:
            raise ValueError(
                f"unknown packaged dataset {name!r}; known: "
                f"{sorted(PRIVATE)} and public sets {sorted(PUBLIC)}"
            )
        partition = PartitionSpec(num_partitions=num_partitions, index=index)
        spec = DataSpec(
            dataset=name, partition=partition, max_train=max_train, max_test=max_test
        )
        data = load_private(spec)
        fmt = export_private(data, out)
        console.print(
            f"wrote {len(data.train)} train / {len(data.test)} test samples "
            f"of {name!r} to {out} (data.dataset = {fmt!r})",
            markup=False,
            soft_wrap=True,
        )
    except _ERRORS as exc:
        raise fail(str(exc)) from None


def register(data_cli: typer.Typer) -> None:
    """Add ``data check`` and ``data export``."""
    data_cli.command("check")(data_check)
    data_cli.command("export")(data_export)
