"""Run records: per-round, per-client metrics on disk, and the Δ of fedmuscle.md §4.

A run folder holds ``config.json`` (the validated run config), ``metrics.jsonl``
(one JSON object per round and client, plus per-round server rows with
``"client": "*"``) and ``summary.json`` (final metric per client).
Δ = mean over clients of (metric − metric_local) / metric_local × 100 %.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVER_ROW = "*"


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
        row = {"round": server_round, "client": client, **values}
        self.rows.append(row)
        with (self.run_dir / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(row, default=_jsonable) + "\n")

    def final_metrics(self) -> dict[str, dict[str, Any]]:
        """Per client: the last evaluation row (metric name, value, round, task)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            if row["client"] != SERVER_ROW and "metric" in row:
                out[row["client"]] = row
        return out

    def write_summary(self, extra: Mapping[str, Any]) -> Path:
        """``summary.json``: final metrics per client + ``extra`` (totals)."""
        path = self.run_dir / "summary.json"
        summary = {"clients": self.final_metrics(), **extra}
        path.write_text(json.dumps(summary, indent=2, default=_jsonable))
        return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of ``metrics.jsonl``."""
    with (run_dir / "metrics.jsonl").open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


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
    """Δ of fedmuscle.md §4: the mean over clients of the relative change (%)."""
    values = [r.delta for r in rows if math.isfinite(r.delta)]
    return sum(values) / len(values) if values else math.nan
