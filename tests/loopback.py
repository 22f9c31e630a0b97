"""An in-process Flower Grid for tests: no SuperLink, no Ray, real Messages.

PRIVATE FLOWER API (pinned flwr==1.39.0): building an instruction ``Message``
outside a Flower runtime needs ``TaskIdentity`` set, and the grid must fill
``metadata._message_id`` as the SuperLink would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import uuid4

from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1

Handler = Callable[[Message, Context], Message]


class LoopbackGrid(Grid):
    """Each pushed message is handled synchronously by ``handler`` of its node."""

    def __init__(self, handler: Handler, num_nodes: int, run_config=None, first_id=101):
        self.handler = handler
        self.contexts = {
            nid: Context(
                run_id=7,
                node_id=nid,
                node_config={"partition-id": i, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for i, nid in enumerate(range(first_id, first_id + num_nodes))
        }
        self.replies: dict[str, Message] = {}
        self.down: set[int] = set()  # nodes that never answer
        self.pushed: list[Message] = []

    def set_run(self, run_id):  # pragma: no cover - unused
        pass

    @property
    def run(self):  # pragma: no cover - unused
        raise RuntimeError("no run")

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id=dst_node_id, message_type=message_type)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid4().hex
            self.pushed.append(msg)
            ids.append(msg.metadata.message_id)
            nid = msg.metadata.dst_node_id
            if nid in self.down:
                continue
            reply = self.handler(msg, self.contexts[nid])
            reply.metadata.__dict__["_src_node_id"] = nid
            self.replies[msg.metadata.message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

    def send_and_receive(self, messages, *, timeout=None):
        return list(self.pull_messages(self.push_messages(messages)))
