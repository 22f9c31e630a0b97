"""``python -m fedmuscle_flwr.launch.deploy.supernode_main [OPTIONS] -- ARGS``.

Flower 1.39's own ``flower-supernode`` (same ARGS, same code) with its log lines
plain (timestamps, no colour codes) and two adjustments of
:mod:`fedmuscle_flwr.wire.flower_compat` applied first (each can be switched off
with ``FEDMUSCLE_FLOWER_ADJUSTMENTS_OFF``; measurements in docs/performance.md §7c):

* ``supernode-waits``: the loop's idle sleep after an empty pull (Flower: 3 s)
  becomes ``--idle-s`` (default 0.2), its wait for the ClientApp's reply
  (Flower: 0.5 s) ``--reply-s`` (default 0.05);
* ``pull-backoff``: the first retry when a message's object is not yet at the
  SuperLink (Flower: 1 s) becomes ``--pull-backoff-s`` (default 0.05).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fedmuscle_flwr.launch.deploy.processes import split_launcher_argv
from fedmuscle_flwr.wire.flower_compat import (
    DEFAULT_IDLE_S,
    DEFAULT_INITIAL_BACKOFF_S,
    DEFAULT_REPLY_S,
    shorten_pull_backoff,
    shorten_supernode_waits,
)


def plain_logs() -> None:
    """Flower's console lines with timestamps and without colour codes."""
    from flwr.supercore.logger import update_console_handler

    update_console_handler(level=logging.INFO, timestamps=True, colored=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse our options, adjust, then run Flower's ``flower-supernode``."""
    ours, flower = split_launcher_argv(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fedmuscle_flwr.launch.deploy.supernode_main")
    parser.add_argument("--idle-s", type=float, default=DEFAULT_IDLE_S)
    parser.add_argument("--reply-s", type=float, default=DEFAULT_REPLY_S)
    parser.add_argument(
        "--pull-backoff-s", type=float, default=DEFAULT_INITIAL_BACKOFF_S
    )
    args = parser.parse_args(ours)
    plain_logs()
    shorten_supernode_waits(args.idle_s, args.reply_s)
    shorten_pull_backoff(args.pull_backoff_s)
    from flwr.supernode.cli import flower_supernode

    sys.argv = ["flower-supernode", *flower]
    flower_supernode()


if __name__ == "__main__":
    main()
