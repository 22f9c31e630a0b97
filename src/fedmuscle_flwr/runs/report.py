"""The result table of docs/method.md §4 (the paper's) and the report around it.

``paper_table``: every algorithm of an experiment, session or run folder, per
client the metric and Δ vs local as mean ± std over seeds, plus the mean Δ row;
``write_report`` saves it as ``report.md`` with the plots of :mod:`.plots`
(``fedmuscle report``, and at the end of ``fedmuscle run`` and ``fedmuscle server``).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedmuscle_flwr.runs.experiment import PLOTS, Results, RunKey, load_results
from fedmuscle_flwr.runs.metrics import delta_rows, mean_delta

# ------------------------------------------------ the paper-format table
REFERENCE = "local"


@dataclass(frozen=True)
class Stat:
    """Mean ± sample standard deviation (ddof = 1) over ``n`` seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        """The statistic of the finite ``values`` (nan when there are none)."""
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return cls(math.nan, math.nan, 0)
        std = statistics.stdev(finite) if len(finite) > 1 else 0.0
        return cls(statistics.fmean(finite), std, len(finite))

    def text(self, spec: str) -> str:
        """``0.703 ± 0.010`` (several seeds), ``0.703`` (one), ``–`` (none)."""
        if self.n == 0:
            return "–"
        if self.n == 1:
            return format(self.mean, spec)
        return f"{format(self.mean, spec)} ± {format(self.std, spec.lstrip('+'))}"


@dataclass(frozen=True)
class ClientLine:
    """One client: its metric per algorithm and Δ vs the reference per algorithm."""

    client: str
    task: str
    model: str
    metric_name: str
    metric: dict[str, Stat]
    delta: dict[str, Stat]


@dataclass(frozen=True)
class PaperTable:
    """The table of the paper: clients × algorithms, Δ vs Local, the mean Δ row."""

    algorithms: tuple[str, ...]
    compared: tuple[str, ...]  # algorithms with a Δ column
    lines: list[ClientLine]
    mean_delta: dict[str, Stat]


def paper_table(results: Results, reference: str = REFERENCE) -> PaperTable:
    """Aggregate over seeds: Δ is taken per seed (same clients), then mean ± std."""
    metric: dict[tuple[str, str], list[float]] = defaultdict(list)
    delta: dict[tuple[str, str], list[float]] = defaultdict(list)
    mean: dict[str, list[float]] = defaultdict(list)
    info: dict[str, Mapping[str, Any]] = {}
    for key, final in results.finals.items():
        info |= {c: row for c, row in final.items() if c not in info}
        for client, row in final.items():
            metric[key.algorithm, client].append(float(row["metric"]))
        ref = results.finals.get(RunKey(key.seed, reference))
        if ref is None or key.algorithm == reference:
            continue
        rows = delta_rows(final, ref)
        for r in rows:
            delta[key.algorithm, r.client].append(r.delta)
        mean[key.algorithm].append(mean_delta(rows))
    compared = tuple(a for a in results.algorithms if a in mean)
    algos = sorted(results.algorithms, key=lambda a: a != reference)  # Local first
    lines = [
        ClientLine(
            c,
            str(info[c].get("task", "")),
            str(info[c].get("model", "")),
            str(info[c].get("metric-name", "metric")),
            {a: Stat.of(metric[a, c]) for a in algos},
            {a: Stat.of(delta[a, c]) for a in compared},
        )
        for c in sorted(info)
    ]
    return PaperTable(
        tuple(algos), compared, lines, {a: Stat.of(mean[a]) for a in compared}
    )


def paper_markdown(table: PaperTable, results: Results) -> str:
    """The table in markdown, with a note on seeds and missing runs."""
    algos, comp = table.algorithms, table.compared
    head = ["client", "model", "task", "metric", *algos, *(f"Δ {a} %" for a in comp)]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * 4 + "---:|" * (len(algos) + len(comp)),
    ]
    for ln in table.lines:
        cells = [ln.client, ln.model, ln.task, ln.metric_name]
        cells += [ln.metric[a].text(".4f") for a in algos]
        cells += [ln.delta[a].text("+.1f") for a in comp]
        lines.append("| " + " | ".join(cells) + " |")
    means = [f"**{table.mean_delta[a].text('+.1f')}**" for a in comp]
    lines.append(
        "| " + " | ".join(["**mean Δ**", *[""] * (3 + len(algos)), *means]) + " |"
    )
    seeds = [s for s in results.seeds if s is not None]
    lines.append("")
    lines.append(
        f"Mean ± sample standard deviation over seeds {', '.join(map(str, seeds))}; "
        "Δ = (metric − metric_local) / metric_local × 100 %, per seed, then over seeds."
        if seeds
        else "One run per algorithm; "
        "Δ = (metric − metric_local) / metric_local × 100 %."
    )
    if not comp:
        lines.append(f"\nNo finished `{REFERENCE}` run to compare with: no Δ.")
    if results.missing:
        missing = ", ".join(f"`{k.label}`" for k in results.missing)
        lines.append(f"\n**Missing (not finished) runs:** {missing}.")
    return "\n".join(lines) + "\n"


def paper_rich(table: PaperTable) -> Table:
    """The same table for the console."""
    out = Table(title="metric per client (mean ± std over seeds) and Δ vs local")
    for col in ("client", "model", "metric"):
        out.add_column(col)
    for col in (*table.algorithms, *(f"Δ {a} %" for a in table.compared)):
        out.add_column(col, justify="right")
    for ln in table.lines:
        out.add_row(
            ln.client,
            ln.model,
            ln.metric_name,
            *(ln.metric[a].text(".4f") for a in table.algorithms),
            *(ln.delta[a].text("+.1f") for a in table.compared),
        )
    out.add_section()
    pad = [""] * (2 + len(table.algorithms))
    out.add_row(
        "mean Δ", *pad, *(table.mean_delta[a].text("+.1f") for a in table.compared)
    )
    return out


def write_report(folder: Path, console: Console | None = None) -> Path:
    """``report.md`` and ``plots/*.png`` for an experiment or run session folder."""
    from fedmuscle_flwr.runs.plots import write_plots  # matplotlib: only when plotting

    results = load_results(folder)
    table = paper_table(results)
    deltas = {
        a: {
            **{ln.client: (ln.delta[a].mean, ln.delta[a].std) for ln in table.lines},
            "mean": (table.mean_delta[a].mean, table.mean_delta[a].std),
        }
        for a in table.compared
    }
    runs = {a: results.runs(a) for a in results.algorithms}
    plots = write_plots(runs, deltas, folder / PLOTS)
    doc = [f"# {folder.name}\n", paper_markdown(table, results), "## Plots\n"]
    doc += [f"![{p.stem}]({PLOTS}/{p.name})\n" for p in plots]
    path = folder / "report.md"
    path.write_text("\n".join(doc))
    if console is not None and console.is_terminal:
        console.print(paper_rich(table))
    elif console is not None:  # a log file: markdown lines, never cut or wrapped
        console.print(
            paper_markdown(table, results),
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    if console is not None:
        for key in results.missing:
            console.print(f"[yellow]missing (not finished): {key.label}[/yellow]")
        console.print(f"report in {path}")
    return path
