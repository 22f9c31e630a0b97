"""Any PyTorch ``Dataset`` as a client's data: ``dataset = "package.module:callable"``.

The callable gets ``data.options`` as keyword arguments and returns one of:

* a ``(train, test)`` pair or a ``{"train": ..., "test": ...}`` mapping of
  datasets, or one dataset (a seeded 20 % test split is carved);
* each dataset indexable (``len``, ``ds[i] -> (x, y)``): ``x`` a PIL image, a
  uint8 array, an image tensor or a string; ``y`` an int class id or a string.

Samples are fetched on demand (a batch at a time). The labels come from the
dataset's ``targets`` attribute when it has one (torchvision's convention),
else from one pass over it; ``classes`` (torchvision's convention) names the
label space, else the labels do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fedmuscle_flwr.config.imports import load_callable
from fedmuscle_flwr.data.base import LabelledData, Modality, Split
from fedmuscle_flwr.data.decode import DataFileError
from fedmuscle_flwr.data.formats.base import assemble, class_ids, label_space, make_info
from fedmuscle_flwr.data.formats.samples import sample_converter
from fedmuscle_flwr.data.lazy import IndexedSamples

logger = logging.getLogger(__name__)

#: test fraction carved from a plugin that returns one dataset
PLUGIN_TEST_FRACTION = 0.2


def is_plugin(name: str) -> bool:
    """Whether ``data.dataset`` names a plugin (``module:callable``)."""
    return ":" in name


def _labels(dataset: Any, origin: str) -> list[Any]:
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return list(np.asarray(targets).tolist())
    logger.info("%s: no 'targets' attribute; reading every sample once", origin)
    return [dataset[i][1] for i in range(len(dataset))]


def _names(
    dataset: Any, labels: list[Any], given: tuple[str, ...], origin: str
) -> tuple[str, ...]:
    if all(isinstance(v, str) for v in labels):
        return label_space(labels, given, origin)
    classes = given or tuple(getattr(dataset, "classes", None) or ())
    if classes:
        return tuple(str(c) for c in classes)
    return tuple(str(i) for i in range(int(max(labels)) + 1))


def _split(
    dataset: Any,
    labels: list[Any],
    names: tuple[str, ...],
    convert: Callable[[Any], Any],
    modality: Modality,
    origin: str,
) -> Split:
    if len(dataset) == 0:
        raise DataFileError(f"{origin}: the dataset is empty")
    x = IndexedSamples(dataset, lambda item: convert(item[0]), modality, origin)
    if all(isinstance(v, str) for v in labels):
        return Split(x, class_ids(labels, names, origin))
    bad = [v for v in labels if not 0 <= int(v) < len(names)]
    if bad:
        raise DataFileError(
            f"{origin}: label {bad[0]} is not in the label space {list(names)}"
        )
    return Split(x, np.asarray(labels, dtype=np.int64))


def load_plugin(target: str, options: Mapping[str, Any]) -> LabelledData:
    """Call ``target`` with ``options`` and wrap what it returns (see module doc).

    ``options`` keys ``image-size`` and ``classes`` are ours (as for files);
    the others go to the callable.
    """
    opts = dict(options)
    size = int(opts.pop("image-size", 0))
    given = tuple(str(c) for c in opts.pop("classes", ()))
    try:
        made = load_callable(target, "data.dataset")(**opts)
    except TypeError as exc:
        raise ValueError(f"data.options for {target!r}: {exc}") from None
    if isinstance(made, LabelledData):
        return made
    train: Any
    test: Any
    if isinstance(made, Mapping):
        train, test = made.get("train"), made.get("test")
    elif isinstance(made, tuple) and len(made) == 2:
        train, test = made
    else:
        train, test = made, None
    if not (hasattr(train, "__getitem__") and hasattr(train, "__len__")):
        raise DataFileError(
            f"{target}: returned {type(made).__name__}; expected a Dataset, a "
            "(train, test) pair or a {'train', 'test'} mapping"
        )
    origin = f"plugin {target}"
    if len(train) == 0:
        raise DataFileError(f"{origin}: the train dataset is empty")
    labels = _labels(train, origin)
    names = _names(train, labels, given, origin)
    first = train[0][0]
    modality: Modality = "text" if isinstance(first, str) else "image"
    convert = sample_converter(modality, first, size, origin)
    train_split = _split(train, labels, names, convert, modality, origin)
    test_split = None
    if test is not None:
        test_origin = f"{origin} (test)"
        test_labels = _labels(test, test_origin)
        test_split = _split(test, test_labels, names, convert, modality, test_origin)
    info = make_info(origin, modality, "class", names)
    return assemble(info, train_split, test_split, PLUGIN_TEST_FRACTION)
