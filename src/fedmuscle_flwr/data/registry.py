"""The two entry points over every dataset: packaged, from files, plugins.

* :func:`load_private` gives one client its share of a labelled dataset
  (:mod:`.pipeline`: packaged sets of :mod:`.catalog`, a client's own files in
  a format of :mod:`.formats`, or a ``module:callable`` plugin);
* :func:`load_public` gives everyone the same unlabelled public set (packaged,
  or read from files by :mod:`.public_files`).

Sources are cached per process, and so are partition tables, so a second
``load_private`` of the same dataset costs only the cut of the client's rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from fedmuscle_flwr.config.profile import DataSpec, PublicSource
from fedmuscle_flwr.config.run import PublicConfig
from fedmuscle_flwr.data import pipeline
from fedmuscle_flwr.data.base import (
    DatasetInfo,
    Modality,
    PrivateData,
    PublicData,
)
from fedmuscle_flwr.data.catalog import PRIVATE, PUBLIC
from fedmuscle_flwr.data.formats.base import FORMATS
from fedmuscle_flwr.data.pipeline import open_source
from fedmuscle_flwr.data.public_files import PUBLIC_FORMATS
from fedmuscle_flwr.data.sources import DataUnavailableError

__all__ = [
    "PRIVATE",
    "PUBLIC",
    "DataUnavailableError",
    "check_private",
    "check_public",
    "dataset_info",
    "list_datasets",
    "load_private",
    "load_public",
]

#: seed of the permutation whose first ``size`` rows form a public set
PUBLIC_SEED = 0


def dataset_info(data: str | DataSpec) -> DatasetInfo:
    """Metadata of a labelled dataset: a packaged name (no loading) or a spec.

    A spec naming files or a plugin is read (once per process) to learn its
    label space.
    """
    spec = data if isinstance(data, DataSpec) else DataSpec(dataset=data)
    if spec.dataset in PRIVATE and not spec.options:
        return PRIVATE[spec.dataset].info
    return open_source(spec).info


def list_datasets() -> dict[str, str]:
    """Every dataset and file format: name -> one-line summary.

    Private packaged sets, then public packaged sets, then the formats a
    client's own files may take (``data.dataset`` with ``data.options``) and
    the public layouts read from files (``public.dataset``/``public.options``).
    """
    out = {
        name: f"private {e.info.modality}/{e.info.target_kind}, "
        f"{e.info.num_classes} classes: {e.description}"
        for name, e in PRIVATE.items()
    }
    for name, p in PUBLIC.items():
        out[name] = f"public {'+'.join(sorted(p.modalities))}: {p.description}"
    for name, fmt in FORMATS.items():
        out[name] = f"your files (data.options): {fmt.summary}"
    for name, (modalities, _) in PUBLIC_FORMATS.items():
        key = name if name not in out else f"{name} (public)"
        out[key] = f"your public files (public.options): {'+'.join(sorted(modalities))}"
    return out


def load_private(spec: DataSpec) -> PrivateData:
    """One client's share of labelled dataset ``spec.dataset``.

    The one pass of :mod:`~fedmuscle_flwr.data.pipeline` (source -> label space
    -> partition -> subsample -> validation -> splits), for packaged sets, the
    client's own files and plugins alike. Draws are seeded by
    ``partition.seed``; class ids are never remapped. Multi-label and mask
    targets are partitioned and filtered by their primary label (see
    :func:`~fedmuscle_flwr.data.partitioning.primary_labels`).

    Returns
    -------
    PrivateData
        Raw uint8 images or strings (or lazily decoded files); int64 class ids
        / float32 multi-hot / int64 masks.
    """
    return pipeline.load_private(spec)


@contextmanager
def _explained(name: str) -> Iterator[None]:
    """Re-raise a missing source as missing for ``name`` (its own prepare command).

    A composite set (``emoji-tuxpaint-captions``) is prepared under its own name;
    the loader of a part would name only that part.
    """
    try:
        yield
    except DataUnavailableError as exc:
        entry = PRIVATE.get(name) or PUBLIC.get(name)
        sources = entry.sources if entry is not None else ()
        for source in sources:
            downloadable = source.kind == "torchvision" or source.fallback
            if exc.name != name and not downloadable and not source.available():
                raise DataUnavailableError(name, source.hint(name)) from exc
        raise


def check_private(spec: DataSpec) -> DatasetInfo:
    """Check before training that a client's data exists and can be partitioned.

    Loads (and caches, so that clients do not race to build derived sets) the
    dataset and cuts this client's share, exactly as :func:`load_private` does.

    Raises
    ------
    ValueError
        Unknown dataset, options, or a partition that cannot be cut.
    DataUnavailableError
        A source is missing (the message holds the ``fedmuscle data prepare``
        command).
    """
    with _explained(spec.dataset):
        return load_private(spec).info


def _public_modalities(name: str) -> frozenset[Modality]:
    if name in PUBLIC_FORMATS:
        return PUBLIC_FORMATS[name][0]
    if name in PUBLIC:
        return PUBLIC[name].modalities
    raise ValueError(
        f"public.dataset: unknown public set {name!r}; packaged: {sorted(PUBLIC)}, "
        f"from files: {sorted(PUBLIC_FORMATS)}"
    )


def _public_pool(name: str, options: Mapping[str, Any]) -> PublicData:
    if name in PUBLIC_FORMATS:
        return PUBLIC_FORMATS[name][1](options)
    if options:
        raise ValueError(
            f"public.options: packaged public set {name!r} takes no options, "
            f"got {dict(options)}"
        )
    with _explained(name):
        return PUBLIC[name].load()


def check_public(
    name: str,
    size: int,
    needs: Mapping[str, Modality],
    options: Mapping[str, Any] | None = None,
) -> None:
    """Check before training that public set ``name`` serves every client.

    Parameters
    ----------
    name : str
        The run's ``public.dataset``: a packaged set or a file layout.
    size : int
        The run's ``public.size``.
    needs : Mapping[str, Modality]
        Client name -> the modality its encoder reads.
    options : Mapping[str, Any] | None
        The run's ``public.options`` (where the files are).

    Raises
    ------
    ValueError
        Unknown set, a modality it lacks, or ``size`` beyond its samples.
    DataUnavailableError
        A source is missing (with the ``fedmuscle data prepare`` command).
    """
    modalities = _public_modalities(name)
    lacking = {c: m for c, m in needs.items() if m not in modalities}
    if lacking:
        pairs = sorted(n for n, e in PUBLIC.items() if len(e.modalities) > 1)
        raise ValueError(
            f"public.dataset {name!r} has only {sorted(modalities)} samples "
            f"but clients {lacking} read other modalities; image-caption sets: "
            f"{pairs} or 'image-captions' from files"
        )
    available = len(_public_pool(name, options or {}))
    if size > available:
        raise ValueError(
            f"public.size={size} exceeds the {available} samples of {name!r}"
        )


def load_public(
    name: str, size: int, options: Mapping[str, Any] | None = None
) -> PublicData:
    """Return the first ``size`` samples of a seeded permutation of set ``name``.

    ``name`` is a packaged set (``fedmuscle list datasets``) or a file layout
    (:data:`~fedmuscle_flwr.data.public_files.PUBLIC_FORMATS`) read from
    ``options``. The permutation (seed :data:`PUBLIC_SEED`) is the same for
    every participant, so equal files give an equal public set (and an equal
    :func:`~fedmuscle_flwr.data.fingerprint.public_fingerprint`).

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``size`` is not in ``[1, available]``.
    """
    _public_modalities(name)
    pool = _public_pool(name, options or {})
    if not 1 <= size <= len(pool):
        raise ValueError(f"public set {name!r} has {len(pool)} samples; asked {size}")
    order = np.random.default_rng(PUBLIC_SEED).permutation(len(pool))[:size]
    return pool.subset(order)


def load_participant_public(
    run_public: PublicConfig, own: PublicSource | None = None
) -> PublicData:
    """A participant's copy of the run's public set.

    Its own files when its profile names them (``[public]``: a deployed client
    whose copy lies elsewhere), else the run's ``public.dataset``/``options``;
    always ``public.size`` samples of the same seeded order. Whether the copy
    equals the server's is for :func:`~.fingerprint.check_fingerprint` to say.
    """
    source = own if own is not None else run_public
    return load_public(source.dataset, run_public.size, source.options)
