"""What an algorithm is: an object with hooks on both sides of the round (no Flower).

Every algorithm reuses the same clients, data, models, trainer and round (phase 1:
E task epochs; upload; phase 2: T steps of its loss against what the server
relays; evaluation). An :class:`Algorithm` says, through its hooks,

* client side: what the client uploads of a public batch (:meth:`readout`, in
  the space :attr:`space`), which parameters phase 2 trains
  (:meth:`align_parameters`) and the phase-2 loss (:meth:`align_loss`);
* server side: which clients it pairs (:meth:`groups`), what the server relays
  to each of them (:meth:`relay`) and how many phase-2 round trips a round takes
  (:meth:`messages_per_round`).

An algorithm also declares what travels (:meth:`Algorithm.payloads`: the layout,
dtypes and shape of its upload and of each array it relays); the wire code
validates every message against that declaration and never asks for a name.

Adding a baseline = one file in this folder (a subclass decorated with
``@ALGORITHMS.register("name")``; the registry finds the file) + one test, never
an ``elif name ==`` branch or a copied client (the registry style:
:mod:`fedmuscle_flwr.config.registry`; the steps: docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from fedmuscle_flwr.config.registry import Registry
from fedmuscle_flwr.config.run import MuscleConfig, RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.data.base import RawBatch
from fedmuscle_flwr.method.lazy import LazyMapping
from fedmuscle_flwr.method.planner import Join, partner_matrices, stack_blocks
from fedmuscle_flwr.models.base import ModelInput, move_to
from fedmuscle_flwr.models.client_model import ClientModel
from fedmuscle_flwr.tasks.base import Task

#: what a client uploads for phase 2
Space = Literal["representation", "logits", "weights"]
#: a model's state as sent over the wire: parameter/buffer name -> array
State = Mapping[str, np.ndarray]
#: one alignment step's payload on the client: partners (M, B, D), or
#: (aggregate S (B^M, d), log-alpha (B^M,)) — keys as in :data:`PARTNERS` ...
StepPayload = Mapping[str, Tensor]

#: relay keys (the wire uses the same names for its records)
PARTNERS = "partners"  # (S, M, B, D) partner matrices
AGGREGATE = "aggregate"  # (S, B^M, d) S^n of the paper's downlink
LOG_ALPHA = "log-alpha"  # (S, B^M) log α^n

#: floating dtypes a representation or logit array may travel in
FLOATS = ("float16", "float32")


@dataclass(frozen=True)
class Layout:
    """One array's layout on the wire.

    ``axes`` name each axis: ``B`` (public batch size) and ``d`` (representation
    dim) are fixed by the run, ``K`` (batches asked for) by the request, ``C``
    (classes) is capped by the wire; any other name (``S`` steps, ``M``
    partners, ``B^M`` tuples) or None is free. ``unit_rows``: the last axis
    holds unit-norm rows.
    """

    axes: tuple[str | None, ...]
    dtypes: tuple[str, ...] = FLOATS
    unit_rows: bool = False


#: Z^n: (K, B, d) unit rows
REPRESENTATIONS = Layout(("K", "B", "d"), unit_rows=True)
#: class scores: (K, B, C)
LOGITS = Layout(("K", "B", "C"))
#: M partners' matrices per step: (S, M, B, d) unit rows
PARTNER_MATRICES = Layout(("S", "M", "B", "d"), unit_rows=True)


@dataclass(frozen=True)
class Payloads:
    """What an algorithm's messages carry besides indices and metrics.

    ``upload``: the layout of what a train/align reply uploads per requested
    batch, or None when the train reply uploads the model instead (a weights
    record); ``relay``: the arrays of an align instruction, by key;
    ``relay_weights``: the align instruction carries a model (a weights record).
    Evaluation replies always carry :data:`REPRESENTATIONS` of the probe.
    """

    upload: Layout | None = REPRESENTATIONS
    relay: Mapping[str, Layout] = field(
        default_factory=lambda: {PARTNERS: PARTNER_MATRICES}
    )
    relay_weights: bool = False


@dataclass(frozen=True)
class Uploads:
    """What the clients of the partner pool uploaded this round."""

    pool: Sequence[int]  # nodes in a stable order (quarantined ones left out)
    bank: Mapping[int, np.ndarray]  # node -> (K, B, D) of the step batches
    label_spaces: Mapping[int, str]  # node -> task kind/dataset/classes
    soft_labels: Mapping[int, str]  # node -> softmax | sigmoid | '' (no distribution)
    models: Mapping[int, State] = field(default_factory=dict)  # weight uploads
    examples: Mapping[int, float] = field(default_factory=dict)  # training examples


@dataclass(frozen=True)
class Relay:
    """What the server sends one client for phase 2.

    ``arrays``: :data:`PARTNERS`, or :data:`AGGREGATE` and :data:`LOG_ALPHA`,
    each with a leading step axis S; ``weights``: a model state to load instead.
    """

    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    weights: State | None = None


@dataclass(frozen=True)
class RelayRequest:
    """What :meth:`Algorithm.relay` gets: the uploads and the steps to serve.

    ``batches`` (S, B): the public batches of the steps ``span`` of message
    ``step`` in round ``server_round``.
    """

    run: RunConfig
    uploads: Uploads
    batches: np.ndarray
    server_round: int
    step: int
    span: range
    join: Join = stack_blocks  # how a node's payload is laid out (planner.gather)


@dataclass(frozen=True)
class AlignContext:
    """What an alignment loss may need besides anchor and payload."""

    cfg: MuscleConfig
    task: Task


class Algorithm:
    """One federated algorithm: FedMuscle's round with its own hooks.

    The defaults are those of a representation-space contrastive method: upload
    Z^n, pair every client with M partners among all, relay the partners'
    matrices (the compact downlink), train w^n with the head frozen.
    """

    #: registry name (``algorithm = "..."``; set by ``@ALGORITHMS.register``)
    name: ClassVar[str] = ""
    #: one line for ``fedmuscle list algorithms``
    description: ClassVar[str] = ""
    #: what travels, in words (docs and listings)
    wire: ClassVar[str] = ""
    #: what the client uploads, in words (privacy applies to representations)
    space: ClassVar[Space] = "representation"
    #: whether the phase-2 loss is taken in T steps (False: none, or a weight load)
    aligns: ClassVar[bool] = True

    # ------------------------------------------------------------- client
    def readout(self, model: ClientModel, inputs: ModelInput) -> Tensor:
        """What the client uploads of a public batch: Z^n (B, d) unit rows."""
        return model.represent(inputs)

    def align_parameters(self, model: ClientModel) -> Iterable[torch.nn.Parameter]:
        """The parameters phase 2 trains: w^n (the task head is frozen)."""
        return model.representation_parameters()

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """The phase-2 loss of one step: anchor (B, D) against the payload -> ()."""
        raise ValueError(f"algorithm {self.name!r} has no alignment phase")

    def step_loss(
        self,
        model: ClientModel,
        raw: RawBatch,
        payload: StepPayload,
        ctx: AlignContext,
        device: torch.device,
    ) -> Tensor:
        """One phase-2 step's loss from the raw public batch.

        Default: encode it as :meth:`readout` does, then :meth:`align_loss`.
        """
        anchor = self.readout(model, move_to(model.prepare(raw), device))
        return self.align_loss(anchor, payload, ctx)

    def train_upload(self, model: ClientModel) -> State | None:
        """What the client uploads of its model after phase 1 (default: nothing)."""
        return None

    # ------------------------------------------------------------- server
    def setup(self, run: RunConfig) -> None:
        """Server-side set-up before round 1 (default: nothing to build)."""

    def payloads(self, muscle: MuscleConfig) -> Payloads:
        """What travels: Z^n up, the partners' matrices down."""
        return Payloads()

    def downlink(self, muscle: MuscleConfig) -> str:
        """The downlink actually used: ``compact`` unless the loss can take S^n."""
        return "compact"

    def align_steps(self, run: RunConfig) -> int:
        """T, or 0 when the algorithm has no alignment steps."""
        return run.muscle.steps if self.aligns else 0

    def messages_per_round(self, run: RunConfig) -> int:
        """Round trips of phase 2: T (per-step sync), 1 (per-round) or 0."""
        steps = self.align_steps(run)
        if not steps:
            return 0
        return steps if run.muscle.sync == "per-step" else 1

    def groups(self, up: Uploads) -> list[list[int]]:
        """Which clients may be paired: everybody in the pool."""
        return [list(up.pool)]

    def relay(self, req: RelayRequest) -> Mapping[int, Relay]:
        """Per node, what it gets for the step batches ``req.batches`` (S, B).

        M partners sampled (seeded) within each group; a node alone in its group
        gets nothing and skips phase 2 this message. The payloads are made when
        looked up (:class:`~fedmuscle_flwr.method.lazy.LazyMapping`).
        """
        up, m, seed = req.uploads, req.run.muscle.partners, req.run.seed
        matrices = partner_matrices(
            up.bank, self.groups(up), m, seed, req.server_round, req.step, req.span,
            req.join,
        )  # fmt: skip
        return LazyMapping(matrices, lambda n: Relay({PARTNERS: matrices[n]}))


#: name -> algorithm class, filled by ``@ALGORITHMS.register`` in this folder
ALGORITHMS: Registry[type[Algorithm]] = Registry(
    "algorithm", "fedmuscle_flwr.method.algorithms", name_attr="name", error=ConfigError
)


def check_pair_shapes(anchor: Tensor, partners: Tensor) -> None:
    """``ValueError`` unless anchor is (B, D) and partners (M >= 1, B, D)."""
    if anchor.dim() != 2 or partners.dim() != 3 or partners.shape[1:] != anchor.shape:
        raise ValueError(
            f"anchor (B, D) and partners (M, B, D) expected, got "
            f"{tuple(anchor.shape)} and {tuple(partners.shape)}"
        )
    if partners.shape[0] < 1:
        raise ValueError("at least one partner is needed")
