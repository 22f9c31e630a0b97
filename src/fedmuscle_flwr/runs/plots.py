"""PNG plots of an experiment or run session (matplotlib, Agg canvas, no pyplot).

Every line is the mean over seeds, with a ±1 std band when there are several:

- ``metric-per-round.png``: each client's task metric per round, one line per
  algorithm (round 0 = the initial evaluation);
- ``delta.png``: Δ vs local per client and its mean, one bar per algorithm, std
  error bars;
- ``bytes-per-round.png``: bytes up and down per round, all clients together;
- ``alignment.png``: the probe batch's mean Muscle loss and the MI lower bound
  M·log B − L_Muscle (docs/method.md §2) per round.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fedmuscle_flwr.runs.experiment import PLOTS
from fedmuscle_flwr.runs.metrics import SERVER_ROW, read_rows

Rows = list[dict[str, Any]]
#: algorithm -> group (client or "mean") -> (mean Δ %, std)
Deltas = Mapping[str, Mapping[str, tuple[float, float]]]


def per_round(rows: Rows, client: str, key: str) -> dict[int, float]:
    """``key`` per round in the rows of ``client`` (the last value of a round)."""
    out: dict[int, float] = {}
    for row in rows:
        value = row.get(key)
        if row["client"] == client and isinstance(value, int | float):
            out[int(row["round"])] = float(value)
    return out


def over_seeds(
    seeds: Sequence[Rows], client: str, key: str
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Rounds, mean and std over seeds of ``key`` (rounds any seed has)."""
    by_round: dict[int, list[float]] = defaultdict(list)
    for rows in seeds:
        for r, v in per_round(rows, client, key).items():
            if math.isfinite(v):
                by_round[r].append(v)
    rounds = sorted(by_round)
    mean = np.array([np.mean(by_round[r]) for r in rounds])
    std = np.array(
        [np.std(by_round[r], ddof=1) if len(by_round[r]) > 1 else 0.0 for r in rounds]
    )
    return rounds, mean, std


def _line(
    ax: Axes,
    seeds: Sequence[Rows],
    client: str,
    key: str,
    label: str,
    scale: float = 1.0,
) -> None:
    rounds, mean, std = over_seeds(seeds, client, key)
    if not rounds:
        return
    (line,) = ax.plot(rounds, mean * scale, marker="o", markersize=3, label=label)
    if len(seeds) > 1:
        low, high = (mean - std) * scale, (mean + std) * scale
        ax.fill_between(rounds, low, high, alpha=0.2, color=line.get_color())


def _figure(panels: int, title: str) -> tuple[Figure, list[Axes]]:
    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(panels)]
    fig.suptitle(title)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    """One legend for the figure, outside every panel's data (right of them)."""
    legend: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
        ax.grid(alpha=0.3)
        if ax.get_xlabel() == "round":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if legend:
        fig.legend(
            list(legend.values()), list(legend), loc="outside right upper",
            fontsize="small", title="algorithm",
        )  # fmt: skip
    fig.savefig(path, dpi=110)
    return path


def _evaluations(runs: Mapping[str, Sequence[Rows]]) -> Iterator[dict[str, Any]]:
    """Every client evaluation row of every run."""
    for seeds in runs.values():
        for rows in seeds:
            yield from (r for r in rows if "metric" in r and r["client"] != SERVER_ROW)


def plot_metric(runs: Mapping[str, Sequence[Rows]], path: Path) -> Path:
    """Each client's metric per round, one line per algorithm."""
    clients = sorted({r["client"] for r in _evaluations(runs)}) or ["(none)"]
    fig, axes = _figure(len(clients), "task metric per round (mean ± std over seeds)")
    for ax, client in zip(axes, clients, strict=True):
        names = {
            str(r.get("metric-name", "metric"))
            for r in _evaluations(runs)
            if r["client"] == client
        }
        for algorithm, seeds in runs.items():
            _line(ax, seeds, client, "metric", algorithm)
        ax.set(
            title=client, xlabel="round", ylabel=", ".join(sorted(names)) or "metric"
        )
    return _save(fig, path)


def plot_server(
    runs: Mapping[str, Sequence[Rows]],
    keys: Mapping[str, str],
    title: str,
    path: Path,
    scale: float = 1.0,
) -> Path:
    """One panel per server-row ``key`` (its label the value), a line per algorithm."""
    fig, axes = _figure(len(keys), title)
    for ax, (key, label) in zip(axes, keys.items(), strict=True):
        for algorithm, seeds in runs.items():
            _line(ax, seeds, SERVER_ROW, key, algorithm, scale)
        ax.set(title=label, xlabel="round")
    return _save(fig, path)


def plot_delta(deltas: Deltas, path: Path) -> Path:
    """Δ vs local per client and the mean: grouped bars, std error bars."""
    fig, (ax,) = _figure(1, "Δ vs local (%), mean ± std over seeds")
    groups = [*sorted({g for d in deltas.values() for g in d} - {"mean"}), "mean"]
    x = np.arange(len(groups))
    width = 0.8 / max(len(deltas), 1)
    for i, (algorithm, by_group) in enumerate(deltas.items()):
        mean = [by_group.get(g, (math.nan, 0.0))[0] for g in groups]
        std = [by_group.get(g, (0.0, 0.0))[1] for g in groups]
        ax.bar(
            x + (i - (len(deltas) - 1) / 2) * width,
            mean,
            width,
            yerr=std,
            capsize=3,
            label=algorithm,
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set(ylabel="Δ %")
    if not deltas:
        ax.set_title("no local run: no Δ")
    return _save(fig, path)


def write_plots(
    runs: Mapping[str, Sequence[Path]], deltas: Deltas, out: Path
) -> list[Path]:
    """The four PNGs of the module docstring in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = {a: [read_rows(d) for d in dirs] for a, dirs in runs.items() if dirs}
    return [
        plot_metric(rows, out / "metric-per-round.png"),
        plot_delta(deltas, out / "delta.png"),
        plot_server(
            rows,
            {"bytes-up": "uplink (MB)", "bytes-down": "downlink (MB)"},
            "bytes per round, all clients",
            out / "bytes-per-round.png",
            scale=1e-6,
        ),
        plot_server(
            rows,
            {
                "probe-muscle-loss": "probe Muscle loss",
                "probe-mi-bound": "MI lower bound (nats)",
            },
            "alignment on the probe batch per round",
            out / "alignment.png",
        ),
    ]


__all__ = ["PLOTS", "over_seeds", "per_round", "write_plots"]
