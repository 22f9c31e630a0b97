"""An experiment: every algorithm × seed of one preset on the same clients.

One folder holds it all::

    <folder>/experiment.json          the plan: preset, algorithms, seeds
    <folder>/seed-<s>/<algorithm>/    one run folder (metrics.py) per algorithm × seed
    <folder>/report.md, plots/        written by ``fedmuscle report`` (report.py)

A run is *finished* when its ``summary.json`` exists. Running the plan again
(``fedmuscle experiment --resume FOLDER``) skips finished runs and continues the
others from their checkpoints (checkpoint.py), so an interrupted experiment
costs at most the rounds in flight. The same reader also accepts a
``fedmuscle run`` session folder (``<session>/<algorithm>/``, one seed) and a
single run folder (``fedmuscle server``'s ``<output>/<run-name>/``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmuscle_flwr.runs.checkpoint import check_resumable
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.metrics import read_summary

log = logging.getLogger(__name__)

PLAN = "experiment.json"
SEED_PREFIX = "seed-"
SUMMARY = "summary.json"
CONFIG = "config.json"  # the validated run config, in every run folder
PLOTS = "plots"  # written by the report, not a run


@dataclass(frozen=True, order=True)
class RunKey:
    """One run of an experiment; ``seed`` is None in a ``fedmuscle run`` session."""

    seed: int | None
    algorithm: str

    @property
    def label(self) -> str:
        """``seed-<s>/<algorithm>`` (or the algorithm alone), as on disk."""
        return (
            self.algorithm
            if self.seed is None
            else f"{seed_dir(self.seed)}/{self.algorithm}"
        )


def seed_dir(seed: int) -> str:
    """The folder name of one seed's runs."""
    return f"{SEED_PREFIX}{seed}"


def run_path(folder: Path, key: RunKey) -> Path:
    """Where the run ``key`` lives inside ``folder`` (``folder`` itself if a run)."""
    return folder if is_run(folder) else folder / key.label


def is_run(folder: Path) -> bool:
    """``folder`` is one run (``fedmuscle server``'s output), not a set of runs."""
    return (folder / CONFIG).is_file()


def is_finished(run_dir: Path) -> bool:
    """A run is finished when it wrote its ``summary.json``."""
    return (run_dir / SUMMARY).is_file()


@dataclass(frozen=True)
class Plan:
    """What an experiment runs: every algorithm for every seed of one preset."""

    preset: str
    algorithms: tuple[str, ...]
    seeds: tuple[int, ...]

    def runs(self) -> list[RunKey]:
        """The runs, seed by seed (each seed's algorithms run on the same clients)."""
        return [RunKey(s, a) for s in self.seeds for a in self.algorithms]

    def merged(self, other: Plan | None) -> Plan:
        """Union with the algorithms and seeds of ``other`` (a resumed folder)."""
        if other is None:
            return self
        algos = dict.fromkeys((*other.algorithms, *self.algorithms))
        return Plan(
            self.preset, tuple(algos), tuple(sorted({*other.seeds, *self.seeds}))
        )


def write_plan(folder: Path, plan: Plan) -> None:
    """Save ``experiment.json`` (merged with the plan already there, if any)."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = plan.merged(read_plan(folder))
    doc = {"preset": plan.preset, "algorithms": plan.algorithms, "seeds": plan.seeds}
    (folder / PLAN).write_text(json.dumps(doc, indent=2) + "\n")


def read_plan(folder: Path) -> Plan | None:
    """The plan in ``folder/experiment.json``, or None when there is none."""
    path = folder / PLAN
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return Plan(
        str(doc["preset"]),
        tuple(str(a) for a in doc["algorithms"]),
        tuple(int(s) for s in doc["seeds"]),
    )


def experiment_configs(
    plan: Plan,
    folder: Path,
    build: Callable[[Mapping[str, Any]], RunConfig],
    resume: bool,
) -> dict[RunKey, RunConfig]:
    """One validated config per run; ``build`` turns flat overrides into a config.

    Raises :class:`~fedmuscle_flwr.config.run.ConfigError` (incl. ``ResumeError``)
    before anything runs: a bad value, or a folder that cannot take the run.
    """
    configs: dict[RunKey, RunConfig] = {}
    for seed, algorithm in ((s, a) for s in plan.seeds for a in plan.algorithms):
        key = RunKey(seed, algorithm)
        configs[key] = build(
            {
                "seed": seed,
                "algorithm": algorithm,
                "output-dir": str(folder / seed_dir(seed)),
                "run-name": algorithm,
                "checkpoint.resume": resume,
            }
        )
        check_resumable(configs[key], run_path(folder, key))
    return configs


def run_experiment(
    configs: Mapping[RunKey, RunConfig],
    folder: Path,
    execute: Callable[[RunConfig], Path],
) -> list[RunKey]:
    """Run every unfinished run of ``configs`` in order; return those it ran."""
    ran = []
    for i, (key, run) in enumerate(configs.items(), 1):
        if is_finished(run_path(folder, key)):
            log.info("[%d/%d] %s finished before: skipped", i, len(configs), key.label)
            continue
        log.info("[%d/%d] %s", i, len(configs), key.label)
        execute(run)
        ran.append(key)
    return ran


@dataclass(frozen=True)
class Results:
    """What a folder holds: the expected runs, the finished ones' final metrics."""

    folder: Path
    algorithms: tuple[str, ...]
    seeds: tuple[int | None, ...]
    finals: dict[RunKey, dict[str, dict[str, Any]]] = field(default_factory=dict)
    missing: tuple[RunKey, ...] = ()

    def runs(self, algorithm: str) -> list[Path]:
        """The finished run folders of ``algorithm``, seed by seed."""
        return [
            run_path(self.folder, k)
            for k in sorted(self.finals)
            if k.algorithm == algorithm
        ]


def _subfolders(folder: Path) -> list[str]:
    """Sub-folders that hold a run or a seed's runs (not ``plots``)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != PLOTS)


def expected_runs(folder: Path) -> list[RunKey]:
    """The runs an experiment or session folder should hold (finished or not)."""
    if is_run(folder):
        config = json.loads((folder / CONFIG).read_text())
        return [RunKey(None, str(config.get("algorithm", folder.name)))]
    plan = read_plan(folder)
    seeds = [
        n
        for n in _subfolders(folder)
        if n.startswith(SEED_PREFIX) and n.removeprefix(SEED_PREFIX).isdigit()
    ]
    if plan is None and not seeds:  # a `fedmuscle run` session
        return [RunKey(None, a) for a in _subfolders(folder)]
    keys = set(plan.runs() if plan else [])
    for name in seeds:
        seed = int(name.removeprefix(SEED_PREFIX))
        keys |= {RunKey(seed, a) for a in _subfolders(folder / name)}
    order = list(plan.algorithms) if plan else []
    order += sorted({k.algorithm for k in keys} - set(order))
    return sorted(keys, key=lambda k: (k.seed or 0, order.index(k.algorithm)))


def load_results(folder: Path) -> Results:
    """Final metrics of every finished run in ``folder``; the others are missing."""
    keys = expected_runs(folder)
    finals = {
        k: read_summary(run_path(folder, k))["clients"]
        for k in keys
        if is_finished(run_path(folder, k))
    }
    return Results(
        folder,
        _unique(k.algorithm for k in keys),
        _unique(k.seed for k in keys),
        finals,
        tuple(k for k in keys if k not in finals),
    )


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


__all__ = [
    "PLAN",
    "Plan",
    "Results",
    "RunKey",
    "expected_runs",
    "experiment_configs",
    "is_finished",
    "load_results",
    "read_plan",
    "run_experiment",
    "run_path",
    "write_plan",
]
