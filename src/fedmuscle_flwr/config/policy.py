"""The client policy: what a client organisation lets leave its premises.

A deployed client's profile may carry a ``[policy]`` table (or ``fedmuscle
client --policy FILE`` names a TOML file holding one); without either the
defaults below apply, and they are the safe ones:

* uploads: representations of the public set only (``uploads =
  ["representation"]``); logits and model weights are opt-in;
* algorithms: any registered algorithm whose uploads are allowed
  (``algorithms = []``), or exactly the listed names;
* public sets: any public set installed with the client's own package
  (``public-sets = []``) or the listed names, each optionally pinned to its
  content fingerprint (``[policy.fingerprints]``); a public set that shares a
  sample with the client's private train or test data is always refused
  (``disjoint-public``);
* privacy: a floor the server cannot lower (``[policy.privacy]``: the client
  applies at least ``min-noise`` and at most ``max-clip``);
* caps (``[policy.caps]``) on d, T, B, K, the probe size, the reply bytes, the
  task epochs and the client's state on disk.

The server never sees the policy; a refused instruction gets one reply naming
the rule (``clientapp/policy.py`` checks, the wire carries the refusal). A
simulation roster's clients are owned by one operator and get
:meth:`ClientPolicy.open` unless the roster asks for the profiles' own
policies (``policy = "profiles"`` in the roster).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from fedmuscle_flwr.config.schema import _Schema, validate

#: what a client may upload (an algorithm's upload space)
UploadKind = Literal["representation", "logits", "weights"]
#: the upload kinds, safest first
UPLOAD_KINDS: tuple[UploadKind, ...] = ("representation", "logits", "weights")
#: the largest state a client keeps on disk by default (all runs together), MiB
DEFAULT_STATE_MB = 4096.0
#: an open policy's state limits: no pruning in practice
OPEN_KEEP_RUNS, OPEN_STATE_MB = 1000, 2.0**30


class PrivacyFloor(_Schema):
    """What the client applies at least, whatever the server's ``privacy`` says.

    The noise σ of an upload is ``max(server σ, min-noise)`` and its clip C
    ``min(server C, max-clip)`` (``method/privacy.py``): the server may ask for
    more privacy, never for less. Noise applies to representations only, so a
    ``min-noise`` above 0 refuses logits uploads.
    """

    min_noise: float = Field(0.0, ge=0, le=100.0, description="σ floor")
    max_clip: float = Field(
        1.0e6, gt=0, description="row L2 norm bound C ceiling (1e6: no ceiling)"
    )


class Caps(_Schema):
    """Upper bounds on what one instruction may ask of the client.

    Every default admits the shipped presets and experiments with room to spare;
    an instruction above any cap is refused before any computation.
    """

    dim: int = Field(2048, ge=1, description="d: the representation width")
    steps: int = Field(256, ge=0, description="T: alignment steps per round")
    batch_size: int = Field(1024, ge=2, description="B: public rows per batch")
    encode_batches: int = Field(
        256, ge=1, description="K: public batches encoded per reply"
    )
    probe_size: int = Field(4096, ge=2, description="P: probe rows per evaluation")
    partners: int = Field(64, ge=1, description="M: partners per alignment step")
    epochs: int = Field(100, ge=0, description="E: task epochs per round")
    reply_mb: float = Field(
        64.0, gt=0, le=4096.0, description="MiB of arrays one reply may carry"
    )
    state_mb: float = Field(
        DEFAULT_STATE_MB,
        gt=0,
        description="MiB of saved state under the state folder, all runs together",
    )
    keep_runs: int = Field(
        3, ge=1, le=1000, description="runs whose saved state is kept (newest)"
    )


class ClientPolicy(_Schema):
    """What this client accepts from a server (the ``[policy]`` table)."""

    uploads: tuple[UploadKind, ...] = Field(
        ("representation",), description="upload kinds allowed to leave the client"
    )
    algorithms: tuple[str, ...] = Field(
        (), description="algorithm names accepted; () = any with allowed uploads"
    )
    public_sets: tuple[str, ...] = Field(
        (), description="public set names accepted; () = any installed one"
    )
    fingerprints: dict[str, str] = Field(
        default_factory=dict,
        description="public set name -> the content fingerprint it must have",
    )
    server_paths: bool = Field(
        False,
        description="read a public set from files the server's run config names "
        "(public.options); false: only where this profile's [public] says",
    )
    disjoint_public: bool = Field(
        True,
        description="refuse a public set that shares a sample with the private "
        "train or test data (content hashes, once per run)",
    )
    privacy: PrivacyFloor = PrivacyFloor()
    caps: Caps = Caps()

    @field_validator("uploads")
    @classmethod
    def _some_upload(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one upload kind (representation, ...)")
        return tuple(dict.fromkeys(value))

    @field_validator("fingerprints")
    @classmethod
    def _fingerprints_named(cls, value: dict[str, str]) -> dict[str, str]:
        for name, fingerprint in value.items():
            if not name or not fingerprint.strip():
                raise ValueError(f"public set {name!r}: empty name or fingerprint")
        return value

    @classmethod
    def open(cls) -> ClientPolicy:
        """Everything accepted: a simulation whose operator owns every client.

        Every upload kind, algorithm and public set (from any path the run
        config names); no disjointness check, no
        privacy floor; the instruction caps at their defaults (they admit every
        shipped run); no pruning of old runs' state (a simulation may resume any).
        """
        keep = Caps(keep_runs=OPEN_KEEP_RUNS, state_mb=OPEN_STATE_MB)
        return cls(
            uploads=UPLOAD_KINDS, server_paths=True, disjoint_public=False, caps=keep
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "") -> ClientPolicy:
        """Validate a ``[policy]`` mapping; errors name the field and the source."""
        return validate(cls, data, f"client policy {source}".strip())

    def describe(self) -> str:
        """One line for the client's start-up log."""
        algos = ",".join(self.algorithms) or "any"
        publics = ",".join(self.public_sets) or "any installed"
        floor = self.privacy
        return (
            f"uploads={','.join(self.uploads)} algorithms={algos} "
            f"public-sets={publics} disjoint-public={self.disjoint_public} "
            f"min-noise={floor.min_noise:g} max-clip={floor.max_clip:g} "
            f"caps: d<={self.caps.dim} T<={self.caps.steps} "
            f"B<={self.caps.batch_size} K<={self.caps.encode_batches} "
            f"P<={self.caps.probe_size} reply<={self.caps.reply_mb:g}MiB "
            f"state<={self.caps.state_mb:g}MiB keep-runs={self.caps.keep_runs}"
        )


#: how a simulation roster's clients are policed
RosterPolicy = Literal["open", "profiles"]
