"""A shorter first retry when Flower pulls a message's objects (Flower 1.39).

Every message between the ServerApp, the SuperLink and a SuperNode travels as
a message head plus content objects. The sender pushes the head first, then
the objects; a receiver that pulls in between finds an object not yet there
(``ObjectUnavailableError``) and waits before it retries. In Flower 1.39 that
first wait is **1 s** (``PULL_INITIAL_BACKOFF`` in ``flwr/supercore/constant.py``,
bound as the default of ``pull_objects`` and ``pull_and_inflate_object_from_tree``
in ``flwr/supercore/inflatable/inflatable_utils.py``), doubling up to 10 s, and
it is not configurable. On loopback it hit most phases: the ServerApp's pull of
a client's reply (``HttpGrid.pull_messages``) and the SuperNode's pull of the
next instruction (``start_client_internal``) each lost ~1 s (docs/performance.md
§7c), more than the compute of a tiny round.

:func:`shorten_pull_backoff` sets the first wait of both functions (the
doubling, the 10 s cap, the 500 tries and the 2 h limit stay Flower's), only for
Flower 1.39.0 and only when those defaults are the ones this was written against
(:func:`pull_backoff_problem`; otherwise Flower's wait stays, with a warning).
It is applied in the ServerApp process (``serverapp.app``) and in the warm
client's SuperNode (``launch.deploy.supernode``).
``tests/unit/wire/test_pull_backoff.py`` fails when that Flower code changes.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: the Flower release whose object pulls this adjusts
FLWR_VERSION = "1.39.0"
#: Flower's first wait after an object was not yet available, in that release
FLOWER_INITIAL_BACKOFF_S = 1
#: ours: objects arrive within milliseconds of their message head
DEFAULT_INITIAL_BACKOFF_S = 0.05
_FUNCTIONS = ("pull_objects", "pull_and_inflate_object_from_tree")


def pull_backoff_problem() -> str | None:
    """Why :func:`shorten_pull_backoff` would not apply here (None: it applies)."""
    import flwr
    from flwr.supercore import constant
    from flwr.supercore.inflatable import inflatable_utils

    if flwr.__version__ != FLWR_VERSION:
        return f"Flower {flwr.__version__} is not {FLWR_VERSION}"
    if getattr(constant, "PULL_INITIAL_BACKOFF", None) != FLOWER_INITIAL_BACKOFF_S:
        return "flwr.supercore.constant.PULL_INITIAL_BACKOFF changed"
    for name in _FUNCTIONS:
        function = getattr(inflatable_utils, name, None)
        defaults = getattr(function, "__kwdefaults__", None)
        if not defaults or "initial_backoff" not in defaults:
            return f"inflatable_utils.{name} has no keyword default initial_backoff"
    return None


def shorten_pull_backoff(initial_s: float = DEFAULT_INITIAL_BACKOFF_S) -> bool:
    """Make Flower's first object-pull retry wait ``initial_s``; True if applied."""
    from flwr.supercore.inflatable import inflatable_utils

    if problem := pull_backoff_problem():
        log.warning("object pulls keep Flower's 1 s first retry: %s", problem)
        return False
    for name in _FUNCTIONS:
        getattr(inflatable_utils, name).__kwdefaults__["initial_backoff"] = initial_s
    return True
