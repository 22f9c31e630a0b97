"""The server's progress lines: ``round k/R``, elapsed time and what is left.

Free of Flower: the round loop calls :meth:`RoundClock.line` after each round.
The estimate is the mean of the finished rounds (round 0, the initial
evaluation, pays the clients' start and is left out once a real round exists)
times the rounds left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def fmt_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class RoundClock:
    """Elapsed time and the estimate of what is left, over ``num_rounds`` rounds."""

    num_rounds: int
    started: float = field(default_factory=lambda: time.monotonic())
    _rounds: dict[int, float] = field(default_factory=dict)

    def done(self, server_round: int, seconds: float) -> str:
        """Record a finished round; the line to log."""
        self._rounds[server_round] = seconds
        elapsed = time.monotonic() - self.started
        left = self.num_rounds - server_round
        real = [s for r, s in self._rounds.items() if r >= 1] or list(
            self._rounds.values()
        )
        eta = sum(real) / len(real) * left
        tail = f", about {fmt_seconds(eta)} left" if left > 0 else ", run complete"
        head = f"round {server_round}/{self.num_rounds}"
        return f"{head}: elapsed {fmt_seconds(elapsed)}{tail}"
