"""The client profile: who a client is (model, task, data), as data.

A *profile* is a TOML file under ``clients/``; a *roster* lists the clients of a
simulated federation (see :mod:`fedmuscle_flwr.config.files` for the files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from fedmuscle_flwr.config.policy import ClientPolicy, RosterPolicy
from fedmuscle_flwr.config.schema import _Schema, validate


class LoraConfig(_Schema):
    """LoRA adapters (peft) on a transformer backbone; rank 0 disables them."""

    rank: int = Field(0, ge=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ()


class ModelSpec(_Schema):
    """The client's architecture: backbone + projection head + task head."""

    backbone: str = Field(description="registry name or 'package.module:builder'")
    options: dict[str, Any] = Field(default_factory=dict)
    pretrained: bool = True
    projector: Literal["linear", "mlp"] = "mlp"
    projection_dim: int | None = Field(None, gt=0, description="must equal muscle.dim")
    head_on: Literal["features", "representation"] = "features"
    freeze_backbone: bool = False
    lora: LoraConfig = LoraConfig()


class TaskSpec(_Schema):
    """The client's task kind (registry name) and its options."""

    kind: str
    options: dict[str, Any] = Field(default_factory=dict)


class PartitionSpec(_Schema):
    """How this client's share of a dataset is cut (flwr-datasets partitioners)."""

    scheme: Literal["iid", "dirichlet", "classes", "whole"] = "iid"
    num_partitions: int = Field(1, ge=1)
    index: int = Field(0, ge=0)
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration")
    classes: tuple[int, ...] = ()
    seed: int | None = Field(
        None,
        ge=0,
        description="seed of the partition, the per-class subset, the validation carve "
        "and the test subsample; unset (default): the run's seed, so that seeds vary "
        "the data too (ClientProfile.for_run); set: pinned for every run",
    )

    @model_validator(mode="after")
    def _index_in_range(self) -> PartitionSpec:
        if self.index >= self.num_partitions:
            raise ValueError(
                f"index={self.index} must be < num-partitions={self.num_partitions}"
            )
        if self.scheme == "classes" and not self.classes:
            raise ValueError("scheme='classes' needs a non-empty 'classes' list")
        return self


class DataSpec(_Schema):
    """The client's private dataset: packaged, its own files, or a plugin.

    ``dataset``: a packaged name (``fedmuscle list datasets``), a file format
    (``imagefolder``, ``image-labels``, ``image-masks``, ``csv``, ``jsonl``,
    ``parquet``, ``npz``, ``hf-disk``) whose ``options`` say where the files
    are, or ``package.module:callable`` returning a PyTorch ``Dataset``.
    """

    dataset: str
    options: dict[str, Any] = Field(default_factory=dict)
    partition: PartitionSpec = PartitionSpec()
    max_train: int = Field(0, ge=0, description="0 = the whole partition")
    max_test: int = Field(0, ge=0, description="0 = the whole test split")
    per_class: int = Field(
        0, ge=0, description="labels per class kept of the partition; 0 = all"
    )
    workers: int = Field(
        2,
        ge=0,
        le=64,
        description="DataLoader processes decoding files (image folders, datasets "
        "tables, plugins) a batch ahead; 0 = in the training process; in-memory "
        "packaged sets never use them",
    )
    validation: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="carve this fraction of the train rows as the split evaluated "
        "instead of the test split (tuning; the test split is never read); 0 = off",
    )


class PublicSource(_Schema):
    """Where this participant's copy of the public set is (its own files).

    The run config names the public set for everyone (``public.dataset``,
    ``public.options``, ``public.size``); a client whose files lie elsewhere
    names its own copy here. Either way the copy must hash to the server's
    fingerprint.
    """

    dataset: str = Field(
        description="a packaged public set, or 'imagefolder', 'textfile', "
        "'image-captions' with options"
    )
    options: dict[str, Any] = Field(default_factory=dict)


class ClientProfile(_Schema):
    """One client persona: model, task, private data (public copy) and policy."""

    name: str
    model: ModelSpec
    task: TaskSpec
    data: DataSpec
    public: PublicSource | None = Field(
        None,
        description="this client's own copy of the public set; none = the run's",
        exclude_if=lambda public: public is None,
    )
    policy: ClientPolicy = ClientPolicy()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "") -> ClientProfile:
        """Validate a profile mapping; errors name the field and the source."""
        what = f"client profile {source}".strip()
        return validate(cls, data, what)

    def for_run(self, run_seed: int) -> ClientProfile:
        """The profile with an unset ``data.partition.seed`` set to ``run_seed``.

        Called where the run's seed meets the profile (the client runtime, the
        preflight check), so that seed s draws other data for every s unless the
        profile pins ``data.partition.seed``.
        """
        part = self.data.partition
        if part.seed is not None:
            return self
        data = self.data.model_copy(
            update={"partition": part.model_copy(update={"seed": run_seed})}
        )
        return self.model_copy(update={"data": data})


class RosterEntry(_Schema):
    """One roster line: a profile name and dotted overrides."""

    profile: str
    set: dict[str, Any] = Field(default_factory=dict)


class Roster(_Schema):
    """The ordered clients of a simulated federation (partition-id = position).

    ``set``: dotted overrides for all clients (before each entry's own);
    ``extends``: a base roster whose clients come first, with ``set`` on top;
    ``policy``: ``open`` (one operator owns every client: each accepts every
    algorithm, upload and public set, see ``ClientPolicy.open``) or
    ``profiles`` (each client enforces its profile's ``[policy]``, as a deployed
    client does). The roster named by the run decides, not a base it extends.
    """

    extends: str = ""
    policy: RosterPolicy = "open"
    set: dict[str, Any] = Field(default_factory=dict)
    clients: tuple[RosterEntry, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Roster:
        if not self.clients and not self.extends:
            raise ValueError("a roster needs [[clients]] entries or 'extends'")
        return self
