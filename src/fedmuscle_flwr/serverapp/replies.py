"""The reply desk: where the replies of a phase arrive at the server.

Every reply is decoded against what was sent to its node (size limits first, then
the protocol's schema: :func:`fedmuscle_flwr.wire.protocol.decode_reply_checked`),
its client name is bound to the node
(:class:`~fedmuscle_flwr.serverapp.names.NameBook`), and only then is it recorded.
A reply that fails any of this is logged and counted as one incident
(:class:`~fedmuscle_flwr.serverapp.incidents.Incidents`) and dropped; nothing a
client sends can end the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from flwr.app import ArrayRecord, Message

from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import Algorithm
from fedmuscle_flwr.runs.metrics import RunRecorder
from fedmuscle_flwr.serverapp.calls import PhaseCall
from fedmuscle_flwr.serverapp.incidents import Incidents
from fedmuscle_flwr.serverapp.names import NameBook
from fedmuscle_flwr.wire import protocol as p
from fedmuscle_flwr.wire.codec import ProtocolError, record_nbytes, record_of

log = logging.getLogger(__name__)

#: what a client's error text may put into the server's log and metrics
MAX_CLIENT_TEXT = 200


class ReplyDesk:
    """Decodes, validates, binds and records the replies of a run's phases.

    Parameters
    ----------
    run : RunConfig
        The run (limits, B, d, the algorithm's reply schema).
    recorder : RunRecorder
        Where each valid reply's metrics row goes.
    incidents : Incidents
        Where failed, rejected and missing replies are counted.
    book : NameBook
        The run's name bindings (name -> node and key): the one name book.
    algorithm : Algorithm, optional
        The run's algorithm instance (whose payloads the replies must match);
        by default one is made from ``run``.
    """

    def __init__(
        self,
        run: RunConfig,
        recorder: RunRecorder,
        incidents: Incidents,
        book: NameBook,
        algorithm: Algorithm | None = None,
    ) -> None:
        self.run = run
        self.recorder = recorder
        self.incidents = incidents
        self.book = book
        self.algorithm = algorithm or get_algorithm(run.algorithm)
        self.identity: dict[int, Mapping[str, str]] = {}  # node -> last identity
        self._introduced: set[str] = set()  # clients whose model was logged

    @property
    def names(self) -> dict[int, str]:
        """Node -> bound client name (a view of the name book)."""
        return self.book.names()

    def restore(self, bindings: Mapping[str, Mapping[str, object]]) -> None:
        """Name bindings of the run so far (a resumed run: from the checkpoint)."""
        self.book.load(bindings)

    def take(self, replies: Iterable[Message], call: PhaseCall) -> dict[int, p.Reply]:
        """Decode and validate replies; bad ones are logged, counted and dropped."""
        server_round, phase = call.server_round, call.phase
        good: dict[int, p.Reply] = {}
        answered: set[int] = set()
        for msg in replies:  # may stream in while the phase is still pushed
            node = call.destination(msg.metadata.reply_to_message_id)
            node = msg.metadata.src_node_id if node is None else node
            answered.add(node)
            if msg.has_error():
                text = str(msg.error.reason)[:MAX_CLIENT_TEXT]
                reason = f"error {msg.error.code}: {text}"
                self.incidents.failed(phase, node, self.names, reason)
                continue
            name = self.names.get(node, "?")
            who = f"round {server_round} {phase} node {node} ({name})"
            try:
                refusal = p.decode_refusal(msg.content, who)
                if refusal is not None:
                    self.incidents.refused(phase, node, self.names, refusal)
                    continue
                reply = self._decode(msg, node, who, call)
            except ProtocolError as exc:
                self.incidents.rejected(phase, node, self.names, str(exc))
                continue
            except Exception as exc:  # a decoder bug must never end the run
                text = str(exc)[:MAX_CLIENT_TEXT]  # never more of what the client sent
                reason = f"{who}: undecodable reply ({type(exc).__name__}: {text})"
                self.incidents.rejected(phase, node, self.names, reason)
                continue
            good[node] = reply
            self.identity[node] = reply.identity
            self._introduce(self.names.get(node, str(node)), reply.identity)
        self.incidents.timed_out(phase, set(call.asked) - answered, self.names)
        return good

    def record(
        self,
        server_round: int,
        good: Mapping[int, p.Reply],
        identity: bool = False,
        **extra: object,
    ) -> None:
        """One metrics row per client reply (with its identity, for evaluations).

        The phase's rows are appended in one write.
        """
        names, rows = self.names, []
        for node, reply in good.items():
            who = dict(reply.identity) if identity else {}
            rows.append((names[node], {**reply.metrics, **who, **extra}))  # server wins
        self.recorder.record_rows(server_round, rows)

    def by_name(self, nodes: Iterable[int]) -> list[int]:
        """``nodes`` ordered by client name (then id): the same in every engine."""
        return sorted(nodes, key=lambda n: (self.names.get(n, ""), n))

    def _decode(self, msg: Message, node: int, who: str, call: PhaseCall) -> p.Reply:
        """Size limit before decoding, then the protocol, then the name binding."""
        reply = p.decode_reply_checked(
            msg.content,
            self.run,
            call.asked_of(node),
            where=who,
            phase=call.phase,
            algorithm=self.algorithm,
        )
        name = reply.identity[p.CLIENT_NAME]
        try:
            self.book.claim(node, name, connected=call.nodes)
        except ProtocolError as exc:
            raise ProtocolError(f"{who}: {exc}") from None
        for key in (p.REPS, p.WEIGHTS):
            if (record := record_of(msg.content, key, ArrayRecord)) is not None:
                call.bytes_up += record_nbytes(record)
        return reply

    def _introduce(self, name: str, identity: Mapping[str, str]) -> None:
        """Name a client's model and task once per run, at its first reply."""
        if name in self._introduced:
            return
        self._introduced.add(name)
        log.info(
            "client %s: model %s, task %s (%s)",
            name,
            identity.get(p.MODEL_NAME, "?"),
            identity.get(p.TASK_KIND, "?"),
            identity.get(p.METRIC_NAME, "?"),
        )
