"""The client policy around one message: before, while and after it runs (no Flower).

``clientapp/runner`` calls these in this order; the first refusal ends the
message (its one reply is the refusal; nothing computed leaves):

1. :func:`admit`: the instruction against the policy (``clientapp/policy.py``),
   before any data is read or model built; the run config the client computes
   with gets the policy's privacy floor;
2. :func:`admit_public` (``clientapp/disjoint.py``): the public set against
   the client's private data and the policy's fingerprint pin, once the data
   are loaded (cached: once per run);
3. :func:`admit_state`: before the first state of a new run is saved, old
   runs' state is pruned (keep the last K, at most N MiB);
4. :func:`admit_reply`: what was computed, before it leaves (the reply cap,
   for uploads whose width the instruction does not show).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from fedmuscle_flwr.clientapp.disjoint import check_disjoint, check_pin
from fedmuscle_flwr.clientapp.policy import MIB, check, check_reply_bytes, with_floor
from fedmuscle_flwr.clientapp.retention import prune, state_bytes
from fedmuscle_flwr.clientapp.runtime import ClientRuntime
from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.run import PrivacyConfig
from fedmuscle_flwr.wire.messages import Instruction, Reply
from fedmuscle_flwr.wire.refusal import Refusal

log = logging.getLogger(__name__)

#: (asked, applied) privacy pairs already logged by this process
_told: set[tuple[PrivacyConfig, PrivacyConfig]] = set()
#: bytes per value of an upload at each wire precision
_WIRE_BYTES = {"fp16": 2, "fp32": 4, "int8": 1}


def admit(
    phase: str, ins: Instruction, policy: ClientPolicy, own_public: bool = False
) -> tuple[Instruction, Refusal | None]:
    """The instruction with the privacy floor applied, and the first rule it breaks.

    ``own_public``: the client's profile names its own copy of the public set
    (then the run config's ``public.options``, paths on the server's side, are
    never read here).
    """
    space = upload_space(ins.algorithm.space, phase)
    refusal = check(phase, ins.run, ins.arrays, space, policy)
    if refusal is None and not own_public:
        refusal = server_paths(ins, policy)
    floored = with_floor(ins.run, policy)
    if floored is not ins.run:
        asked, used = ins.run.privacy, floored.privacy
        if (asked, used) not in _told:  # once per (asked, used) and process
            _told.add((asked, used))
            log.info(
                "privacy: the server asked noise=%g clip=%g; this client's floor "
                "applies: noise=%g clip=%g",
                asked.noise,
                asked.clip,
                used.noise,
                used.clip,
            )
        ins = replace(ins, run=floored)
    return ins, refusal


def server_paths(ins: Instruction, policy: ClientPolicy) -> Refusal | None:
    """Refuse a public set read from files the server's run config names.

    ``public.options`` (a folder, a file) is a path on the client's disk chosen
    by the server: another study's images, the private set under another name.
    A client reads a public set from files only where its own profile says
    (``[public]``), unless its policy has ``server-paths = true``.
    """
    if not ins.run.public.options or policy.server_paths:
        return None
    keys = ", ".join(sorted(ins.run.public.options))[:80]
    return Refusal(
        "policy.server-paths",
        f"the run config names files for public set {ins.run.public.dataset!r} "
        f"(public.options: {keys}); this client reads a public set from files only "
        "where its own profile says ([public])",
    )


def admit_public(runtime: ClientRuntime, policy: ClientPolicy) -> Refusal | None:
    """The loaded public set against the pin and the private data (cached)."""
    pinned = check_pin(runtime.public, policy)
    if pinned is not None:
        return pinned
    private_key = f"{runtime.profile.data.model_dump_json()}|seed={runtime.run.seed}"
    return check_disjoint(runtime.public, runtime.data, private_key, policy)


def upload_space(space: str, phase: str) -> str:
    """What a reply of ``phase`` uploads under an algorithm uploading ``space``.

    Evaluation replies carry probe representations whatever the algorithm; a
    weight-sharing algorithm uploads its model after training only (the wire's
    reply schema, ``wire/protocol.py: reply_layout``, says the same).
    """
    if phase == "evaluate" or (space == "weights" and phase != "train"):
        return "representation"
    return space


def admit_state(root: Path, folder: str, policy: ClientPolicy) -> Refusal | None:
    """Before a new run's first save: prune old runs; refuse if still over the cap.

    ``folder`` is the new run's state folder name under ``root``.
    """
    caps = policy.caps
    budget = caps.state_mb * MIB
    exists = (root / folder).is_dir()  # then it counts among the kept runs
    prune(root, caps.keep_runs - (0 if exists else 1), budget, current=folder)
    used = state_bytes(root)
    if used > budget:
        return Refusal(
            "policy.caps.state-mb",
            f"this client's saved state already takes {used / MIB:.0f} MiB of its "
            f"{caps.state_mb:g} MiB",
        )
    return None


def reply_nbytes(reply: Reply, precision: str) -> int:
    """Bytes of the arrays a reply carries on the wire."""
    total = 0
    if reply.z is not None:
        total += int(np.asarray(reply.z).size) * _WIRE_BYTES[precision]
    if reply.indices is not None:
        total += int(np.asarray(reply.indices).nbytes)
    for value in (reply.weights or {}).values():
        total += int(np.asarray(value).size) * 4
    return total


def admit_reply(reply: Reply, precision: str, policy: ClientPolicy) -> Refusal | None:
    """Refuse to send a reply over the policy's ``caps.reply-mb``."""
    return check_reply_bytes(reply_nbytes(reply, precision), policy)
