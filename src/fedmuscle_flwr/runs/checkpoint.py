"""Server checkpoints and resuming a run (no Flower).

After every completed round the server writes ``<run dir>/checkpoint.json``
(atomically: temporary file, fsync, rename) with what it needs to continue:

* ``round``: the last completed round (0 = the initial evaluation);
* ``config-hash`` and ``config``: the run configuration it ran with;
* ``uid``: the run's unique id, part of the key under which clients keep their
  model and optimiser states (``client.run_phase``), so a resumed run finds them;
* ``rng``: the seed and how every random stream derives from it. All server
  randomness (public batches, partners, partner order, probe) is a fresh
  ``numpy.random.default_rng([seed, purpose, round, step])``, so the seed *is*
  the RNG state: nothing else needs saving to redraw round r exactly;
* ``names``: the client name bindings (:mod:`fedmuscle_flwr.serverapp.names`), so that a
  resumed run keeps who reports under which name;
* ``rows``: how many lines of ``metrics.jsonl`` belong to completed rounds, and
  ``history``: one summary per completed round (clients, rejected, failed,
  timed out, quarantined, seconds).

Resuming (``checkpoint.resume = true``: ``fedmuscle run|server --resume``)
refuses a configuration whose hash differs (:class:`ResumeError` lists the
differing keys), drops the ``metrics.jsonl`` lines of the interrupted round and
continues with the round after ``round``, so every round is recorded exactly
once. A fresh run refuses a folder that already holds a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmuscle_flwr.config.schema import ConfigError, flatten
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.runs.metrics import (
    MetricsFileError,
    RunRecorder,
    parse_rows,
    write_rounds_csv,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.json"
METRICS = "metrics.jsonl"
FORMAT = 1
#: keys that may change between the segments of one run: where it is written,
#: how its clients' states are keyed, and how patiently the server waits
VOLATILE = frozenset(
    {
        "output-dir",
        "live-csv",
        "run-name",
        "device",
        "checkpoint.resume",
        "checkpoint.uid",
        "federation.min-clients",
        "federation.wait-clients-s",
        "federation.phase-timeout-s",
        "federation.straggler-factor",
        "federation.straggler-min-s",
        "federation.poll-s",
        "federation.node-keys-file",
        "federation.deployed",
        "federation.runs-after",
    }
)
RNG_NOTE = "numpy.random.default_rng([seed, purpose, round, step]) per stream"


class ResumeError(ConfigError):
    """A run cannot be resumed (or started) in this folder with this config."""


@dataclass
class Checkpoint:
    """What ``checkpoint.json`` holds (see the module docstring)."""

    round: int
    config_hash: str
    config: dict[str, Any]
    uid: str
    rows: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    segments: int = 1
    names: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (kebab-case keys)."""
        return {
            "format": FORMAT,
            "round": self.round,
            "config-hash": self.config_hash,
            "uid": self.uid,
            "rng": {"seed": self.config.get("seed", 0), "streams": RNG_NOTE},
            "rows": self.rows,
            "seconds": self.seconds,
            "segments": self.segments,
            "history": self.history,
            "names": self.names,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: Path) -> Checkpoint:
        """Parse ``data``; :class:`ResumeError` when it is not a checkpoint."""
        try:
            if int(data["format"]) != FORMAT:
                raise ValueError(f"format {data['format']} (expected {FORMAT})")
            return cls(
                round=int(data["round"]),
                config_hash=str(data["config-hash"]),
                config=dict(data["config"]),
                uid=str(data["uid"]),
                rows=int(data["rows"]),
                history=list(data["history"]),
                seconds=float(data["seconds"]),
                segments=int(data["segments"]),
                names=dict(data.get("names", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResumeError(f"{where}: not a usable checkpoint ({exc})") from None


# ------------------------------------------------------------------ hashing
def _essential(run: RunConfig) -> dict[str, Any]:
    flat = flatten(run.model_dump(by_alias=True, mode="json"))
    return {k: v for k, v in sorted(flat.items()) if k not in VOLATILE}


def config_hash(run: RunConfig) -> str:
    """SHA-256 of the configuration minus :data:`VOLATILE` keys."""
    return _hash(_essential(run))


def _hash(essential: Mapping[str, Any]) -> str:
    text = json.dumps(essential, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def saved_hash(config: Mapping[str, Any]) -> str:
    """The hash of a saved configuration as it was saved (any version)."""
    flat = flatten(dict(config))
    return _hash({k: v for k, v in sorted(flat.items()) if k not in VOLATILE})


def check_fits(ckpt: Checkpoint, run: RunConfig, path: Path) -> None:
    """:class:`ResumeError` naming the field when ``ckpt`` cannot be ``run``'s.

    ``config-hash`` must be the hash of the checkpoint's own ``config`` (else
    the file was edited or is corrupt), ``round`` within 0..``num-rounds``.
    """
    if saved_hash(ckpt.config) != ckpt.config_hash:
        raise ResumeError(
            f"{path}: field config-hash ({ckpt.config_hash[:12]}...) does not match "
            "the checkpoint's own config (edited or corrupt checkpoint)"
        )
    if not 0 <= ckpt.round <= run.num_rounds:
        raise ResumeError(
            f"{path}: field round = {ckpt.round} does not fit this run "
            f"(num-rounds = {run.num_rounds})"
        )


def config_diff(saved: Mapping[str, Any], given: RunConfig) -> list[str]:
    """``key: saved != given`` for every essential key that differs.

    A key the saved configuration lacks (written by a version without it)
    counts with its default, and is named as such.
    """
    old = _essential(RunConfig.from_mapping(saved))
    new = _essential(given)
    absent = _absent_keys(saved, given)
    return [
        f"{k}: {old.get(k)!r} ({'default, not saved' if k in absent else 'saved'})"
        f" != {new.get(k)!r} (given)"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def _absent_keys(saved: Mapping[str, Any], given: RunConfig) -> list[str]:
    """Essential keys of ``given`` that the saved configuration does not hold."""
    return sorted(set(_essential(given)) - set(flatten(dict(saved))))


# --------------------------------------------------------------------- files
def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The checkpoint of ``run_dir``, or None when it has none."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResumeError(f"{path}: unreadable checkpoint ({exc})") from None
    return Checkpoint.from_json(data, path)


def save_checkpoint(run_dir: Path, ckpt: Checkpoint) -> Path:
    """Write ``checkpoint.json`` atomically (a crash leaves the old or the new)."""
    path = run_dir / CHECKPOINT
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        json.dump(ckpt.to_json(), fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def check_resumable(run: RunConfig, run_dir: Path) -> Checkpoint | None:
    """Validate that ``run`` may start (fresh) or resume in ``run_dir``.

    Raises
    ------
    ResumeError
        Fresh run in a folder with a checkpoint; resumed run whose essential
        configuration differs from the checkpoint's (the differences listed).
        Keys that the saved configuration lacks (it was written by a version
        without them) take their defaults: resumed with a warning if ``run``
        has the defaults too, refused otherwise.
    """
    ckpt = load_checkpoint(run_dir)
    if not run.checkpoint.resume:
        if ckpt is not None:
            raise ResumeError(
                f"{run_dir} already holds a run (checkpoint after round "
                f"{ckpt.round}); continue it with --resume {run_dir}, or choose "
                "another run name or output folder"
            )
        return None
    if ckpt is not None:
        check_fits(ckpt, run, run_dir / CHECKPOINT)
    if ckpt is None or ckpt.config_hash == config_hash(run):
        return ckpt
    diff = config_diff(ckpt.config, run)
    if diff or config_hash(RunConfig.from_mapping(ckpt.config)) != config_hash(run):
        raise ResumeError(
            f"cannot resume {run_dir}: the configuration differs from the one "
            "it ran with:\n  " + ("\n  ".join(diff) or "(hash only)")
        )
    new = {k: v for k, v in flatten(run.model_dump(by_alias=True, mode="json")).items()
           if k in _absent_keys(ckpt.config, run)}  # fmt: skip
    log.warning(
        "%s was saved by a version without %s; resuming with their defaults",
        run_dir,
        ", ".join(f"{k}={v!r}" for k, v in new.items()),
    )
    return ckpt


# ------------------------------------------------------------------- a run
@dataclass
class RunSession:
    """One segment of a run: its config, recorder and checkpointing."""

    run: RunConfig
    run_dir: Path
    recorder: RunRecorder
    completed: int  # last completed round, -1 = nothing yet
    history: list[dict[str, Any]]
    seconds_before: float = 0.0
    segments: int = 1
    names: dict[str, Any] = field(default_factory=dict)

    def save(
        self, server_round: int, summary: Mapping[str, Any], seconds: float
    ) -> None:
        """Round ``server_round`` is complete: append ``summary``, write.

        ``names`` (the name bindings) is the caller's to keep current.
        """
        self.completed = server_round
        self.history.append({"round": server_round, **summary})
        if self.run.live_csv:
            write_rounds_csv(self.run_dir, self.recorder.rows, self.history)
        if not self.run.checkpoint.enabled:
            return
        ckpt = Checkpoint(
            round=server_round,
            config_hash=config_hash(self.run),
            config=self.run.model_dump(by_alias=True, mode="json"),
            uid=self.run.checkpoint.uid,
            rows=len(self.recorder.rows),
            history=self.history,
            seconds=self.seconds_before + seconds,
            segments=self.segments,
            names=self.names,
        )
        save_checkpoint(self.run_dir, ckpt)


def open_run(run: RunConfig, run_dir: Path) -> RunSession:
    """Start or resume ``run`` in ``run_dir``; see :func:`check_resumable`.

    A resumed run gets the checkpoint's ``uid`` and the ``metrics.jsonl`` rows
    of its completed rounds (later lines, from the interrupted round, are
    dropped); a fresh run gets a new ``uid``.
    """
    ckpt = check_resumable(run, run_dir)
    if ckpt is None:
        uid = run.checkpoint.uid or secrets.token_hex(6)
        run = run.model_copy(
            update={"checkpoint": run.checkpoint.model_copy(update={"uid": uid})}
        )
        if run.checkpoint.resume:  # crashed before round 0 ended: drop its rows
            log.info("%s: no completed round to resume; starting at round 0", run_dir)
            _keep_rows(run_dir, 0)
        return RunSession(run, run_dir, RunRecorder(run_dir), -1, [])
    run = run.model_copy(
        update={"checkpoint": run.checkpoint.model_copy(update={"uid": ckpt.uid})}
    )
    rows = _keep_rows(run_dir, ckpt.rows)
    log.info(
        "resuming %s after round %d (%d metric rows kept, segment %d)",
        run_dir,
        ckpt.round,
        len(rows),
        ckpt.segments + 1,
    )
    recorder = RunRecorder(run_dir, rows)
    return RunSession(
        run, run_dir, recorder, ckpt.round, list(ckpt.history), ckpt.seconds,
        ckpt.segments + 1, dict(ckpt.names),
    )  # fmt: skip


def _keep_rows(run_dir: Path, count: int) -> list[dict[str, Any]]:
    """Keep the first ``count`` lines of ``metrics.jsonl`` (rewritten atomically)."""
    path = run_dir / METRICS
    run_dir.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < count:
        raise ResumeError(
            f"{path} has {len(lines)} rows but the checkpoint counts {count}"
        )
    kept = lines[:count]
    if len(kept) != len(lines):
        log.info("dropping %d metric rows of the interrupted round", len(lines) - count)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)
    try:
        return parse_rows(path)
    except MetricsFileError as exc:
        raise ResumeError(str(exc)) from None


def is_complete(run: RunConfig, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds ``run`` finished: all rounds and the summary."""
    ckpt = load_checkpoint(run_dir)
    done = ckpt is not None and ckpt.round >= run.num_rounds
    return done and (run_dir / "summary.json").is_file()


def check_session(runs: Mapping[str, RunConfig], session: Path) -> None:
    """Before ``fedmuscle run --resume SESSION``: every run may resume there."""
    if not session.is_dir():
        raise ResumeError(f"--resume {session}: no such session folder")
    for run in runs.values():
        check_resumable(run, session / run.run_name)
