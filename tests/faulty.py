"""Test-only clients that misbehave, for the fault tests (never used by the library).

``Structured`` answers the FedMuscle protocol without models: client n encodes
public sample i as normalize(X_i W_n + noise) with one latent X per public index,
so honest clients agree on which samples are similar (as real encoders do).
``MALFORM`` breaks a well-formed reply in one way each; ``POISON`` transforms the
representations (still unit rows, so only the robust screen can tell).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import Array, Context, Error, Message, MetricRecord, RecordDict

from fedmuscle_flwr.wire import protocol as p

D0 = 12  # latent dimension of the public samples


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _garbage(content: RecordDict, rng: np.random.Generator) -> None:
    z = content.array_records[p.REPS][p.Z]
    junk = rng.bytes(len(z.data))
    content.array_records[p.REPS][p.Z] = Array(
        dtype=z.dtype, shape=tuple(z.shape), stype=z.stype, data=junk
    )


def _nan(content: RecordDict, rng: np.random.Generator) -> None:
    z = content.array_records[p.REPS][p.Z].numpy().copy()
    z[..., 0] = np.nan
    content.array_records[p.REPS][p.Z] = Array(z)


def _shape(content: RecordDict, rng: np.random.Generator) -> None:
    z = content.array_records[p.REPS][p.Z].numpy()
    content.array_records[p.REPS][p.Z] = Array(z[..., :-1].copy())  # d - 1


def _oversize(content: RecordDict, rng: np.random.Generator) -> None:
    blob = np.zeros(4 << 20, np.uint8)  # 4 MiB extra array
    content.array_records[p.REPS]["padding"] = Array(blob)


def _indices(content: RecordDict, rng: np.random.Generator) -> None:
    idx = content.array_records[p.REPS][p.INDICES].numpy()
    content.array_records[p.REPS][p.INDICES] = Array(idx[..., ::-1].copy())


def _list_metric(content: RecordDict, rng: np.random.Generator) -> None:
    content[p.METRICS] = MetricRecord({"task-loss": [1.0, 2.0], "num-examples": 1})


def _missing(content: RecordDict, rng: np.random.Generator) -> None:
    del content.array_records[p.REPS][p.Z]


#: what an honest scripted client reports, per message kind
PHASE_METRICS = {
    p.TRAIN: {"task-loss": 1.0},
    p.ALIGN: {"align-loss": 2.0},
    p.EVALUATE: {"metric": 0.5, "accuracy": 0.5},
}

MALFORM: dict[str, Callable[[RecordDict, np.random.Generator], None]] = {
    "garbage": _garbage,
    "nan": _nan,
    "shape": _shape,
    "oversize": _oversize,
    "indices": _indices,
    "list-metric": _list_metric,
    "missing": _missing,
}

POISON: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "random": lambda z, rng: unit(rng.standard_normal(z.shape)),
    "permuted": lambda z, rng: z[..., rng.permutation(z.shape[-2]), :],
    "collapsed": lambda z, rng: np.broadcast_to(z[..., :1, :], z.shape).copy(),
    "negated": lambda z, rng: -z,
    "scaled": lambda z, rng: 3.0 * z,  # not unit rows: the codec refuses them
}


class Structured:
    """Scripted clients with agreeing Gram matrices; some nodes misbehave.

    ``bad`` maps a node *position* (0-based, in node-id order) to a MALFORM or
    POISON name, or to ``"raise"`` (the ClientApp fails) or ``"dup-name"``.
    """

    def __init__(self, bad: dict[int, str] | None = None, public_size: int = 400):
        self.bad = dict(bad or {})
        rng = np.random.default_rng(7)
        self.latent = rng.standard_normal((public_size, D0))
        self.maps: dict[int, np.ndarray] = {}
        self.rng = np.random.default_rng(0)
        self.seen: list[tuple[int, str, p.Instruction]] = []
        self.order: list[int] = []

    def position(self, node: int) -> int:
        if node not in self.order:
            self.order = sorted({*self.order, node})
        return self.order.index(node)

    def register(self, nodes) -> None:
        self.order = sorted(nodes)

    def __call__(self, msg: Message, ctx: Context) -> Message:
        kind = msg.metadata.message_type
        ins = p.decode_instruction(msg.content, kind)
        node = ctx.node_id
        self.seen.append((node, kind, ins))
        mode = self.bad.get(self.position(node), "")
        if mode == "raise":  # what Flower sends back when a ClientApp raises
            error = Error(code=2, reason="RuntimeError: this ClientApp crashed")
            return Message(error, reply_to=msg)
        idx = (
            ins.arrays[p.PROBE_INDICES][None]
            if kind == p.EVALUATE
            else ins.arrays[p.ENCODE_INDICES]
        )
        d = ins.run.muscle.dim
        w = self.maps.setdefault(node, self.rng.standard_normal((D0, d)))
        z = unit(self.latent[idx] @ w + 0.3 * self.rng.standard_normal((*idx.shape, d)))
        if mode in POISON:
            z = POISON[mode](z, self.rng)
        name = "c0" if mode == "dup-name" else f"c{self.position(node)}"
        ident = {
            p.CLIENT_NAME: name,
            p.TASK_KIND: "classification",
            p.MODEL_NAME: "scripted",
            p.METRIC_NAME: "accuracy",
        }
        metrics = PHASE_METRICS[kind]
        has = bool(idx.size)
        reply = p.Reply(metrics, ident, z if has else None, idx if has else None)
        content = p.encode_reply(reply, ins.run.muscle.precision)
        if mode in MALFORM and has:
            MALFORM[mode](content, self.rng)
        return Message(content, reply_to=msg)


def poisoning(handler, attacker: int, attack: str):
    """Wrap a ClientApp ``handler``: partition ``attacker`` poisons its uploads."""

    def wrapped(msg: Message, ctx: Context) -> Message:
        reply = handler(msg, ctx)
        arrays = reply.content.array_records.get(p.REPS)
        if ctx.node_config["partition-id"] == attacker and arrays and p.Z in arrays:
            wire = arrays[p.Z].numpy().dtype
            z = arrays[p.Z].numpy().astype(np.float32)
            z = POISON[attack](z, np.random.default_rng(len(z)))
            arrays[p.Z] = Array(z.astype(wire))
        return reply

    return wrapped


def write_roster(path, entries, max_train: int = 64):
    """A roster TOML: ``entries`` of (profile, dotted overrides), small data."""
    import json

    lines = []
    for profile, sets in entries:
        # partition seed pinned at 0: the calibrated scenarios (docs/reliability.md)
        # ran on the same partitions for every run seed
        full = {"data.max-train": max_train, "data.max-test": 200,
                "data.partition.seed": 0, **sets}  # fmt: skip
        inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in full.items())
        lines.append(f'[[clients]]\nprofile = "{profile}"\nset = {{ {inner} }}\n')
    path.write_text("\n".join(lines))
    return path


#: three cheap honest clients (small CNN x2, MLP) and an attacker for them
HONEST = [
    ("fmnist-cnn", {}),
    ("mosaic-mlp", {}),
    ("fmnist-cnn", {"name": "fmnist-cnn-b", "data.partition.index": 1}),
]
ATTACKER = ("fmnist-cnn", {"name": "attacker", "data.partition.index": 2})
