"""Logging set-up for processes we do not start ourselves.

Flower starts the ServerApp and ClientApp in its own processes (``flwr-serverapp``,
``flwr-clientapp``) where nobody configured logging, so our INFO lines (round, phase,
clients, bytes) would vanish. :func:`ensure_console_logging` gives the package logger
a plain stdout handler there, and does nothing where logging is already configured
(the ``fedmuscle`` CLI, pytest), so no line is printed twice.
"""

from __future__ import annotations

import logging
import os
import sys

PACKAGE_LOGGER = "fedmuscle_flwr"
#: what a client's ClientApp logs after it answered the run's last message (the
#: final round's evaluation); ``fedmuscle client --exit-after-run`` watches for it
RUN_FINISHED_MARK = "fedmuscle: run finished"
PROGRESS_LOGGER = f"{PACKAGE_LOGGER}.progress"  # one line per finished round
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def ensure_console_logging() -> None:
    """Attach a stdout handler to the package logger unless one is configured.

    The level comes from ``FEDMUSCLE_LOG_LEVEL`` (default ``INFO``).
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("FEDMUSCLE_LOG_LEVEL", "INFO").upper())


def quiet_flower_in_worker() -> None:
    """Flower's logger to ``FEDMUSCLE_FLWR_LOG_LEVEL`` when set (in Ray's actors).

    The simulation engine sets it for the ClientApps' actors, whose Flower
    notices ("Manually terminating ClientAppActor") reach the driver's console.
    """
    level = os.environ.get("FEDMUSCLE_FLWR_LOG_LEVEL")
    if level:
        logging.getLogger("flwr").setLevel(level.upper())


__all__ = [
    "PACKAGE_LOGGER",
    "PROGRESS_LOGGER",
    "RUN_FINISHED_MARK",
    "ensure_console_logging",
    "quiet_flower_in_worker",
]
