"""Client profiles and rosters: who a client is (model, task, data), as data.

A *profile* is a TOML file under ``clients/`` (shipped inside the package as
``fedmuscle_flwr/_profiles/clients``). A *roster* (``clients/rosters/<name>.toml``)
lists the clients of a simulated federation in partition-id order, each a profile
name plus optional dotted overrides::

    [[clients]]
    profile = "fmnist-cnn"
    set = { "data.partition.index" = 1 }

In deployment a client names its own profile file on its command line; the server
never sees it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from fedmuscle_flwr.config import (
    ConfigError,
    RunConfig,
    _Schema,
    deep_merge,
    unflatten,
    validate,
)

if TYPE_CHECKING:
    from fedmuscle_flwr.data.base import DatasetInfo, Modality


class LoraConfig(_Schema):
    """LoRA adapters (peft) on a transformer backbone; rank 0 disables them."""

    rank: int = Field(0, ge=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ()


class ModelSpec(_Schema):
    """The client's architecture: backbone + projection head + task head."""

    backbone: str = Field(description="registry name or 'package.module:builder'")
    options: dict[str, Any] = Field(default_factory=dict)
    pretrained: bool = True
    projector: Literal["linear", "mlp"] = "mlp"
    projection_dim: int | None = Field(None, gt=0, description="must equal muscle.dim")
    head_on: Literal["features", "representation"] = "features"
    freeze_backbone: bool = False
    lora: LoraConfig = LoraConfig()


class TaskSpec(_Schema):
    """The client's task kind (registry name) and its options."""

    kind: str
    options: dict[str, Any] = Field(default_factory=dict)


class PartitionSpec(_Schema):
    """How this client's share of a dataset is cut (flwr-datasets partitioners)."""

    scheme: Literal["iid", "dirichlet", "classes", "whole"] = "iid"
    num_partitions: int = Field(1, ge=1)
    index: int = Field(0, ge=0)
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration")
    classes: tuple[int, ...] = ()
    seed: int = 0

    @model_validator(mode="after")
    def _index_in_range(self) -> PartitionSpec:
        if self.index >= self.num_partitions:
            raise ValueError(
                f"index={self.index} must be < num-partitions={self.num_partitions}"
            )
        if self.scheme == "classes" and not self.classes:
            raise ValueError("scheme='classes' needs a non-empty 'classes' list")
        return self


class DataSpec(_Schema):
    """The client's private dataset."""

    dataset: str
    options: dict[str, Any] = Field(default_factory=dict)
    partition: PartitionSpec = PartitionSpec()
    max_train: int = Field(0, ge=0, description="0 = the whole partition")
    max_test: int = Field(0, ge=0, description="0 = the whole test split")


class ClientProfile(_Schema):
    """One client persona: its model, its task and its private data."""

    name: str
    model: ModelSpec
    task: TaskSpec
    data: DataSpec

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "") -> ClientProfile:
        """Validate a profile mapping; errors name the field and the source."""
        what = f"client profile {source}".strip()
        return validate(cls, data, what)


class RosterEntry(_Schema):
    """One roster line: a profile name and dotted overrides."""

    profile: str
    set: dict[str, Any] = Field(default_factory=dict)


class Roster(_Schema):
    """The ordered clients of a simulated federation (partition-id = position).

    ``set``: dotted overrides for all clients (before each entry's own);
    ``extends``: a base roster whose clients come first, with ``set`` on top.
    """

    extends: str = ""
    set: dict[str, Any] = Field(default_factory=dict)
    clients: tuple[RosterEntry, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Roster:
        if not self.clients and not self.extends:
            raise ValueError("a roster needs [[clients]] entries or 'extends'")
        return self


# ------------------------------------------------------------------- locating
def profiles_root() -> Path:
    """Where the bundled ``clients/`` and ``server/`` folders are.

    Installed wheels carry them as ``fedmuscle_flwr/_profiles``; an editable
    install or a source checkout (and a Flower FAB) uses the repository folders.
    """
    packaged = resources.files("fedmuscle_flwr") / "_profiles"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2]


def _resolve(name_or_path: str, folder: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" and path.is_file():
        return path
    candidate = profiles_root() / folder / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in (profiles_root() / folder).glob("*.toml"))
    raise ConfigError(f"no {folder} entry {name_or_path!r}; known: {known}")


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into :class:`ConfigError`."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_profile(
    name_or_path: str, overrides: Mapping[str, Any] | None = None
) -> ClientProfile:
    """Load ``clients/<name>.toml`` (or a path) with dotted ``overrides`` applied."""
    path = _resolve(name_or_path, "clients")
    data = deep_merge(read_toml(path), unflatten(overrides or {}))
    return ClientProfile.from_mapping(data, source=str(path))


def _roster_entries(
    name_or_path: str, seen: tuple[str, ...] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """(profile, merged nested overrides) per client, following ``extends``."""
    path = _resolve(name_or_path, "clients/rosters")
    if str(path) in seen:
        raise ConfigError(f"roster {path}: 'extends' loops back to itself")
    roster = validate(Roster, read_toml(path), f"roster {path}")
    common = unflatten(roster.set)
    entries = []
    if roster.extends:
        base = _roster_entries(roster.extends, (*seen, str(path)))
        entries = [(name, deep_merge(over, common)) for name, over in base]
    for entry in roster.clients:
        entries.append((entry.profile, deep_merge(common, unflatten(entry.set))))
    return entries


@cache
def load_roster(name_or_path: str) -> tuple[ClientProfile, ...]:
    """All profiles of a roster, in partition-id order; names made unique."""
    profiles = [load_profile(p, o) for p, o in _roster_entries(name_or_path)]
    names = [p.name for p in profiles]
    return tuple(
        p.model_copy(update={"name": f"{p.name}-{i}"}) if names.count(p.name) > 1 else p
        for i, p in enumerate(profiles)
    )


def resolve_profile(node_config: Mapping[str, Any], roster: str) -> ClientProfile:
    """The profile of this node.

    Deployment: ``--node-config 'profile="clients/x.toml"'`` (any other
    node-config keys except the reserved ones are dotted overrides, e.g.
    ``data.max-train=500``). Simulation: the roster entry at ``partition-id``.
    """
    if "profile" in node_config:
        reserved = {"profile", "partition-id", "num-partitions", "state-dir"}
        overrides = {k: v for k, v in node_config.items() if k not in reserved}
        return load_profile(str(node_config["profile"]), overrides)
    if "partition-id" not in node_config:
        raise ConfigError("node config needs 'profile' (deployment) or 'partition-id'")
    profiles = load_roster(roster)
    pid = int(node_config["partition-id"])
    if not 0 <= pid < len(profiles):
        raise ConfigError(
            f"partition-id={pid} outside roster {roster!r} ({len(profiles)})"
        )
    return profiles[pid]


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
    from fedmuscle_flwr.data.registry import check_public

    roster = run.federation.roster
    profiles = load_roster(roster)
    where = {p.name: f"client {p.name!r} (roster {roster!r})" for p in profiles}
    reads: dict[str, Modality] = {}
    for profile in profiles:
        with _field(where[profile.name]):
            reads[profile.name] = _check_task(profile).modality
    with _field("run config"):
        check_public(run.public.dataset, run.public.size, reads)
    for profile in profiles:
        with _field(where[profile.name]):
            _check_client(profile, run.muscle.dim, build_models)
    return profiles


def _check_task(profile: ClientProfile) -> DatasetInfo:
    """The task kind against the dataset's metadata (no data loaded)."""
    from fedmuscle_flwr.data.registry import dataset_info
    from fedmuscle_flwr.tasks.registry import get_task

    with _field("task"):
        task = get_task(profile.task.kind, profile.task.options)
    with _field("data"):
        info = dataset_info(profile.data.dataset)
    with _field("task.kind"):
        task.check_data(info)
    return info


def _check_client(profile: ClientProfile, dim: int, build_models: bool) -> None:
    """Load and cut the client's data share; build its model (optionally)."""
    from fedmuscle_flwr.data.registry import check_private
    from fedmuscle_flwr.models.client_model import build_client_model
    from fedmuscle_flwr.tasks.registry import get_task

    with _field("data"):
        info = check_private(profile.data)
    if build_models:
        task = get_task(profile.task.kind, profile.task.options)
        with _field("model"):
            build_client_model(profile.model, task, info.num_classes, dim)


@contextmanager
def _field(name: str) -> Iterator[None]:
    """Turn a ``ValueError`` into a ConfigError naming ``name`` (if it does not)."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        named = text.startswith(name) or f" {name}." in text
        raise ConfigError(text if named else f"{name}: {text}") from None


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A server preset (``server/<name>.toml``) as a nested mapping."""
    return read_toml(_resolve(name_or_path, "server"))


def resolve_run_config(flat: Mapping[str, Any]) -> RunConfig:
    """Flower's flat run config -> RunConfig: preset file, then the other keys."""
    flat = dict(flat)
    preset = str(flat.pop("preset", "default"))
    return RunConfig.from_mapping(deep_merge(load_preset(preset), unflatten(flat)))


def list_entries(folder: str) -> list[str]:
    """Names of the TOML files bundled under ``folder`` (e.g. ``clients``)."""
    return sorted(p.stem for p in (profiles_root() / folder).glob("*.toml"))
