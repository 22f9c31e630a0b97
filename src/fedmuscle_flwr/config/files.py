"""Finding the config files: client profiles, rosters and server presets.

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
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.profile import ClientProfile, Roster
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import (
    ConfigError,
    deep_merge,
    flatten,
    unflatten,
    validate,
)


# ------------------------------------------------------------------- locating
def profiles_root() -> Path:
    """Where the bundled ``clients/`` and ``server/`` folders are.

    Installed wheels carry them as ``fedmuscle_flwr/_profiles``; an editable
    install or a source checkout (and a Flower FAB) uses the repository folders.
    """
    packaged = resources.files("fedmuscle_flwr") / "_profiles"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3]


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
    """All profiles of a roster, in partition-id order; names made unique.

    With the roster's ``policy = "open"`` (the default: one operator owns every
    simulated client) each profile's policy is :meth:`ClientPolicy.open`.
    """
    path = _resolve(name_or_path, "clients/rosters")
    roster = validate(Roster, read_toml(path), f"roster {path}")
    profiles = [load_profile(p, o) for p, o in _roster_entries(name_or_path)]
    if roster.policy == "open":
        everything = {"policy": ClientPolicy.open()}
        profiles = [p.model_copy(update=everything) for p in profiles]
    names = [p.name for p in profiles]
    return tuple(
        p.model_copy(update={"name": f"{p.name}-{i}"}) if names.count(p.name) > 1 else p
        for i, p in enumerate(profiles)
    )


def load_policy(path: Path) -> ClientPolicy:
    """A policy file (``fedmuscle client --policy FILE``).

    The file holds a ``[policy]`` table, or the policy's keys at the top level.
    """
    data = read_toml(path)
    if set(data) == {"policy"}:
        data = data["policy"]
    return ClientPolicy.from_mapping(data, source=str(path))


#: node-config keys that are not profile overrides
RESERVED = frozenset(
    {"profile", "policy", "partition-id", "num-partitions", "state-dir"}
)


def resolve_profile(node_config: Mapping[str, Any], roster: str) -> ClientProfile:
    """The profile of this node.

    Deployment: ``--node-config 'profile="clients/x.toml"'`` (any other
    node-config keys except the reserved ones are dotted overrides, e.g.
    ``data.max-train=500``); ``policy="FILE"`` replaces the profile's
    ``[policy]`` by that file's. Simulation: the roster entry at ``partition-id``.
    """
    if "profile" in node_config:
        overrides = {k: v for k, v in node_config.items() if k not in RESERVED}
        profile = load_profile(str(node_config["profile"]), overrides)
        if node_config.get("policy"):
            policy = load_policy(Path(str(node_config["policy"])).expanduser())
            profile = profile.model_copy(update={"policy": policy})
        return profile
    if "partition-id" not in node_config:
        raise ConfigError("node config needs 'profile' (deployment) or 'partition-id'")
    profiles = load_roster(roster)
    pid = int(node_config["partition-id"])
    if not 0 <= pid < len(profiles):
        raise ConfigError(
            f"partition-id={pid} outside roster {roster!r} ({len(profiles)})"
        )
    return profiles[pid]


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A server preset (``server/<name>.toml``) as a nested mapping."""
    return read_toml(_resolve(name_or_path, "server"))


#: the settings ``pyproject.toml`` declares in ``[tool.flwr.app.config]`` (so that
#: ``flwr run . --run-config 'num-rounds=3'`` may override them), besides ``preset``
APP_CONFIG_KEYS = (
    "algorithm", "num-rounds", "seed", "device", "client-threads", "output-dir",
    "public.size", "train.epochs", "train.lr", "train.batch-size",
    "train.head-refit-epochs", "muscle.steps", "muscle.batch-size", "muscle.dim",
    "muscle.partners", "muscle.tau", "muscle.tau-partners", "muscle.lr",
    "muscle.sync", "muscle.precision", "eval.every", "eval.probe-size",
    "federation.roster", "federation.min-clients",
)  # fmt: skip
DEFAULT_PRESET = "default"


def app_config() -> dict[str, Any]:
    """``[tool.flwr.app.config]``: the preset and the main settings it resolves to.

    The values are those of the default preset, so ``flwr run .`` without
    overrides runs exactly ``fedmuscle run --algorithm fedmuscle``'s config;
    ``tests/unit/config/test_app_config.py`` keeps ``pyproject.toml`` equal to this.
    """
    run = RunConfig.from_mapping(load_preset(DEFAULT_PRESET))
    flat = flatten(run.model_dump(by_alias=True, mode="json"))
    return {"preset": DEFAULT_PRESET, **{key: flat[key] for key in APP_CONFIG_KEYS}}


def resolve_run_config(flat: Mapping[str, Any]) -> RunConfig:
    """Flower's flat run config -> RunConfig: the preset, then the changed keys.

    Flower hands the ServerApp every declared key, overridden or not, so a key
    counts as an override when its value differs from the declared default
    (:func:`app_config`); undeclared keys always do. With another preset, a key
    set to the default preset's value therefore keeps the preset's value.
    """
    flat = dict(flat)
    preset = str(flat.pop("preset", DEFAULT_PRESET))
    declared = app_config()
    changed = {k: v for k, v in flat.items() if k not in declared or v != declared[k]}
    return RunConfig.from_mapping(deep_merge(load_preset(preset), unflatten(changed)))


def list_entries(folder: str) -> list[str]:
    """Names of the TOML files bundled under ``folder`` (e.g. ``clients``)."""
    return sorted(p.stem for p in (profiles_root() / folder).glob("*.toml"))
