"""The public set against the client's own data: shared samples and the pin (no Flower).

A representation of a public sample is safe to send only while that sample is
not also one of the client's private samples: a server that names a "public"
set built from the same files as a client's private set (``mnist-5k-public``
beside ``mnist-5k``, ``digits-public`` beside ``digits``) receives one
representation, or one logit row, per private image. :func:`shared_samples`
counts the public samples whose decoded content equals a private train or test
input (content hashes of ``data/fingerprint.py``); a client whose policy keeps
``disjoint-public`` on refuses such a public set. The count is computed once
per (public set, private data) pair in a process and cached: the warm client
checks once per run.

:func:`check_pin` compares the public set's fingerprint with the one the
policy pins for that name, if any.
"""

from __future__ import annotations

from collections import OrderedDict

from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.data.base import PrivateData, PublicData
from fedmuscle_flwr.data.fingerprint import (
    public_fingerprint,
    public_sample_hashes,
    split_sample_hashes,
)
from fedmuscle_flwr.wire.refusal import Refusal

#: (public fingerprint, private data spec) pairs remembered per process
_CACHE_SIZE = 8
_shared: OrderedDict[tuple[str, str], int] = OrderedDict()


def shared_samples(public: PublicData, private: PrivateData) -> int:
    """Public samples (any modality) equal to a private train or test input."""
    mine = set(split_sample_hashes(private.train))
    mine |= set(split_sample_hashes(private.test))
    shared = set()
    for modality in sorted(public.modalities):
        hashes = public_sample_hashes(public, modality)
        shared |= {i for i, h in enumerate(hashes) if h in mine}
    return len(shared)


def check_disjoint(
    public: PublicData, private: PrivateData, private_key: str, policy: ClientPolicy
) -> Refusal | None:
    """Refuse a public set that shares samples with the private data (cached).

    ``private_key`` names the private data's content (the data spec and the run
    seed its partition follows): the count is cached per (public fingerprint,
    private key).
    """
    if not policy.disjoint_public:
        return None
    key = (public_fingerprint(public), private_key)
    count = _shared.get(key)
    if count is None:
        count = shared_samples(public, private)
        _shared[key] = count
        while len(_shared) > _CACHE_SIZE:
            _shared.popitem(last=False)
    _shared.move_to_end(key)
    if not count:
        return None
    return Refusal(
        "policy.disjoint-public",
        f"public set {public.name!r} shares {count} of its {len(public)} samples "
        "with this client's private data; their representations would be "
        "per-sample outputs of private data",
    )


def check_pin(public: PublicData, policy: ClientPolicy) -> Refusal | None:
    """Refuse a public set whose fingerprint is not the one the policy pins."""
    pinned = policy.fingerprints.get(public.name)
    if pinned is None:
        return None
    actual = public_fingerprint(public)
    if actual == pinned:
        return None
    return Refusal(
        "policy.fingerprints",
        f"public set {public.name!r} has fingerprint {actual}; this client "
        f"accepts only {pinned}",
    )
