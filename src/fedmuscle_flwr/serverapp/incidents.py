"""What went wrong in a round, logged once and counted (no Flower).

Four kinds of incident, each logged with the round, the phase, the node id and
(when known) the client's name, recorded as a row of ``metrics.jsonl`` for that
client, and counted:

``rejected``
    a reply that failed validation (protocol, size, duplicate name);
``failed``
    an error reply (the ClientApp raised or crashed, the node is unavailable),
    or a refusal: the client's policy does not allow what it was asked (its row
    carries ``refused``: the rule and the client's reason);
``timed-out``
    no reply before ``federation.phase-timeout-s``;
``quarantined``
    a client the poisoning screen (:mod:`fedmuscle_flwr.method.robust`) flagged; it is
    excluded from partners for the rest of the round.

Counts are kept per round (:meth:`Incidents.round_summary`, the checkpoint's
history) and per *window*, i.e. since the last server row of ``metrics.jsonl``
(:meth:`Incidents.take_window`): with ``eval.every = 1`` that is the round.
A failed or timed-out node is skipped for the rest of its round.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fedmuscle_flwr.method.robust import Finding
from fedmuscle_flwr.runs.metrics import RunRecorder
from fedmuscle_flwr.wire.refusal import Refusal

log = logging.getLogger(__name__)

KINDS = ("rejected", "failed", "timed-out", "quarantined")


def label(node: int, names: Mapping[int, str]) -> str:
    """``name`` when the client introduced itself, else ``node-<id>``."""
    return names.get(node, f"node-{node}")


@dataclass
class Incidents:
    """Incident counts and the per-round sets the strategy consults."""

    recorder: RunRecorder
    server_round: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    window: Counter[str] = field(default_factory=Counter)
    quarantined: set[int] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)

    def begin(self, server_round: int) -> None:
        """A new round: nobody is dropped or quarantined yet."""
        self.server_round = server_round
        self.counts = Counter()
        self.quarantined, self.dropped = set(), set()

    def _add(
        self, kind: str, node: int, names: Mapping[int, str], row: dict[str, object]
    ) -> None:
        self.counts[kind] += 1
        self.window[kind] += 1
        self.recorder.record(self.server_round, label(node, names), node=node, **row)

    def rejected(
        self, phase: str, node: int, names: Mapping[int, str], reason: str
    ) -> None:
        """A reply failed validation; ``reason`` names the message and the check."""
        log.warning("rejected: %s", reason)
        self._add("rejected", node, names, {"phase": phase, "rejected": reason})

    def failed(
        self, phase: str, node: int, names: Mapping[int, str], reason: str
    ) -> None:
        """An error reply (ClientApp exception or crash, node unavailable)."""
        log.warning(
            "round %d %s node %d (%s) failed: %s",
            self.server_round,
            phase,
            node,
            names.get(node, "?"),
            reason,
        )
        self.dropped.add(node)
        self._add("failed", node, names, {"phase": phase, "failed": reason})

    def refused(
        self, phase: str, node: int, names: Mapping[int, str], refusal: Refusal
    ) -> None:
        """The client refused the instruction: its policy's rule and reason.

        Counted with the failed replies (the node is dropped for the round: it
        would refuse the round's next phase too), its own row and log line.
        """
        log.warning(
            "round %d %s node %d (%s) refused: %s: %s",
            self.server_round,
            phase,
            node,
            names.get(node, "?"),
            refusal.rule,
            refusal.reason,
        )
        self.dropped.add(node)
        text = f"{refusal.rule}: {refusal.reason}"
        self._add("failed", node, names, {"phase": phase, "refused": text})

    def timed_out(
        self, phase: str, nodes: Iterable[int], names: Mapping[int, str]
    ) -> None:
        """No reply from ``nodes`` before the phase timeout."""
        for node in sorted(nodes):
            log.warning(
                "round %d %s node %d (%s): no reply (timed out)",
                self.server_round,
                phase,
                node,
                names.get(node, "?"),
            )
            self.dropped.add(node)
            self._add("timed-out", node, names, {"phase": phase, "timed-out": True})

    def quarantine(
        self, phase: str, findings: Iterable[Finding], names: Mapping[int, str]
    ) -> list[int]:
        """Exclude flagged clients from partners for the round; return new ones."""
        new = []
        for finding in findings:
            who = label(finding.node, names)
            log.warning(
                "round %d %s: excluding node %d (%s) from partners: %s: %s",
                self.server_round,
                phase,
                finding.node,
                names.get(finding.node, "?"),
                finding.detector,
                finding.describe(),
            )
            self.recorder.record(
                self.server_round,
                who,
                phase=phase,
                node=finding.node,
                suspect=finding.detector,
                score=finding.score,
                reference=finding.reference,
                z=finding.z,
            )
            if finding.node not in self.quarantined:
                self.quarantined.add(finding.node)
                self.counts["quarantined"] += 1
                self.window["quarantined"] += 1
                new.append(finding.node)
        return new

    def round_summary(self) -> dict[str, float]:
        """Counts of the current round, every kind present."""
        return {kind: float(self.counts[kind]) for kind in KINDS}

    def take_window(self) -> dict[str, float]:
        """Counts since the last call (the last server row), then reset."""
        out = {kind: float(self.window[kind]) for kind in KINDS}
        self.window = Counter()
        return out
