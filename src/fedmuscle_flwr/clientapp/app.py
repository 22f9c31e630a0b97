"""Flower ClientApp: glue between Flower messages and the client runtime.

Node config (``flower-supernode --node-config``): ``profile`` (a profile name or
TOML path; simulation uses the roster's ``partition-id`` entry instead),
``state-dir`` (where this client's model and optimiser states persist), and any
dotted profile override such as ``data.max-train=500``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedmuscle_flwr.clientapp.runtime import run_phase
from fedmuscle_flwr.clientapp.state import default_state_dir, open_store
from fedmuscle_flwr.config.files import resolve_profile
from fedmuscle_flwr.runs.logs import ensure_console_logging
from fedmuscle_flwr.wire.protocol import decode_instruction, encode_reply

log = logging.getLogger(__name__)
app = ClientApp()


def _handle(phase: str, msg: Message, context: Context) -> Message:
    ensure_console_logging()
    ins = decode_instruction(msg.content, msg.metadata.message_type)
    profile = resolve_profile(context.node_config, ins.run.federation.roster)
    state_dir = context.node_config.get("state-dir")
    store = open_store(Path(str(state_dir)) if state_dir else default_state_dir())
    run_key = ins.run.run_name or str(context.run_id)
    reply = run_phase(phase, ins, profile, store, run_key, context.node_id)
    return Message(encode_reply(reply, ins.run.muscle.precision), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Phase 1: task epochs, then encode the requested public batches."""
    return _handle("train", msg, context)


@app.train("align")
def align(msg: Message, context: Context) -> Message:
    """Phase 2: alignment steps against the partners' representations."""
    return _handle("align", msg, context)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Task metric on the own test split, and the probe representations."""
    return _handle("evaluate", msg, context)
