"""The in-process engine: the same ServerApp logic and ClientApp, one Python process.

Flower's simulation engine needs Ray; on a GPU host without Ray, in a debugger, or
for quick sweeps, ``fedmuscle run --engine inprocess`` runs the real
:class:`~fedmuscle_flwr.serverapp.strategy.FedMuscle` strategy and the real ClientApp
handlers over real :class:`flwr.app.Message` objects, delivered synchronously by
:class:`InProcessGrid` (clients take turns; no network, no Ray actors). Results are
the same files as a simulation's; with the same seeds, the same numbers.

PRIVATE FLOWER API (pinned ``flwr==1.39.0``): a ``Message`` built outside a
Flower runtime needs ``TaskIdentity`` set, and the grid fills
``metadata._message_id`` / ``_src_node_id`` as the SuperLink would. The strategy
tests (through ``tests/loopback.py``) fail first if a Flower upgrade changes this.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from uuid import uuid4

from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fedmuscle_flwr.clientapp.app import app as client_app
from fedmuscle_flwr.clientapp.app import keep_warm
from fedmuscle_flwr.config.files import load_roster
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.serverapp.app import name_run, serve

log = logging.getLogger(__name__)

Handler = Callable[[Message, Context], Message]


def _set_task_identity() -> None:
    if TaskIdentity._task_id is None:  # private: the property raises when unset
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1


class InProcessGrid(Grid):
    """Each pushed message is handled at once by ``handler`` for its node.

    ``down`` holds node ids that never answer (to exercise timeouts). The
    replies exist when ``push_messages`` returns (``answers_on_push``): the
    round loop pulls them after each chunk it pushes
    (:func:`fedmuscle_flwr.serverapp.rounds.stream_replies`).
    """

    answers_on_push = True

    def __init__(
        self,
        handler: Handler,
        num_nodes: int,
        *,
        run_config: dict[str, str] | None = None,
        first_id: int | None = None,
        run_id: int = 1,
    ) -> None:
        _set_task_identity()
        if first_id is None:  # random like Flower's, so client states never collide
            first_id = 1 + secrets.randbelow(2**62)
        self.handler = handler
        self.contexts = {
            nid: Context(
                run_id=run_id,
                node_id=nid,
                node_config={"partition-id": i, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for i, nid in enumerate(range(first_id, first_id + num_nodes))
        }
        self.replies: dict[str, Message] = {}
        self.down: set[int] = set()

    def set_run(self, run_id: int) -> None:  # type: ignore[override]
        """No runs to select: there is one."""

    @property
    def run(self) -> Run:  # pragma: no cover - Grid API
        """Not backed by a SuperLink run."""
        raise RuntimeError("the in-process grid has no Flower run")

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """A message for ``dst_node_id``."""
        return Message(content, dst_node_id=dst_node_id, message_type=message_type)

    def get_node_ids(self) -> Iterable[int]:
        """All nodes (the ones in ``down`` too: they are connected but silent)."""
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Deliver each message now; keep the replies for :meth:`pull_messages`."""
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid4().hex
            ids.append(msg.metadata.message_id)
            nid = msg.metadata.dst_node_id
            if nid in self.down:
                continue
            reply = self.handler(msg, self.contexts[nid])
            reply.metadata.__dict__["_src_node_id"] = nid
            self.replies[msg.metadata.message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """The replies to ``message_ids`` that exist (each returned once)."""
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push, then pull at once: every live node has answered already."""
        return list(self.pull_messages(self.push_messages(messages)))


def run_inprocess(run: RunConfig) -> Path:
    """Run ``run`` with one in-process node per roster entry; return its folder."""
    run = name_run(run)
    num_clients = len(load_roster(run.federation.roster))
    run = run.model_copy(
        update={
            "federation": run.federation.model_copy(update={"min_clients": num_clients})
        }
    )
    log.info("running %s in-process with %d clients", run.algorithm, num_clients)
    # per-step sync sends every client a message per step: keep each client's
    # runtime (model, optimiser) across them instead of building it T times a
    # round (the same results: tests/unit/clientapp/test_runtime_cache.py). Not
    # under per-round sync, where
    # it saved nothing measurable and would hold every client's model at once.
    warm = run.muscle.sync == "per-step"
    if warm:
        keep_warm(num_clients)
    try:
        return serve(InProcessGrid(client_app, num_clients), run)
    finally:
        if warm:
            keep_warm(None)


__all__ = ["InProcessGrid", "run_inprocess"]
