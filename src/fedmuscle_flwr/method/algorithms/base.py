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

Adding a baseline = one file in this folder (a subclass with a ``name``; the
registry finds it) + one test, never an ``elif name ==`` branch or a copied client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from fedmuscle_flwr.config.run import MuscleConfig, RunConfig
from fedmuscle_flwr.method.planner import partner_matrices
from fedmuscle_flwr.models.base import ModelInput
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

    #: registry name (``algorithm = "..."`` in the run config)
    name: ClassVar[str] = ""
    #: one line for ``fedmuscle list algorithms``
    description: ClassVar[str] = ""
    #: what travels, in words (docs and listings)
    wire: ClassVar[str] = ""
    #: what the client uploads for phase 2
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

    def train_upload(self, model: ClientModel) -> State | None:
        """What the client uploads of its model after phase 1 (default: nothing)."""
        return None

    # ------------------------------------------------------------- server
    def setup(self, run: RunConfig) -> None:
        """Server-side set-up before round 1 (default: nothing to build)."""

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

    def relay(
        self,
        run: RunConfig,
        up: Uploads,
        batches: np.ndarray,
        server_round: int,
        step: int,
        span: range,
    ) -> dict[int, Relay]:
        """Per node, what it gets for the step batches ``batches`` (S, B).

        M partners sampled (seeded) within each group; a node alone in its group
        gets nothing and skips phase 2 this message.
        """
        m, seed = run.muscle.partners, run.seed
        matrices = partner_matrices(
            up.bank, self.groups(up), m, seed, server_round, step, span
        )
        return {n: Relay({PARTNERS: c}) for n, c in matrices.items()}


def check_pair_shapes(anchor: Tensor, partners: Tensor) -> None:
    """``ValueError`` unless anchor is (B, D) and partners (M >= 1, B, D)."""
    if anchor.dim() != 2 or partners.dim() != 3 or partners.shape[1:] != anchor.shape:
        raise ValueError(
            f"anchor (B, D) and partners (M, B, D) expected, got "
            f"{tuple(anchor.shape)} and {tuple(partners.shape)}"
        )
    if partners.shape[0] < 1:
        raise ValueError("at least one partner is needed")
