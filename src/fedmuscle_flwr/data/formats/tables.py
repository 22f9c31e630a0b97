"""Text datasets from tables: ``csv``, ``jsonl`` and ``parquet`` (read by pyarrow).

``options``: ``train`` (the table; ``path`` is an alias), ``test`` (optional;
else a seeded ``test-fraction`` is carved), ``text-column`` and
``label-column``. A label cell holding a list (JSONL, Parquet), or a string
split at ``separator`` when it is set, makes a multi-label dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import model_validator

from fedmuscle_flwr.data.base import LabelledData, Split, TargetKind
from fedmuscle_flwr.data.decode import DataFileError
from fedmuscle_flwr.data.formats.base import (
    FORMATS,
    FileFormat,
    SplitOptions,
    assemble,
    class_ids,
    label_space,
    make_info,
    multi_hot,
)
from fedmuscle_flwr.data.tables import read_table


class TableOptions(SplitOptions):
    """Where the table is and which columns hold the text and the label."""

    train: Path | None = None
    path: Path | None = None
    test: Path | None = None
    text_column: str = "text"
    label_column: str = "label"
    separator: str = ""

    @model_validator(mode="after")
    def _one_train(self) -> TableOptions:
        if (self.train is None) == (self.path is None):
            raise ValueError("give the table as 'train' (or 'path'), exactly once")
        return self


def _labels(cells: list[Any], separator: str) -> list[Any]:
    if separator:
        return [
            [p.strip() for p in str(c).split(separator) if p.strip()] for c in cells
        ]
    return cells


def _is_multilabel(cells: list[Any]) -> bool:
    return any(isinstance(c, list | tuple) for c in cells)


def _texts(cells: list[Any], where: Path, column: str) -> list[str]:
    for row, cell in enumerate(cells):
        if not isinstance(cell, str) or not cell.strip():
            raise DataFileError(
                f"{where}: row {row} of column {column!r} is not a non-empty text "
                f"({cell!r})"
            )
    return [str(c) for c in cells]


class _Table(FileFormat):
    """Shared reader of the three table formats."""

    table_format: ClassVar[str]
    Options = TableOptions

    @classmethod
    def _read(cls, path: Path, opts: TableOptions) -> tuple[list[str], list[Any]]:
        columns = (opts.text_column, opts.label_column)
        table = read_table(path.expanduser(), columns, cls.table_format)
        labels = _labels(table[opts.label_column], opts.separator)
        missing = [i for i, c in enumerate(labels) if c is None or c == ""]
        if missing:
            raise DataFileError(
                f"{path}: row {missing[0]} has no {opts.label_column!r} value"
            )
        return _texts(table[opts.text_column], path, opts.text_column), labels

    @classmethod
    def load(cls, opts: Any) -> LabelledData:
        """Read train (and test) tables; the train labels define the label space."""
        path = opts.train or opts.path
        texts, labels = cls._read(path, opts)
        test = cls._read(opts.test, opts) if opts.test is not None else None
        origin = f"{cls.name} {path.expanduser()}"
        multi = _is_multilabel(labels)
        flat = [str(c) for ls in labels for c in ls] if multi else map(str, labels)
        names = label_space(list(flat), opts.classes, origin)

        def targets(cells: list[Any], where: str) -> np.ndarray:
            if multi:
                lists = [[str(c) for c in ls] for ls in cells]
                return multi_hot(lists, names, where)
            return class_ids([str(c) for c in cells], names, where)

        kind: TargetKind = "multilabel" if multi else "class"
        info = make_info(origin, "text", kind, names)
        train = Split(texts, targets(labels, origin))
        test_split = None
        if test is not None:
            test_split = Split(test[0], targets(test[1], str(opts.test)))
        return assemble(info, train, test_split, opts.test_fraction)


@FORMATS.register("csv")
class CsvTable(_Table):
    """Text and label columns of a CSV (or ``.tsv``) file."""

    summary = "text: a CSV with a text column and a label column (or label list)"
    table_format = "csv"


@FORMATS.register("jsonl")
class JsonlTable(_Table):
    """Text and label fields of a JSON Lines file."""

    summary = "text: JSON Lines with a text field and a label field (or list)"
    table_format = "jsonl"


@FORMATS.register("parquet")
class ParquetTable(_Table):
    """Text and label columns of a Parquet file."""

    summary = "text: a Parquet table with a text column and a label column (or list)"
    table_format = "parquet"
