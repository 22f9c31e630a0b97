"""The schema machinery every config model shares (the bottom of the package).

Config enters the program once, at the edge, through pydantic models
(``extra="forbid"``, frozen). Every bad key or value raises :class:`ConfigError`
naming the key and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

_M = TypeVar("_M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _Schema(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=_kebab,
        populate_by_name=True,
        allow_inf_nan=False,  # every number finite: inf/nan are refused at the edge
    )


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"a.b": 1}`` into ``{"a": {"b": 1}}``; nested dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"key {key!r} conflicts with a scalar at {part!r}")
            node = child
        leaf = parts[-1]
        if isinstance(value, Mapping):
            existing = node.setdefault(leaf, {})
            existing.update(unflatten(value))
        else:
            node[leaf] = value
    return out


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of :func:`unflatten`."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{full}."))
        else:
            out[full] = value
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``override`` (neither is modified)."""
    out: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(model: type[_M], data: Mapping[str, Any], what: str) -> _M:
    """Validate ``data`` against ``model`` and turn errors into one readable message."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(_kebab(str(p)) for p in err["loc"]) or "<root>"
            shown = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
            lines.append(f"  {loc}: {err['msg']}{shown}")
        raise ConfigError(f"invalid {what}:\n" + "\n".join(lines)) from None
