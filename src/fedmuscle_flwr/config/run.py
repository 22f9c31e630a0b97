"""The run configuration (server side): rounds, training, Muscle, federation, ...

Flower flattens nested run-config tables to dotted keys (``muscle.tau``);
:meth:`RunConfig.from_flat` folds them back and validates once, at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from fedmuscle_flwr.config.schema import _Schema, unflatten, validate

#: the poisoning detectors ``method/robust.py`` implements, in their default order
DETECTOR_NAMES = ("norm", "collapse", "gram", "alignment")
#: upper bound on ``num-rounds`` (a typo such as 10**12 is refused at the edge)
MAX_ROUNDS = 100_000
#: upper bound on any waiting time: 30 days
MAX_SECONDS = 30 * 24 * 3600.0


# --------------------------------------------------------------------------- run
class PublicConfig(_Schema):
    """The public (unlabelled) dataset every participant can index."""

    dataset: str = Field(
        "fashion-mnist-heldout",
        description="a packaged public set, or a layout read from files: "
        "'imagefolder', 'textfile', 'image-captions'",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="where the files are (root, path, ...)",
        exclude_if=lambda options: not options,  # packaged sets: configs as before
    )
    size: int = Field(5000, gt=0, description="samples of the public set in use")


class TrainConfig(_Schema):
    """Phase 1: E epochs of each client's own task loss on its private data."""

    epochs: int = Field(1, ge=0, description="E: task epochs per round")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_batches: int = Field(0, ge=0, description="cap per epoch; 0 = whole epoch")
    head_refit_epochs: int = Field(
        0,
        ge=0,
        description="after phase 2: task epochs on the head only (not in the paper; "
        "docs/results.md §5)",
    )


class MuscleConfig(_Schema):
    """Phase 2: T contrastive steps with the Muscle loss (docs/method.md §2-3)."""

    steps: int = Field(5, ge=0, description="T: contrastive steps per round")
    batch_size: int = Field(32, ge=2, description="B: public batch size")
    dim: int = Field(256, gt=0, description="d: shared representation dimension")
    partners: int = Field(3, ge=1, description="M: partners per client")
    tau: float = Field(0.2, gt=0, description="τ_N")
    tau_partners: float = Field(0.15, gt=0, description="τ_{N-1}")
    lr: float = Field(1e-3, gt=0)
    downlink: Literal["compact", "aggregated"] = "compact"
    sync: Literal["per-step", "per-round"] = "per-round"
    precision: Literal["fp16", "fp32", "int8"] = Field(
        "fp16", description="wire format of representations (int8: + fp32 scale/row)"
    )
    max_tuples: int = Field(
        2**26, gt=0, description="B^(M+1) above which the loss is chunked"
    )
    freeze_norm_stats: bool = Field(
        False,
        description="phase 2 and the uploads normalise public batches with the "
        "private data's BatchNorm running statistics instead of the batch's own "
        "(an ablation, docs/results.md §5)",
    )
    kd_temperature: float = Field(
        2.0, gt=0, description="T of the feddf baseline's ensemble distillation"
    )

    @model_validator(mode="after")
    def _gamma_non_negative(self) -> MuscleConfig:
        if self.tau_partners > self.tau:
            raise ValueError(
                f"tau-partners={self.tau_partners} must be <= tau={self.tau} "
                "(γ = 1/τ_{N-1} − 1/τ_N must be ≥ 0)"
            )
        return self


class EvalConfig(_Schema):
    """Evaluation and the fixed public probe batch used to measure alignment."""

    every: int = Field(1, ge=1, description="evaluate every k rounds (and the last)")
    last: int = Field(
        1, ge=1, description="also evaluate each of the last k rounds (1: the last)"
    )
    probe_size: int = Field(64, ge=2)
    initial: bool = Field(True, description="also evaluate before round 1")
    norm_stats: Literal["recompute", "running"] = Field(
        "recompute",
        description="BatchNorm statistics at evaluation: re-estimated on the private "
        "train split (weights unchanged) or the running averages as they are",
    )
    norm_stats_batches: int = Field(
        0, ge=0, description="cap on the batches of the re-estimation; 0 = all"
    )

    def due(self, rnd: int, num_rounds: int) -> bool:
        """Whether round ``rnd`` (1-based) of ``num_rounds`` ends with an evaluation."""
        return rnd % self.every == 0 or rnd > num_rounds - self.last


class FederationConfig(_Schema):
    """Who takes part and how long the server waits."""

    roster: str = Field("default", description="clients/rosters/<name>.toml")
    min_clients: int = Field(2, ge=1, le=100_000)
    wait_clients_s: float = Field(300.0, gt=0, le=MAX_SECONDS)
    phase_timeout_s: float = Field(
        600.0,
        gt=0,
        le=MAX_SECONDS,
        description="longest wait for a phase's replies (raise it for big models "
        "on slow clients)",
    )
    straggler_factor: float = Field(
        4.0,
        ge=0,
        le=1000,
        description="once half the nodes of a phase replied, a node still silent "
        "after max(straggler-min-s, factor x the median reply time) is dropped "
        "for the round; 0 = wait for the phase timeout",
    )
    straggler_min_s: float = Field(
        60.0, ge=0, le=MAX_SECONDS, description="the least a straggler is waited for"
    )
    poll_s: float = Field(0.05, gt=0, le=60.0)
    max_weights_mb: float = Field(
        1024.0,
        gt=0,
        le=1024.0**2,
        description="largest model a weight-sharing baseline may send",
    )
    node_keys_file: str = Field(
        "",
        description="JSON {node id: SuperNode key name}, written by fedmuscle server "
        "with --auth-keys; binds client names to keys ('' = no keys)",
    )
    max_reply_keys: int = Field(
        64, ge=8, le=4096, description="keys per metrics or identity record of a reply"
    )
    max_reply_chars: int = Field(
        256, ge=64, le=65536, description="characters per identity value of a reply"
    )
    max_reply_bytes: int = Field(
        16384,
        ge=1024,
        le=2**24,
        description="bytes of a reply's metrics + identity records together",
    )
    deployed: bool = Field(
        False,
        description="set by fedmuscle server: the clients name their own profiles "
        "(the roster is for simulations)",
    )
    runs_after: int = Field(
        0,
        ge=0,
        le=100,
        description="runs the server starts on the same clients after this one "
        "(fedmuscle server --compare): clients with --exit-after-run stay for them",
    )


class RobustConfig(_Schema):
    """Poisoning defence: screen the uploaded representations every round.

    Detectors (``robust.py``) compare each client's representations of the
    round's public batches with the others'; a flagged client is excluded from
    partners for the rest of the round (logged, counted in the round metrics).
    Off by default: it assumes the clients' representations share a similarity
    structure, and an honest client that disagrees is flagged and loses its
    alignment for the round (measured on the default preset: the off-domain
    digits client in 1 of 16 client-rounds; docs/reliability.md §1.2).
    """

    enabled: bool = False
    detectors: str = Field(
        "norm,collapse,gram,alignment", description="detector names, in order"
    )
    min_clients: int = Field(3, ge=3, description="fewer: no screening (no majority)")
    z_threshold: float = Field(3.0, gt=0, description="flag if z < -z-threshold ...")
    min_ratio: float = Field(0.5, ge=0, le=1, description="... and score < ratio*ref")
    mad_floor: float = Field(0.1, gt=0, description="lower bound on the MAD scale")
    collapse_cosine: float = Field(
        0.999, gt=0, le=1, description="mean cosine of distinct rows above = collapse"
    )
    norm_tolerance: float = Field(0.05, gt=0, description="|mean row norm - 1| above")

    @model_validator(mode="after")
    def _known_detectors(self) -> RobustConfig:
        names = [n.strip() for n in self.detectors.split(",") if n.strip()]
        unknown = [n for n in names if n not in DETECTOR_NAMES]
        if unknown or not names:
            raise ValueError(
                f"detectors={self.detectors!r}: unknown {unknown or '(none given)'}; "
                f"known: {sorted(DETECTOR_NAMES)}"
            )
        return self


class PrivacyConfig(_Schema):
    """Client side: clip, add Gaussian noise to and renormalise every upload."""

    clip: float = Field(1.0, gt=0, description="row L2 norm bound C before noise")
    noise: float = Field(
        0.0, ge=0, description="noise multiplier σ: N(0, (σ·C)²) per coordinate"
    )


class ServerModelConfig(_Schema):
    """The server's own representation model (the ``creamfl`` baseline only)."""

    backbone: str = Field("small-cnn", description="encoder registry name")
    options: dict[str, Any] = Field(default_factory=dict)
    lr: float = Field(1e-3, gt=0, description="Adam lr of the server model")
    steps_per_batch: int = Field(1, ge=1, description="updates per public batch")


class CheckpointConfig(_Schema):
    """Server checkpoints (``<run dir>/checkpoint.json``) and resuming from one."""

    enabled: bool = Field(True, description="write a checkpoint after every round")
    resume: bool = Field(False, description="continue the run in the run folder")
    uid: str = Field(
        "", description="drawn at a run's first start; keys the clients' states"
    )


class RunConfig(_Schema):
    """Everything the server decides for a run."""

    algorithm: str = "fedmuscle"
    num_rounds: int = Field(5, ge=1, le=MAX_ROUNDS)
    seed: int = 0
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    client_threads: int = Field(
        1,
        ge=0,
        description="CPU threads of a client's torch ops in every engine (the sum "
        "order of a kernel depends on it, so engines agree only with the same "
        "count); 0 = torch's default",
    )
    output_dir: str = Field("runs", description="run folders are created below it")
    run_name: str = Field("", description="run folder name; '' = <time>-<algorithm>")
    live_csv: bool = Field(
        False, description="rewrite <run dir>/rounds.csv after every round (live view)"
    )
    provenance: str = Field(
        "",
        max_length=512,
        description="recorded with the run, no effect on it: e.g. the hash of the "
        "pre-registration it belongs to and the code revision (docs/results.md §7c)",
    )
    public: PublicConfig = PublicConfig()
    train: TrainConfig = TrainConfig()
    muscle: MuscleConfig = MuscleConfig()
    eval: EvalConfig = EvalConfig()
    federation: FederationConfig = FederationConfig()
    robust: RobustConfig = RobustConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    server_model: ServerModelConfig = ServerModelConfig()

    @model_validator(mode="after")
    def _probe_fits(self) -> RunConfig:
        if self.eval.probe_size > self.public.size:
            raise ValueError(
                f"eval.probe-size={self.eval.probe_size} exceeds "
                f"public.size={self.public.size}"
            )
        if self.muscle.batch_size > self.public.size:
            raise ValueError(
                f"muscle.batch-size={self.muscle.batch_size} exceeds "
                f"public.size={self.public.size}"
            )
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunConfig:
        """Validate a nested mapping; raise :class:`ConfigError` on any bad value."""
        return validate(cls, data, "run config")

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> RunConfig:
        """Validate Flower's flattened run config (``muscle.tau`` style keys)."""
        return cls.from_mapping(unflatten(flat))
