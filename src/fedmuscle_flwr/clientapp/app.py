"""Flower ClientApp: glue between Flower messages and the client runtime.

Node config (``flower-supernode --node-config``): ``profile`` (a profile name or
TOML path; simulation uses the roster's ``partition-id`` entry instead),
``state-dir`` (where this client's model and optimiser states persist), and any
dotted profile override such as ``data.max-train=500``.

After every message the ClientApp leaves a small status record in
``context.state[STATUS]`` (phase, round, a one-line summary, whether the run
finished), which ``fedmuscle client``'s warm executor turns into its progress
lines; the same facts are logged, for a stock SuperNode's output.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from fedmuscle_flwr.clientapp.runner import RuntimeCache, run_phase, state_key
from fedmuscle_flwr.clientapp.sanitize import scrubbed
from fedmuscle_flwr.clientapp.state import default_state_dir, open_store
from fedmuscle_flwr.config.files import resolve_profile
from fedmuscle_flwr.data.fingerprint import PublicSetMismatchError
from fedmuscle_flwr.runs.logs import (
    RUN_FINISHED_MARK,
    ensure_console_logging,
    quiet_flower_in_worker,
)
from fedmuscle_flwr.wire.messages import METRIC_NAME, Instruction, Reply
from fedmuscle_flwr.wire.protocol import (
    decode_instruction,
    encode_refusal,
    encode_reply,
)
from fedmuscle_flwr.wire.refusal import Refusal

log = logging.getLogger(__name__)
app = ClientApp()

#: context.state key of the status record left after every message
STATUS = "fedmuscle-status"
#: context.state key of the run key bound to this Flower run
RUN_KEY = "fedmuscle-run-key"
#: the metric each phase reports in its summary
_SUMMARY = {"train": "task-loss", "align": "align-loss"}
_warm: RuntimeCache | None = None


def keep_warm(size: int | None = 2) -> None:
    """Keep client runtimes in memory across messages in this process (None: stop).

    For a long-lived process serving one client (``fedmuscle client``'s warm
    executor) and for the in-process engine under per-step synchronisation (a
    message per client per step); Flower's per-message ``flwr-clientapp``
    processes and the simulation engine build per message.
    """
    global _warm
    _warm = None if size is None else RuntimeCache(size)


def _handle(phase: str, msg: Message, context: Context) -> Message:
    ensure_console_logging()
    quiet_flower_in_worker()
    try:
        ins = decode_instruction(msg.content, msg.metadata.message_type)
        profile = resolve_profile(context.node_config, ins.run.federation.roster)
        state_dir = context.node_config.get("state-dir")
        store = open_store(Path(str(state_dir)) if state_dir else default_state_dir())
        run_key = ins.run.run_name or str(context.run_id)
        reply = bind_run_key(context, state_key(ins, run_key)) or run_phase(
            phase, ins, profile, store, run_key, context.node_id, _warm
        )
    except PublicSetMismatchError:  # a refusal: the runner logs it once, one line
        raise
    except Exception as exc:  # the server gets the text without local paths
        log.error("%s message failed: %s", phase, exc, exc_info=True)
        raise scrubbed(exc) from None
    if isinstance(reply, Refusal):
        refused = reply.clipped()
        log.warning("round %d %s: %s", ins.server_round, phase, refused.line())
        context.state[STATUS] = ConfigRecord(
            {"phase": phase, "round": ins.server_round, "finished": False,
             "summary": f"refused ({refused.rule})"}
        )  # fmt: skip
        return Message(encode_refusal(refused), reply_to=msg)
    out = Message(encode_reply(reply, ins.run.muscle.precision), reply_to=msg)
    # the last run on these clients ended (fedmuscle server --compare runs several)
    last = ins.run.federation.runs_after == 0
    finished = last and phase == "evaluate" and ins.server_round >= ins.run.num_rounds
    context.state[STATUS] = status_record(phase, ins, reply, finished)
    if finished:
        log.info("%s (%s, round %d)", RUN_FINISHED_MARK, run_key, ins.server_round)
    return out


def bind_run_key(context: Context, key: str) -> Refusal | None:
    """Refuse a second run key within one Flower run (a new state folder each).

    A run's messages all name the same run (``run-name`` and ``checkpoint.uid``);
    a server that renames it per message would make the client start a new
    state per message. The first key of a Flower run is kept in its
    ``context.state``; a resumed run is a new Flower run.
    """
    bound = context.state.config_records.get(RUN_KEY)
    if bound is None:
        context.state[RUN_KEY] = ConfigRecord({"key": key})
        return None
    if str(bound["key"]) == key:
        return None
    return Refusal(
        "policy.run-key",
        f"this run's state is {str(bound['key'])[:60]!r}; the instruction names "
        f"another run, {key[:60]!r}",
    )


def status_record(
    phase: str, ins: Instruction, reply: Reply, finished: bool
) -> ConfigRecord:
    """What this message did, in one line: phase, round and its own metric."""
    return ConfigRecord(
        {
            "phase": phase,
            "round": ins.server_round,
            "summary": summary(phase, reply.metrics, reply.identity),
            "finished": finished,
        }
    )


def summary(
    phase: str, metrics: Mapping[str, float], identity: Mapping[str, str]
) -> str:
    """``accuracy=0.8123`` (evaluate), ``task-loss=0.51`` (train), ..."""
    name = identity.get(METRIC_NAME, "metric") if phase == "evaluate" else ""
    name = name or _SUMMARY.get(phase, "")
    value = metrics.get("metric" if phase == "evaluate" else name)
    return f"{name}={value:.4g}" if value is not None else ""


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
