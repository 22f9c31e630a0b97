"""Tables from files (CSV, JSON Lines, Parquet) through pyarrow.

:func:`read_table` returns the named columns as Python lists and refuses, in one
line, a missing file, an unreadable file, a missing column or an empty table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedmuscle_flwr.data.decode import DataFileError

#: suffix -> table format
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}


def _arrow_table(path: Path, fmt: str) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    try:
        if fmt == "csv":
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            return pa_csv.read_csv(
                path, parse_options=pa_csv.ParseOptions(delimiter=delimiter)
            )
        if fmt == "jsonl":
            return pa_json.read_json(path)
        if fmt == "parquet":
            return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        first = (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        )
        raise DataFileError(f"{path}: cannot read as {fmt} ({first})") from None
    raise DataFileError(f"{path}: unknown table format {fmt!r}")


def _json_records(path: Path) -> dict[str, list[Any]]:
    """A JSON file holding a list of records, or a mapping column -> list."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        keys = {k for r in data for k in r}
        return {k: [r.get(k) for r in data] for k in sorted(keys)}
    raise DataFileError(
        f"{path}: expected a list of records or a mapping column -> list"
    )


def table_format(path: Path) -> str:
    """The format of ``path`` from its suffix."""
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataFileError(
            f"{path}: unknown table suffix {path.suffix!r}; use one of "
            f"{sorted(TABLE_SUFFIXES)}"
        )
    return fmt


def read_table(
    path: Path, columns: Sequence[str], fmt: str | None = None
) -> dict[str, list[Any]]:
    """The ``columns`` of the table at ``path``, as lists (format from the suffix).

    Raises
    ------
    DataFileError
        No such file, unreadable, a column missing, or no rows.
    """
    path = path.expanduser()
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    fmt = fmt or table_format(path)
    if fmt == "json":
        data = _json_records(path)
    else:
        table = _arrow_table(path, fmt)
        data = {
            n: table.column(n).to_pylist() for n in table.column_names if n in columns
        }
        data.update({n: [] for n in table.column_names if n not in columns})
    missing = [c for c in columns if c not in data]
    if missing:
        raise DataFileError(
            f"{path}: missing column {missing[0]!r}; columns: {sorted(data)}"
        )
    out = {c: data[c] for c in columns}
    if not out[columns[0]]:
        raise DataFileError(f"{path}: no rows")
    return out
