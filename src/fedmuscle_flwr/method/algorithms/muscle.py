"""FedMuscle (Setayesh et al., ICLR 2026): the Muscle loss over M partners."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.method.algorithms.base import (
    AGGREGATE,
    ALGORITHMS,
    LOG_ALPHA,
    PARTNERS,
    Algorithm,
    AlignContext,
    Layout,
    Payloads,
    Relay,
    RelayRequest,
    StepPayload,
)
from fedmuscle_flwr.method.lazy import LazyMapping
from fedmuscle_flwr.method.losses import muscle_loss, muscle_loss_from_aggregate
from fedmuscle_flwr.method.planner import aggregated_payload


@ALGORITHMS.register("fedmuscle")
class FedMuscle(Algorithm):
    """Muscle loss (docs/method.md §2) against M partners; either downlink."""

    description = "FedMuscle: Muscle loss over M partners (Setayesh et al., ICLR 2026)"
    wire = "up: Z^n (B, d) per batch; down: M partner matrices or S^n, log α"

    def align_loss(
        self, anchor: Tensor, payload: StepPayload, ctx: AlignContext
    ) -> Tensor:
        """L_Muscle of the anchor (B, d) against partners (M, B, d) or S^n, log α."""
        if AGGREGATE in payload:  # the paper's downlink: S^n and log α^n
            return muscle_loss_from_aggregate(
                anchor, payload[AGGREGATE], payload[LOG_ALPHA]
            )
        cfg = ctx.cfg
        return muscle_loss(
            anchor,
            payload[PARTNERS],
            cfg.tau,
            cfg.tau_partners,
            max_tuples=cfg.max_tuples,
        )

    def payloads(self, muscle: MuscleConfig) -> Payloads:
        """Z^n up; down the partners' matrices, or S^n and log α (aggregated)."""
        if self.downlink(muscle) == "compact":
            return Payloads()
        aggregate = {
            AGGREGATE: Layout(("S", "B^M", "d")),
            LOG_ALPHA: Layout(("S", "B^M")),
        }
        return Payloads(relay=aggregate)

    def downlink(self, muscle: MuscleConfig) -> str:
        """The configured downlink (``compact`` or the paper's ``aggregated``)."""
        return muscle.downlink

    def relay(self, req: RelayRequest) -> Mapping[int, Relay]:
        """Partner matrices; with ``muscle.downlink=aggregated`` S^n and log α."""
        relays = super().relay(req)
        if self.downlink(req.run.muscle) == "compact":
            return relays

        def aggregate(node: int) -> Relay:
            partners = relays[node].arrays[PARTNERS]
            agg, log_alpha = aggregated_payload(partners, req.run.muscle)
            return Relay({AGGREGATE: agg, LOG_ALPHA: log_alpha})

        return LazyMapping(relays, aggregate)
