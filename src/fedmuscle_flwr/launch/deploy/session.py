"""``fedmuscle server --compare``: the main run and its baselines as one session.

The runs go one after another to the same SuperLink and clients, each in its own
folder of the session (``<session>/<algorithm>/``, the layout of a ``fedmuscle
run`` session), so ``report.md`` over the session has the Δ column against Local.
Each run tells the clients how many runs follow it (``federation.runs-after``): a
client started with ``--exit-after-run`` leaves after the last one only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.runs.checkpoint import check_resumable
from fedmuscle_flwr.runs.experiment import is_run


def compare_session(
    build: Callable[[Mapping[str, Any]], RunConfig],
    baselines: list[str],
    session: Path,
    resume: bool,
) -> tuple[Path, list[RunConfig]]:
    """The session folder and its runs: the main algorithm first, then ``baselines``.

    ``build(overrides)`` gives a run's validated config. With ``resume`` the
    session folder must exist; each run continues from its checkpoint, or
    starts if it never did (a finished one is skipped by the server).

    Raises
    ------
    ConfigError
        A baseline named twice or equal to the main algorithm, a missing session
        folder, a run folder given where a session folder is meant, or a run
        that cannot resume (:func:`check_resumable`).
    """
    if resume and not session.is_dir():
        raise ConfigError(f"--resume {session}: no such session folder")
    if resume and is_run(session):
        raise ConfigError(
            f"--resume {session} is a run folder; with --compare give its session "
            f"folder ({session.parent}), or leave --compare out"
        )
    main = build({}).algorithm
    names = [main, *baselines]
    if len(set(names)) != len(names):
        raise ConfigError(f"--compare {','.join(baselines)}: {main!r} or a name twice")
    session = session.resolve()
    runs = []
    for i, name in enumerate(names):
        run = build(
            {
                "algorithm": name,
                "output-dir": str(session),
                "run-name": name,
                "federation.runs-after": len(names) - 1 - i,
                "checkpoint.resume": resume,
            }
        )
        check_resumable(run, session / name)
        runs.append(run)
    return session, runs
