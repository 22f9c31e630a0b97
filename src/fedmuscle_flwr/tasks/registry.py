"""The only place a task-kind string becomes a :class:`Task`.

A task class is a dataclass whose fields are its options, registered in its own
file of this folder with ``@TASKS.register("kind")`` (found by the registry's
folder scan): adding a kind is one file plus its test, no edit here. The style
is the same for algorithms and backbones (:mod:`fedmuscle_flwr.config.registry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fedmuscle_flwr.tasks.base import TASKS, Task


def task_options(kind: str) -> dict[str, Any]:
    """Return the options of task ``kind`` and their defaults.

    Parameters
    ----------
    kind : str
        A registry name.

    Raises
    ------
    ValueError
        If ``kind`` is not registered.
    """
    cls = _lookup(kind)
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: f.default for f in dataclasses.fields(cls)}


def get_task(kind: str, options: Mapping[str, Any] | None = None) -> Task:
    """Build the task ``kind`` with ``options``.

    Parameters
    ----------
    kind : str
        A registry name, see :func:`list_tasks`.
    options : Mapping[str, Any] or None
        Task options (e.g. ``{"label_smoothing": 0.1}``); None = defaults.

    Returns
    -------
    Task
        A new task instance.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, or an option is unknown or invalid.
    """
    known = task_options(kind)
    options = dict(options or {})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for task {kind!r}; "
            f"known options: {sorted(known) or 'none'}"
        )
    return TASKS[kind](**options)


def list_tasks() -> dict[str, str]:
    """Registry name -> one-line description, for every task kind."""
    return {name: cls.description for name, cls in sorted(TASKS.items())}


def _lookup(kind: str) -> type[Task]:
    try:
        return TASKS[kind]
    except KeyError:
        raise ValueError(
            f"unknown task kind {kind!r}; known kinds: {', '.join(sorted(TASKS))}"
        ) from None
