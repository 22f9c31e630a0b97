"""The client policy, enforced: may an instruction be computed at all (no Flower).

:func:`check` is a pure function of (phase, the server's run config, the
instruction's arrays, the algorithm's upload kind, the client's
:class:`~fedmuscle_flwr.config.policy.ClientPolicy`): ``None`` when the
instruction may run, else a :class:`Refusal` naming the rule it breaks. The
ClientApp calls it before it loads data or builds a model; a refusal becomes
the one reply of that instruction (``wire``) and a log line on both sides.

:func:`with_floor` is the privacy floor: the run config the client computes
with, never weaker than the policy's (the server may ask for more privacy, not
less). :func:`check_reply_bytes` guards what was computed (logits or weights,
whose width the instruction does not show) before it leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.config.run import PrivacyConfig, RunConfig
from fedmuscle_flwr.wire.messages import (
    ENCODE_INDICES,
    PARTNERS,
    PROBE_INDICES,
    STEP_INDICES,
)
from fedmuscle_flwr.wire.refusal import Refusal

#: bytes per uploaded value on the wire, per ``muscle.precision``
_BYTES = {"fp16": 2, "fp32": 4, "int8": 1}
#: the per-row fp32 scale an int8 upload adds
_ROW_SCALE_BYTES = 4
MIB = 2**20


def check(
    phase: str,
    run: RunConfig,
    arrays: Mapping[str, np.ndarray],
    space: str,
    policy: ClientPolicy,
) -> Refusal | None:
    """The first rule the instruction breaks, or ``None`` (it may run).

    Parameters
    ----------
    phase : str
        ``train``, ``align`` or ``evaluate``.
    run : RunConfig
        The server's run config as the instruction carries it.
    arrays : Mapping[str, np.ndarray]
        The instruction's index and relay arrays (already schema-checked).
    space : str
        What the run's algorithm uploads: representation, logits or weights.
    policy : ClientPolicy
        This client's policy.
    """
    ask = _Ask(phase, run, arrays, space, policy)
    for rule in (_what, _public, _privacy, _caps, _reply_bytes):
        refusal = rule(ask)
        if refusal is not None:
            return refusal
    return None


@dataclass(frozen=True)
class _Ask:
    """One instruction as the rules see it."""

    phase: str
    run: RunConfig
    arrays: Mapping[str, np.ndarray]
    space: str
    policy: ClientPolicy


def _what(ask: _Ask) -> Refusal | None:
    run, policy = ask.run, ask.policy
    listed = _listed("algorithms", "algorithm", run.algorithm, policy.algorithms)
    if listed is not None:
        return listed
    if ask.space not in policy.uploads:
        return Refusal(
            "policy.uploads",
            f"algorithm {run.algorithm!r} uploads {ask.space}; this client uploads "
            f"only {', '.join(policy.uploads)}",
        )
    return None


def _listed(
    key: str, what: str, value: str, allowed: tuple[str, ...]
) -> Refusal | None:
    """Refuse ``value`` unless ``allowed`` is empty (any) or lists it."""
    if not allowed or value in allowed:
        return None
    return Refusal(
        f"policy.{key}",
        f"{what} {value!r} is not accepted (accepted: {', '.join(allowed)})",
    )


def _public(ask: _Ask) -> Refusal | None:
    public = ask.run.public.dataset
    return _listed("public-sets", "public set", public, ask.policy.public_sets)


def _privacy(ask: _Ask) -> Refusal | None:
    run, policy = ask.run, ask.policy
    if policy.privacy.min_noise > 0 and ask.space != "representation":
        return Refusal(
            "policy.privacy.min-noise",
            f"this client adds noise σ>={policy.privacy.min_noise:g} to every "
            f"upload; algorithm {run.algorithm!r} uploads {ask.space}, which "
            "takes none",
        )
    return None


def _caps(ask: _Ask) -> Refusal | None:
    run, policy = ask.run, ask.policy
    caps, muscle, arrays = policy.caps, run.muscle, ask.arrays
    asked = [
        ("dim", "muscle.dim", muscle.dim, caps.dim),
        ("steps", "muscle.steps", muscle.steps, caps.steps),
        ("batch-size", "muscle.batch-size", muscle.batch_size, caps.batch_size),
        ("partners", "muscle.partners", muscle.partners, caps.partners),
        ("epochs", "train.epochs", run.train.epochs, caps.epochs),
        ("probe-size", "eval.probe-size", run.eval.probe_size, caps.probe_size),
    ]
    for key, indices, cap in (
        ("encode-batches", ENCODE_INDICES, caps.encode_batches),
        ("steps", STEP_INDICES, caps.steps),
        ("partners", PARTNERS, caps.partners),
    ):
        if indices in arrays and arrays[indices].ndim >= 2:
            axis = 1 if indices == PARTNERS else 0  # partners: (S, M, B, D)
            asked.append((key, indices, int(arrays[indices].shape[axis]), cap))
    for key, indices, cap in (
        ("batch-size", ENCODE_INDICES, caps.batch_size),
        ("batch-size", STEP_INDICES, caps.batch_size),
    ):
        if indices in arrays and arrays[indices].ndim == 2:
            asked.append((key, f"{indices} rows", int(arrays[indices].shape[1]), cap))
    if PROBE_INDICES in arrays:
        probe = int(np.asarray(arrays[PROBE_INDICES]).size)
        asked.append(("probe-size", PROBE_INDICES, probe, caps.probe_size))
    for key, what, value, cap in asked:
        if value > cap:
            return Refusal(
                f"policy.caps.{key}", f"{what}={value} exceeds this client's cap {cap}"
            )
    return None


def upload_rows(phase: str, arrays: Mapping[str, np.ndarray]) -> int:
    """Rows the reply will upload: K×B encoded (train, align) or P (evaluate)."""
    if phase == "evaluate":
        return int(np.asarray(arrays.get(PROBE_INDICES, np.zeros(0))).size)
    encode = arrays.get(ENCODE_INDICES)
    return 0 if encode is None else int(np.asarray(encode).size)


def reply_bytes(rows: int, width: int, precision: str) -> int:
    """Bytes of ``rows`` uploaded rows of ``width`` values at ``precision``."""
    extra = _ROW_SCALE_BYTES if precision == "int8" else 0
    return rows * (width * _BYTES[precision] + extra)


def _reply_bytes(ask: _Ask) -> Refusal | None:
    run, policy = ask.run, ask.policy
    if ask.space != "representation":
        return None  # the width is the model's: checked after (check_reply_bytes)
    rows = upload_rows(ask.phase, ask.arrays)
    return check_reply_bytes(
        reply_bytes(rows, run.muscle.dim, run.muscle.precision), policy
    )


def check_reply_bytes(nbytes: int, policy: ClientPolicy) -> Refusal | None:
    """Refuse a reply whose arrays would exceed ``caps.reply-mb``."""
    cap = policy.caps.reply_mb
    if nbytes > cap * MIB:
        return Refusal(
            "policy.caps.reply-mb",
            f"the reply would carry {nbytes / MIB:.1f} MiB of arrays; this "
            f"client's cap is {cap:g} MiB",
        )
    return None


def with_floor(run: RunConfig, policy: ClientPolicy) -> RunConfig:
    """The run config with the policy's privacy floor applied (or ``run`` itself).

    σ = max(server σ, min-noise), C = min(server C, max-clip).
    """
    floor, asked = policy.privacy, run.privacy
    privacy = PrivacyConfig(
        noise=max(asked.noise, floor.min_noise), clip=min(asked.clip, floor.max_clip)
    )
    if privacy == asked:
        return run
    return run.model_copy(update={"privacy": privacy})
