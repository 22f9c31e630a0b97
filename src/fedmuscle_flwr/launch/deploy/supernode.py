"""``python -m fedmuscle_flwr.launch.deploy.supernode [OPTIONS] -- ARGS``.

Flower 1.39's own ``flower-supernode`` (same ARGS, same code), with two waits of
its main loop made shorter and its log lines plain (timestamps, no colour codes):

* after a pull from the SuperLink that brought no message, the loop sleeps a
  hard-coded 3 s (``time.sleep(3)`` in
  ``flwr/supernode/start_client_internal.py``), so a message waits 1.5 s on
  average before the node even sees it: ``--idle-s`` (default 0.2);
* while the ClientApp works, the loop checks for its reply every 0.5 s
  (``time.sleep(0.5)``, twice in that file): ``--reply-s`` (default 0.05);
* when a message's object is not yet at the SuperLink, its pull waits 1 s
  before the retry (:mod:`fedmuscle_flwr.wire.pull_backoff`):
  ``--pull-backoff-s`` (default 0.05).

Neither is configurable in 1.39. The adjustment is narrow: only that module's
``time`` name is replaced by a clock whose ``sleep`` maps exactly these two
durations, and only when the Flower version and those source lines are the ones
this was written against (:func:`patch_waits` checks; otherwise Flower runs
unchanged, with a warning). ``tests/unit/launch/deploy/test_supernode.py`` fails when
the Flower code it relies on changes. docs/performance.md §7c has the
measurements.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import time
import types
from collections.abc import Sequence

from fedmuscle_flwr.launch.deploy.processes import split_launcher_argv
from fedmuscle_flwr.wire.pull_backoff import (
    DEFAULT_INITIAL_BACKOFF_S,
    shorten_pull_backoff,
)

log = logging.getLogger(__name__)

#: the Flower release whose SuperNode loop this adjusts
FLWR_VERSION = "1.39.0"
#: Flower's idle sleep and reply wait in that release, and how often each occurs
FLOWER_IDLE_S, FLOWER_REPLY_S = 3, 0.5
_EXPECTED = {"time.sleep(3)": 1, "time.sleep(0.5)": 2}
DEFAULT_IDLE_S, DEFAULT_REPLY_S = 0.2, 0.05


class _Clock(types.ModuleType):
    """``time`` for one module, with Flower's two waits replaced."""

    def __init__(self, idle_s: float, reply_s: float) -> None:
        super().__init__("time")
        self._map = {float(FLOWER_IDLE_S): idle_s, float(FLOWER_REPLY_S): reply_s}

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        """Sleep, mapping Flower's two loop waits to ours."""
        time.sleep(self._map.get(float(seconds), seconds))


def patch_problem() -> str | None:
    """Why :func:`patch_waits` would not apply here (None: it applies)."""
    import flwr
    from flwr.supernode import start_client_internal as loop

    if flwr.__version__ != FLWR_VERSION:
        return f"Flower {flwr.__version__} is not {FLWR_VERSION}"
    if getattr(loop, "time", None) is not time:
        return "start_client_internal no longer imports time as a module"
    source = inspect.getsource(loop)
    for line, count in _EXPECTED.items():
        if source.count(line) != count:
            return f"start_client_internal has {source.count(line)}x {line!r}"
    return None


def patch_waits(idle_s: float, reply_s: float) -> bool:
    """Shorten the SuperNode loop's idle sleep and reply wait; True if applied."""
    from flwr.supernode import start_client_internal as loop

    if problem := patch_problem():
        log.warning("SuperNode waits left as Flower's: %s", problem)
        return False
    setattr(loop, "time", _Clock(idle_s, reply_s))  # noqa: B010 (module global)
    return True


def plain_logs() -> None:
    """Flower's console lines with timestamps and without colour codes."""
    from flwr.supercore.logger import update_console_handler

    update_console_handler(level=logging.INFO, timestamps=True, colored=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse our two options, adjust, then run Flower's ``flower-supernode``."""
    ours, flower = split_launcher_argv(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fedmuscle_flwr.launch.deploy.supernode")
    parser.add_argument("--idle-s", type=float, default=DEFAULT_IDLE_S)
    parser.add_argument("--reply-s", type=float, default=DEFAULT_REPLY_S)
    parser.add_argument(
        "--pull-backoff-s", type=float, default=DEFAULT_INITIAL_BACKOFF_S
    )
    args = parser.parse_args(ours)
    plain_logs()
    patch_waits(args.idle_s, args.reply_s)
    shorten_pull_backoff(args.pull_backoff_s)
    from flwr.supernode.cli import flower_supernode

    sys.argv = ["flower-supernode", *flower]
    flower_supernode()


if __name__ == "__main__":
    main()
