"""The public set against the client's private data (issue 23): the attack of the
issue (a "public" set made of the client's own files) is found by content; a real
held-out public set shares nothing; the policy's fingerprint pin."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.clientapp.disjoint import check_disjoint, check_pin, shared_samples
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.policy import ClientPolicy
from fedmuscle_flwr.data.fingerprint import public_fingerprint
from fedmuscle_flwr.data.registry import load_private, load_public

SMALL = {"data.max-train": 200, "data.max-test": 200}


@pytest.mark.parametrize(
    ("profile", "public"),
    [("mnist5k-cnn", "mnist-5k-public"), ("digits-resnet", "digits-public")],
)
def test_a_public_set_of_the_clients_own_files_is_refused(profile, public):
    spec = load_profile(profile, SMALL).data
    private, pub = load_private(spec), load_public(public, 400)
    assert shared_samples(pub, private) > 0
    refusal = check_disjoint(pub, private, spec.model_dump_json(), ClientPolicy())
    assert refusal is not None and refusal.rule == "policy.disjoint-public"
    assert f"public set {public!r} shares" in refusal.reason
    # the open policy (one operator owns every client) does not check
    assert (
        check_disjoint(pub, private, spec.model_dump_json(), ClientPolicy.open())
        is None
    )


def test_the_held_out_public_set_shares_nothing():
    spec = load_profile("fmnist-cnn", SMALL).data
    private = load_private(spec)
    pub = load_public("fashion-mnist-heldout", 400)
    assert shared_samples(pub, private) == 0
    assert check_disjoint(pub, private, spec.model_dump_json(), ClientPolicy()) is None


def test_fingerprint_pin():
    pub = load_public("digits-public", 100)
    right = ClientPolicy(fingerprints={"digits-public": public_fingerprint(pub)})
    wrong = ClientPolicy(fingerprints={"digits-public": "pub1-100-000"})
    other = ClientPolicy(fingerprints={"fashion-mnist-heldout": "pub1-1-0"})
    assert check_pin(pub, right) is None and check_pin(pub, other) is None
    refusal = check_pin(pub, wrong)
    assert refusal is not None and refusal.rule == "policy.fingerprints"
    assert public_fingerprint(pub) in refusal.reason
