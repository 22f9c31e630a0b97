"""The Δ table of a `fedmuscle run` (fedmuscle.md §4), as text and markdown."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from fedmuscle_flwr.metrics import DeltaRow, mean_delta


def delta_table(rows: Sequence[DeltaRow], ours: str = "fedmuscle") -> Table:
    """A rich table: client, task, model, metric, ours, local, Δ %."""
    table = Table(title=f"{ours} vs local (Δ = relative change of the task metric)")
    for col in ("client", "task", "model", "metric", ours, "local", "Δ %"):
        table.add_column(
            col, justify="right" if col in (ours, "local", "Δ %") else "left"
        )
    for r in rows:
        table.add_row(
            r.client,
            r.task,
            r.model,
            r.metric_name,
            f"{r.ours:.4f}",
            f"{r.local:.4f}",
            f"{r.delta:+.1f}",
        )
    table.add_section()
    table.add_row("mean", "", "", "", "", "", f"{mean_delta(rows):+.1f}")
    return table


def delta_markdown(rows: Sequence[DeltaRow], ours: str = "fedmuscle") -> str:
    """The same table in markdown (written next to the runs)."""
    lines = [
        f"| client | task | model | metric | {ours} | local | Δ % |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.client} | {r.task} | {r.model} | {r.metric_name} | {r.ours:.4f} "
        f"| {r.local:.4f} | {r.delta:+.1f} |"
        for r in rows
    ]
    lines.append(f"| **mean** | | | | | | **{mean_delta(rows):+.1f}** |")
    return "\n".join(lines) + "\n"
