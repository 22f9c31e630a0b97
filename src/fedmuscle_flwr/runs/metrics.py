"""Run records: per-round, per-client metrics on disk, and the Δ of docs/method.md §4.

A run folder holds ``config.json`` (the validated run config), ``metrics.jsonl``
(one JSON object per round and client, plus per-round server rows with
``"client": "*"``) and ``summary.json``: how the run ended (``status``, see
:func:`run_status`) and the final metric per client, each with the round it
comes from (``round``; ``stale`` when that is not the last evaluation).
Δ = mean over clients of (metric − metric_local) / metric_local × 100 %.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVER_ROW = "*"
COMPLETED, INCOMPLETE = "completed", "incomplete"
#: exit status of ``fedmuscle run|server`` when a run ended ``incomplete``
EXIT_INCOMPLETE = 4


class MetricsFileError(ValueError):
    """A ``metrics.jsonl`` line is not a JSON object (names the file and line)."""


class MetricsWriteError(RuntimeError):
    """``metrics.jsonl`` cannot be written (a full disk): names the file and why."""


class IncompleteRun(RuntimeError):
    """A run ended without a valid final evaluation (``status: incomplete``)."""


def run_status(
    rows: Iterable[Mapping[str, Any]], num_rounds: int, min_clients: int
) -> dict[str, Any]:
    """How a run ended, from its server rows.

    ``completed`` only when the evaluation of round ``num_rounds`` (the last
    server row) counted at least ``min_clients`` valid replies; else
    ``incomplete``, with the reason.
    """
    last = None
    for row in rows:
        if row.get("client") == SERVER_ROW and row.get("phase") == "round":
            last = row
    got_round = int(last["round"]) if last else None
    valid = int(last.get("clients", 0)) if last else 0
    if got_round != num_rounds:
        why = f"no evaluation of the last round ({num_rounds})"
    elif valid < min_clients:
        why = (
            f"the last evaluation had {valid} valid replies, fewer than "
            f"federation.min-clients={min_clients}"
        )
    else:
        why = ""
    return {
        "status": INCOMPLETE if why else COMPLETED,
        "reason": why,
        "last-evaluation": {"round": got_round, "valid-replies": valid},
        "min-clients": min_clients,
    }


@dataclass
class RunRecorder:
    """Appends metric rows to ``<run_dir>/metrics.jsonl`` and keeps them in memory."""

    run_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Save the validated run config next to the metrics."""
        (self.run_dir / "config.json").write_text(json.dumps(config, indent=2))

    def record(self, server_round: int, client: str, **values: Any) -> None:
        """One row: the round, the client (``*`` for the server) and its values."""
        self.record_rows(server_round, [(client, values)])

    def record_rows(
        self, server_round: int, rows: Iterable[tuple[str, Mapping[str, Any]]]
    ) -> None:
        """Rows of one round, ``(client, values)`` each, appended in one write."""
        new = [{"round": server_round, "client": c, **v} for c, v in rows]
        path = self.run_dir / "metrics.jsonl"
        try:
            with path.open("a") as fh:
                fh.write("".join(json.dumps(r, default=_jsonable) + "\n" for r in new))
        except OSError as exc:
            raise MetricsWriteError(
                f"{path}: cannot append a row ({exc.strerror or exc}); the run stops "
                "here: free space, then continue it with --resume"
            ) from exc
        self.rows.extend(new)

    def final_metrics(self) -> dict[str, dict[str, Any]]:
        """Per client: the last evaluation row (metric name, value, round, task)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            if row["client"] != SERVER_ROW and "metric" in row:
                out[row["client"]] = row
        return out

    def write_summary(
        self, extra: Mapping[str, Any], status: Mapping[str, Any] | None = None
    ) -> Path:
        """``summary.json``: ``status``, final metrics per client, ``extra`` (totals).

        Each client's final metric says its ``round``, and ``stale: true`` when
        that is not the round of the last evaluation.
        """
        path = self.run_dir / "summary.json"
        status = dict(status or {})
        last = status.get("last-evaluation", {}).get("round")
        clients = {
            name: {**row, "stale": last is not None and row["round"] != last}
            for name, row in self.final_metrics().items()
        }
        summary = {**status, "clients": clients, **extra}
        path.write_text(json.dumps(summary, indent=2, default=_jsonable))
        return path


ROUNDS_CSV = "rounds.csv"


def round_table(
    rows: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One line per completed round: its summary, server row and client metrics.

    ``history`` holds the completed rounds' summaries (round, seconds, clients,
    incidents); the metric rows add the mean task loss of the round's training,
    the server's evaluation row (probe alignment, bytes, mean metric) and each
    client's task metric as ``metric:<client>`` (rounds with an evaluation).
    """
    by_round: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_round.setdefault(int(row["round"]), []).append(row)
    table = []
    for summary in history:
        rnd = int(summary["round"])
        line: dict[str, Any] = dict(summary)
        mine = by_round.get(rnd, [])
        losses = [r["task-loss"] for r in mine if isinstance(r.get("task-loss"), float)]
        if losses:
            line["task-loss"] = sum(losses) / len(losses)
        for r in mine:
            if r["client"] == SERVER_ROW and r.get("phase") == "round":
                line |= {k: v for k, v in r.items() if k not in ("client", "phase")}
            elif r.get("phase") == "evaluate" and "metric" in r:
                line[f"metric:{r['client']}"] = r["metric"]
        table.append(line)
    return table


#: the figures of a round's progress line: (column, label, format)
_ROUND_FIGURES = (
    ("clients", "clients", ".0f"),
    ("task-loss", "task-loss", ".3f"),
    ("mean-metric", "mean-metric", ".4f"),
    ("probe-positive-sim", "probe-sim", ".3f"),
    ("probe-mi-bound", "MI-bound", ".2f"),
)


def round_line(line: Mapping[str, Any], total: int) -> str:
    """One readable line for a :func:`round_table` entry (its figures present)."""
    parts = [f"round {line['round']}/{total}", f"{line.get('seconds', 0.0):.1f} s"]
    for key, label, spec in _ROUND_FIGURES:
        value = line.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            parts.append(f"{label} {format(value, spec)}")
    return " | ".join(parts)


def write_rounds_csv(
    run_dir: Path,
    rows: Iterable[Mapping[str, Any]],
    history: Iterable[Mapping[str, Any]],
) -> Path:
    """``rounds.csv`` (:func:`round_table`), replaced whole (no half-written file)."""
    table = round_table(rows, history)
    columns = list(dict.fromkeys(k for line in table for k in line))
    tmp = run_dir / f".{ROUNDS_CSV}.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(table)
    return tmp.replace(run_dir / ROUNDS_CSV)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of ``metrics.jsonl``."""
    return parse_rows(run_dir / "metrics.jsonl")


def parse_rows(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` (all) non-blank rows of ``path``.

    Raises :class:`MetricsFileError` naming the file and line of a bad row.
    """
    rows: list[dict[str, Any]] = []
    with path.open() as fh:
        for number, line in enumerate(fh, 1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MetricsFileError(
                    f"{path}, line {number}: not a JSON row ({exc.msg})"
                ) from None
            if not isinstance(row, dict):
                raise MetricsFileError(f"{path}, line {number}: not a JSON object")
            rows.append(row)
    return rows


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` of a finished run."""
    result: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return result


@dataclass(frozen=True)
class DeltaRow:
    """One client's line of the Δ table."""

    client: str
    task: str
    model: str
    metric_name: str
    ours: float
    local: float

    @property
    def delta(self) -> float:
        """(ours − local) / local × 100."""
        return (self.ours - self.local) / self.local * 100.0 if self.local else math.nan


def delta_rows(
    ours: Mapping[str, Mapping[str, Any]], local: Mapping[str, Mapping[str, Any]]
) -> list[DeltaRow]:
    """Join two ``final_metrics`` by client name (clients in both runs only)."""
    rows = []
    for name in sorted(set(ours) & set(local)):
        o, lo = ours[name], local[name]
        rows.append(
            DeltaRow(
                name,
                str(o.get("task", "")),
                str(o.get("model", "")),
                str(o.get("metric-name", "metric")),
                float(o["metric"]),
                float(lo["metric"]),
            )
        )
    return rows


def mean_delta(rows: Iterable[DeltaRow]) -> float:
    """Δ of docs/method.md §4: the mean over clients of the relative change (%)."""
    values = [r.delta for r in rows if math.isfinite(r.delta)]
    return sum(values) / len(values) if values else math.nan
