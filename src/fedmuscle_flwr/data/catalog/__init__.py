"""The packaged datasets, one module per family (registry style of config/registry.py).

A module registers its sets with :func:`~.base.private` and :func:`~.base.public`;
:data:`PRIVATE` and :data:`PUBLIC` import every module of this folder on first use.
Adding a packaged dataset = one decorated loader in one module (plus its test).
"""

from fedmuscle_flwr.data.catalog.base import PRIVATE, PUBLIC, PrivateEntry, PublicEntry

__all__ = ["PRIVATE", "PUBLIC", "PrivateEntry", "PublicEntry"]
