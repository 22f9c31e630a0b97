"""Preflight: the whole federation checked before any training starts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fedmuscle_flwr.config.files import load_roster
from fedmuscle_flwr.config.profile import ClientProfile
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.data.base import DatasetInfo, Modality
from fedmuscle_flwr.data.registry import check_private, check_public, dataset_info
from fedmuscle_flwr.method.algorithms import check_algorithm
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.models.registry import check_backbone
from fedmuscle_flwr.tasks.registry import get_task


def check_federation(
    run: RunConfig, *, build_models: bool = True
) -> tuple[ClientProfile, ...]:
    """Check, before any training, that the run's roster fits together.

    First what needs no data: each task kind against its dataset's metadata,
    then the public set (present, large enough, holding every modality the
    clients read). Then per client its private data share (loaded and cut) and,
    with ``build_models``, its model (backbone, options, LoRA,
    ``projection-dim`` = ``muscle.dim``, modality, spatial map).

    Raises
    ------
    ConfigError
        Naming the client and the profile field at fault.
    DataUnavailableError
        A dataset is missing; the message holds ``fedmuscle data prepare NAME``.
    """
    roster = run.federation.roster
    profiles = tuple(p.for_run(run.seed) for p in load_roster(roster))
    where = {p.name: f"client {p.name!r} (roster {roster!r})" for p in profiles}
    reads: dict[str, Modality] = {}
    for profile in profiles:
        with _field(where[profile.name]):
            reads[profile.name] = _check_task(profile).modality
    with _field("run config"):
        check_public(run.public.dataset, run.public.size, reads, run.public.options)
    for profile in profiles:
        with _field(where[profile.name]):
            _check_client(profile, run.muscle.dim, build_models)
    return profiles


def _check_task(profile: ClientProfile) -> DatasetInfo:
    """The task kind against the dataset's metadata (no data loaded)."""
    with _field("task"):
        task = get_task(profile.task.kind, profile.task.options)
    with _field("data"):
        info = dataset_info(profile.data)
    with _field("task.kind"):
        task.check_data(info)
    return info


def _check_client(profile: ClientProfile, dim: int, build_models: bool) -> None:
    """Load and cut the client's data share; build its model (optionally)."""
    with _field("data"):
        info = check_private(profile.data)
    if build_models:
        task = get_task(profile.task.kind, profile.task.options)
        with _field("model"):
            build_client_model(profile.model, task, info.num_classes, dim)


def check_profile(profile: ClientProfile, where: str = "") -> None:
    """What a profile names, without data or models: task, dataset, backbone.

    Raises :class:`ConfigError` naming the client, the field and what is accepted.
    """
    with _field(where or f"client {profile.name!r}"):
        _check_task(profile)
        with _field("model"):
            check_backbone(profile.model)


def check_names(run: RunConfig) -> tuple[ClientProfile, ...]:
    """The run's algorithm and every roster client's names (cheap, no data).

    :func:`check_federation` loads the data afterwards; this is what a mistyped
    name needs to be caught in well under a second.
    """
    check_algorithm(run)
    roster = run.federation.roster
    with _field(f"federation.roster {roster!r}"):
        profiles = load_roster(roster)
    for profile in profiles:
        check_profile(profile, f"client {profile.name!r} (roster {roster!r})")
    return profiles


@contextmanager
def _field(name: str) -> Iterator[None]:
    """Turn a ``ValueError`` into a ConfigError naming ``name`` (if it does not)."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        named = text.startswith(name) or f" {name}." in text
        raise ConfigError(text if named else f"{name}: {text}") from None
