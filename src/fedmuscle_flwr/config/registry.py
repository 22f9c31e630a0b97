"""One registry style for every "name -> thing" table (algorithms, backbones, tasks).

An entry registers itself with a decorator that names it, in one file of the
registry's folder; the registry imports every module of that folder on first
use (lazily, so a module of the folder may import the registry without a
cycle). Adding an entry is therefore one file (plus its test), never an edit
of a central list::

    # method/algorithms/base.py
    ALGORITHMS = Registry("algorithm", "fedmuscle_flwr.method.algorithms", "name")

    # method/algorithms/muscle.py -- the name is written once, here
    @ALGORITHMS.register("fedmuscle")
    class FedMuscle(Algorithm): ...

    # models/vision.py
    @ENCODERS.register("small-cnn")
    def build_small_cnn(*, pretrained: bool = False) -> Encoder: ...

With ``name_attr`` the decorator also sets that class attribute to the name
(``FedMuscle.name == "fedmuscle"``), so the name lives in one place. Read the
registry like a dict: ``REG[name]``, ``sorted(REG)``, ``REG.items()``;
:meth:`Registry.entry` raises the registry's error naming the known entries.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry, filled by :meth:`register` in the modules of ``package``."""

    def __init__(
        self,
        what: str,
        package: str,
        name_attr: str | None = None,
        error: type[Exception] = ValueError,
    ) -> None:
        self.what = what
        self.package = package
        self.name_attr = name_attr
        self.error = error
        self._entries: dict[str, T] = {}
        self._scanned = False

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator: add the decorated object under ``name``."""
        if not name or ":" in name:
            raise ValueError(
                f"{self.what} names must be non-empty without ':' ({name!r})"
            )

        def add(obj: T) -> T:
            self.add(name, obj, overwrite=overwrite)
            return obj

        return add

    def add(self, name: str, obj: T, *, overwrite: bool = False) -> None:
        """Add ``obj`` under ``name`` (what :meth:`register` does)."""
        old = self._entries.get(name)
        if old is not None and old is not obj and not overwrite:
            raise ValueError(f"{self.what} {name!r} is already registered")
        if self.name_attr is not None:
            setattr(obj, self.name_attr, name)
        self._entries[name] = obj

    def entry(self, name: str) -> T:
        """The entry ``name``; the registry's error names the known ones."""
        try:
            return self[name]
        except KeyError:
            raise self.error(
                f"{self.what} {name!r} is not registered; known: {sorted(self)}"
            ) from None

    def scan(self) -> None:
        """Import every module of the registry's folder once (they register)."""
        if self._scanned:
            return
        self._scanned = True
        package = importlib.import_module(self.package)
        for info in sorted(
            pkgutil.iter_modules(package.__path__), key=lambda i: i.name
        ):
            importlib.import_module(f"{self.package}.{info.name}")

    def __getitem__(self, name: str) -> T:
        self.scan()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self.scan()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self.scan()
        return len(self._entries)
