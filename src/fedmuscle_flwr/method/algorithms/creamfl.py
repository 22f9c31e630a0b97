"""CreamFL (Yu et al., ICLR 2023), reduced: a server model is every client's partner.

CreamFL (Yu et al., ICLR 2023) trains a global model on the public data on the
server, regularised by contrastive losses against the clients' representations
of that data, and sends the global model's representations back, which the
clients' local training is regularised towards. Reduced here to what the
FedMuscle round carries:

* one public modality (the server model's encoder's), one global model;
* the clients' "representation ensemble" is the normalised mean of their
  uploaded Z^n of each public batch (CreamFL weights clients by agreement);
* the global model minimises InfoNCE between its representations and the
  ensemble (one inter-model term; no separate intra-/inter-modal terms);
* the clients then minimise InfoNCE to the global representations in phase 2
  (the ``pairwise`` loss with the server as their single partner).

The server model is not checkpointed: a resumed ``creamfl`` run restarts it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fedmuscle_flwr.config.profile import ModelSpec
from fedmuscle_flwr.config.run import RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.data.base import PublicData
from fedmuscle_flwr.data.registry import load_participant_public
from fedmuscle_flwr.method.algorithms.base import (
    ALGORITHMS,
    PARTNERS,
    Algorithm,
    AlignContext,
    Relay,
    RelayRequest,
    StepPayload,
)
from fedmuscle_flwr.method.losses import pairwise_infonce
from fedmuscle_flwr.models.client_model import (
    ClientModel,
    build_client_model,
    public_inputs,
    resolve_device,
)
from fedmuscle_flwr.tasks.registry import get_task

log = logging.getLogger(__name__)
_SERVER_SEED = 0x5E7E


class ServerRepresentationModel:
    """A global encoder + projector on the public data (its task head is unused)."""

    def __init__(self, run: RunConfig, public: PublicData | None = None) -> None:
        cfg = run.server_model
        self.run = run
        self.device = resolve_device(run.device)
        spec = ModelSpec(backbone=cfg.backbone, options=cfg.options, pretrained=False)
        try:
            # any head will do: only the representation w(x) is used
            self.model: ClientModel = build_client_model(
                spec,
                get_task("classification", {}),
                2,
                run.muscle.dim,
                seed=run.seed + _SERVER_SEED,
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"server-model.backbone={cfg.backbone!r}: {exc}"
            ) from None
        self.model.to(self.device)
        self.public = public or load_participant_public(run.public)
        self.opt = torch.optim.Adam(self.model.representation_parameters(), lr=cfg.lr)

    def fit_and_encode(
        self, bank: Mapping[int, np.ndarray], batches: np.ndarray
    ) -> np.ndarray:
        """Train on the ensemble of ``bank``, then encode ``batches``.

        Parameters
        ----------
        bank
            node -> (S, B, d) clients' representations of ``batches``.
        batches
            (S, B) public indices.

        Returns
        -------
        np.ndarray
            (S, B, d) float32 unit rows: the global model's representations.
        """
        z = np.stack([bank[n] for n in sorted(bank)])  # (N, S, B, d)
        ensemble = F.normalize(torch.from_numpy(z).float().mean(0), dim=-1)  # (S, B, d)
        ensemble = ensemble.to(self.device)
        self.model.train()
        losses = []
        for s, row in enumerate(batches):
            x = public_inputs(self.model, self.public, row, self.device)
            for _ in range(self.run.server_model.steps_per_batch):
                g = self.model.represent(x)  # type: ignore[arg-type]
                loss = pairwise_infonce(g, ensemble[s][None], self.run.muscle.tau)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                losses.append(float(loss.detach()))
        log.debug("server model: mean InfoNCE %.4f", float(np.mean(losses)))
        self.model.eval()
        with torch.no_grad():
            out = [
                self.model.represent(
                    public_inputs(self.model, self.public, row, self.device)  # type: ignore[arg-type]
                )
                .float()
                .cpu()
                for row in batches
            ]
        return torch.stack(out).numpy()


@ALGORITHMS.register("creamfl")
class CreamFL(Algorithm):
    """Clients align by InfoNCE to the server model's representations."""

    description = (
        "CreamFL (Yu et al., ICLR 2023), reduced: a global model on the server "
        "learns the public data by InfoNCE to the clients' mean representations; "
        "clients align to its representations (one modality, one contrastive "
        "term, no agreement weighting)"
    )
    wire = "up: Z^n (B, d) per batch; down: the global model's (B, d) per batch"

    def __init__(self) -> None:
        self.server_model: ServerRepresentationModel | None = None

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """InfoNCE of the anchor (B, d) to the server's representations (1, B, d)."""
        return pairwise_infonce(anchor, payload[PARTNERS], ctx.cfg.tau)

    def setup(self, run: RunConfig) -> None:
        """Build the server model (a bad ``server-model`` fails before round 1)."""
        self.server_model = ServerRepresentationModel(run)

    def relay(self, req: RelayRequest) -> dict[int, Relay]:
        """Train the server model on the uploads, relay its (S, 1, B, d) to all."""
        up, pool = req.uploads, list(req.uploads.pool)
        if not pool:
            return {}
        if self.server_model is None:
            self.setup(req.run)
        assert self.server_model is not None
        bank = {n: up.bank[n] for n in pool}
        reps = self.server_model.fit_and_encode(bank, req.batches)
        return {n: Relay({PARTNERS: reps[:, None]}) for n in pool}
