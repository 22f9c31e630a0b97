"""The client policy schema (issue 23): safe defaults, strict keys, one clear error
per bad value, the policy file, and the rosters' opt-in."""

from __future__ import annotations

import pytest

from fedmuscle_flwr.config.files import (
    list_entries,
    load_policy,
    load_profile,
    load_roster,
    profiles_root,
    resolve_profile,
)
from fedmuscle_flwr.config.policy import UPLOAD_KINDS, ClientPolicy
from fedmuscle_flwr.config.schema import ConfigError


def test_defaults_are_the_safe_ones():
    policy = load_profile("fmnist-cnn").policy  # no [policy] in the profile
    assert policy == ClientPolicy()
    assert policy.uploads == ("representation",)  # logits, weights: opt-in
    assert policy.algorithms == () and policy.public_sets == ()
    assert policy.disjoint_public
    assert policy.privacy.min_noise == 0.0
    assert policy.caps.keep_runs == 3


def test_open_policy_accepts_every_upload_and_skips_disjointness():
    policy = ClientPolicy.open()
    assert policy.uploads == UPLOAD_KINDS
    assert not policy.disjoint_public
    safe = ClientPolicy().caps
    assert policy.caps.dim == safe.dim and policy.caps.reply_mb == safe.reply_mb
    assert policy.caps.keep_runs == 1000  # a simulation may resume any run


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"uploads": ["gradients"]}, "uploads.0"),
        ({"uploads": []}, "at least one upload kind"),
        ({"unknown": 1}, "unknown"),
        ({"caps": {"dim": 0}}, "caps.dim"),
        ({"caps": {"reply-mb": -1}}, "caps.reply-mb"),
        ({"caps": {"keep-runs": 0}}, "caps.keep-runs"),
        ({"caps": {"d": 8}}, "caps.d"),  # a typo is refused, not ignored
        ({"privacy": {"min-noise": -0.5}}, "privacy.min-noise"),
        ({"privacy": {"min-noise": float("nan")}}, "privacy.min-noise"),
        ({"privacy": {"max-clip": 0}}, "privacy.max-clip"),
        ({"fingerprints": {"fashion-mnist-heldout": " "}}, "empty name or fingerprint"),
        ({"disjoint-public": "maybe"}, "disjoint-public"),
    ],
)
def test_every_bad_value_is_named(data, needle):
    with pytest.raises(ConfigError, match="client policy") as err:
        ClientPolicy.from_mapping(data, source="test.toml")
    assert needle in str(err.value)


def test_profile_override_and_policy_file(tmp_path):
    # Prepare: a policy file with a [policy] table, one with top-level keys
    table = tmp_path / "policy.toml"
    table.write_text('[policy]\nuploads = ["representation", "logits"]\n')
    flat = tmp_path / "flat.toml"
    flat.write_text('algorithms = ["fedmuscle"]\n[caps]\ndim = 64\n')
    # Execute / Assert: --set style override, then the files via node config
    over = load_profile("fmnist-cnn", {"policy.caps.dim": 128})
    assert over.policy.caps.dim == 128
    assert load_policy(table).uploads == ("representation", "logits")
    node = {"profile": "fmnist-cnn", "policy": str(flat)}
    profile = resolve_profile(node, "default")
    assert profile.policy.algorithms == ("fedmuscle",)
    assert profile.policy.caps.dim == 64
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nuploads = ["weights"]\nextra = 1\n')
    with pytest.raises(ConfigError, match="extra"):
        load_policy(bad)


def test_shipped_rosters_opt_in_explicitly_and_profiles_mode_keeps_policies(tmp_path):
    for name in list_entries("clients/rosters"):
        text = (profiles_root() / "clients" / "rosters" / f"{name}.toml").read_text()
        assert 'policy = "open"' in text, name  # said in the file, not implied
        assert all(p.policy == ClientPolicy.open() for p in load_roster(name))
    roster = tmp_path / "strict.toml"
    roster.write_text('policy = "profiles"\n[[clients]]\nprofile = "fmnist-cnn"\n')
    (profile,) = load_roster(str(roster))
    assert profile.policy == ClientPolicy()
    typo = tmp_path / "typo.toml"  # (load_roster caches by name)
    typo.write_text('policy = "trusting"\n[[clients]]\nprofile = "fmnist-cnn"\n')
    with pytest.raises(ConfigError, match="policy"):
        load_roster(str(typo))
