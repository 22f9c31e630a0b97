"""A Hugging Face ``datasets`` folder saved with ``save_to_disk`` (``load_from_disk``).

The folder holds a ``Dataset`` (a test split is carved) or a ``DatasetDict``
(``train-split``, ``test-split``). The table stays memory-mapped; images
(an ``Image`` feature, PIL images or uint8 arrays) are decoded per batch. The
label column's ``ClassLabel`` names are the label space (else its sorted
values); a ``Sequence(ClassLabel)`` column is multi-label. To take a share of a
large set use ``data.partition`` (flwr-datasets' partitioners).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmuscle_flwr.data.base import LabelledData, Modality, Split, TargetKind
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
from fedmuscle_flwr.data.formats.samples import sample_converter
from fedmuscle_flwr.data.lazy import IndexedSamples

#: input columns tried in order when ``input-column`` is not given
INPUT_COLUMNS = ("image", "img", "text", "sentence", "content")


class HfOptions(SplitOptions):
    """The saved folder, its splits and columns."""

    path: Path
    train_split: str = "train"
    test_split: str = "test"
    input_column: str = ""
    label_column: str = "label"
    image_size: int = 0


def _open(opts: HfOptions) -> tuple[Any, Any | None]:
    from datasets import DatasetDict, load_from_disk

    path = opts.path.expanduser()
    if not path.is_dir():
        raise DataFileError(f"{path}: no such folder")
    try:
        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataFileError(f"{path}: not a saved datasets folder ({exc})") from None
    if not isinstance(data, DatasetDict):
        return data, None
    if opts.train_split not in data:
        raise DataFileError(
            f"{path}: no split {opts.train_split!r}; splits: {sorted(data)}"
        )
    test = data.get(opts.test_split)
    return data[opts.train_split], test


def _label_names(table: Any, column: str) -> tuple[list[str] | None, bool]:
    """ClassLabel names of ``column`` (or ``None``), and whether it is a list."""
    feature = table.features[column]
    inner = getattr(feature, "feature", None)
    if isinstance(feature, list) and feature:
        inner = feature[0]
    multi = inner is not None
    names = getattr(inner if multi else feature, "names", None)
    return (list(names) if names else None), multi


def _input_column(table: Any, given: str, where: Path) -> str:
    columns = list(table.column_names)
    if given:
        if given not in columns:
            raise DataFileError(
                f"{where}: missing column {given!r}; columns: {columns}"
            )
        return given
    for name in INPUT_COLUMNS:
        if name in columns:
            return name
    raise DataFileError(
        f"{where}: no input column among {list(INPUT_COLUMNS)}; set "
        f"options.input-column (columns: {columns})"
    )


@FORMATS.register("hf-disk")
class HfDisk(FileFormat):
    """A ``datasets`` folder from ``save_to_disk``; images decoded per batch."""

    summary = "a Hugging Face datasets folder (save_to_disk / load_from_disk)"
    Options = HfOptions

    @classmethod
    def load(cls, opts: Any) -> LabelledData:
        """Open the folder memory-mapped; read the label columns only."""
        train, test = _open(opts)
        path = opts.path.expanduser()
        column = _input_column(train, opts.input_column, path)
        if opts.label_column not in train.column_names:
            raise DataFileError(
                f"{path}: missing column {opts.label_column!r}; "
                f"columns: {list(train.column_names)}"
            )
        names, multi = _label_names(train, opts.label_column)
        origin = f"hf-disk {path}"

        def name(value: Any) -> str:
            return str(value) if names is None else names[int(value)]

        def as_str(values: list[Any]) -> list[Any]:
            if multi:
                return [[name(v) for v in vs] for vs in values]
            return [name(v) for v in values]

        train_labels = as_str(train[opts.label_column])
        flat = [c for ls in train_labels for c in ls] if multi else train_labels
        space = label_space(flat, opts.classes or tuple(names or ()), origin)

        def split(table: Any, labels: list[Any]) -> Split:
            first = table[0][column]
            modality: Modality = "text" if isinstance(first, str) else "image"
            convert = sample_converter(modality, first, opts.image_size, origin)
            rows = table.select_columns([column])
            x = IndexedSamples(rows, lambda row: convert(row[column]), modality, origin)
            if multi:
                return Split(x, multi_hot(labels, space, origin))
            return Split(x, class_ids(labels, space, origin))

        train_split = split(train, train_labels)
        test_split = None
        if test is not None:
            test_split = split(test, as_str(test[opts.label_column]))
        kind: TargetKind = "multilabel" if multi else "class"
        modality = train_split.x.modality  # type: ignore[union-attr]
        info = make_info(origin, modality, kind, space)
        return assemble(info, train_split, test_split, opts.test_fraction)
