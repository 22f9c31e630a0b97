"""Poisoning screen (robust.py): each attack is flagged, honest clients are not."""

import numpy as np
import pytest

from fedmuscle_flwr.config.run import RobustConfig, RunConfig
from fedmuscle_flwr.config.schema import ConfigError
from fedmuscle_flwr.method import robust

CFG = RobustConfig(enabled=True)
K, B, D, D0 = 4, 16, 32, 12


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def honest_bank(n, seed, aligned):
    """n clients encoding the same latent public batch X (K, B, D0).

    Unaligned: each client has its own random map (different architectures at
    initialisation: same similarity structure, unrelated coordinates). Aligned:
    one shared map plus client noise (after FedMuscle rounds).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((K, B, D0))
    shared = rng.standard_normal((D0, D))
    bank = {}
    for i in range(n):
        w = shared if aligned else rng.standard_normal((D0, D))
        bank[100 + i] = unit(x @ w + 0.3 * rng.standard_normal((K, B, D)))
    return bank


ATTACKS = {
    "random": lambda z, rng: unit(rng.standard_normal(z.shape)),
    "permuted": lambda z, rng: z[:, rng.permutation(z.shape[1])],
    "collapsed": lambda z, rng: np.broadcast_to(z[:, :1], z.shape).copy(),
    "scaled": lambda z, rng: 3.0 * z,
    "negated": lambda z, rng: -z,
}


def attacked(n_honest, attack, seed, aligned=True):
    bank = honest_bank(n_honest + 1, seed, aligned)
    rng = np.random.default_rng(seed + 1000)
    bad = max(bank)
    bank[bad] = ATTACKS[attack](bank[bad], rng)
    return bank, bad


@pytest.mark.parametrize("n_honest", [2, 3, 9])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_is_flagged_and_only_the_attacker(attack, n_honest):
    for seed in range(5):
        bank, bad = attacked(n_honest, attack, seed)
        flagged = {f.node for f in robust.screen(bank, CFG)}
        assert flagged == {bad}, (attack, seed, robust.screen(bank, CFG))


def test_which_detector_sees_what():
    # Prepare
    by_attack = {}
    for attack in ATTACKS:
        bank, bad = attacked(3, attack, seed=1)
        by_attack[attack] = {f.detector for f in robust.screen(bank, CFG)}
    # Assert: a sign flip keeps the Gram matrix; only alignment sees it
    assert by_attack["negated"] == {"alignment"}
    assert "gram" in by_attack["random"] and "gram" in by_attack["permuted"]
    assert "collapse" in by_attack["collapsed"]
    assert by_attack["scaled"] == {"norm"}


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("n", [3, 4, 10])
def test_honest_clients_are_never_flagged(n, aligned):
    for seed in range(20):
        assert robust.screen(honest_bank(n, seed, aligned), CFG) == []


def test_unaligned_federation_random_attacker_flagged_negation_not():
    # Before any alignment the coordinates are unrelated: the Gram matrices
    # still agree (a random client is caught), the sign of a client is not
    # observable yet (nobody flagged, by design: center <= 0 gives no basis).
    bank, bad = attacked(3, "random", seed=2, aligned=False)
    assert {f.node for f in robust.screen(bank, CFG)} == {bad}
    bank, _ = attacked(3, "negated", seed=2, aligned=False)
    assert robust.screen(bank, CFG) == []


def test_too_few_clients_or_disabled_means_no_screen():
    bank, _ = attacked(1, "random", seed=0)  # 2 clients: who is the odd one?
    assert robust.screen(bank, CFG) == []
    bank, _ = attacked(3, "random", seed=0)
    assert robust.screen(bank, CFG.model_copy(update={"enabled": False})) == []
    only_norm = RobustConfig(enabled=True, detectors="norm")
    assert robust.screen(bank, only_norm) == []


def test_statistics_on_known_inputs():
    bank = honest_bank(3, 0, aligned=True)
    z = np.stack([bank[n] for n in sorted(bank)])
    gram = robust.gram_agreement(z)
    np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-12)
    np.testing.assert_allclose(gram, gram.T, atol=1e-12)
    neg = z.copy()
    neg[0] *= -1
    np.testing.assert_allclose(robust.gram_agreement(neg), gram, atol=1e-12)
    cross = robust.cross_alignment(z)
    cross_neg = robust.cross_alignment(neg)
    assert cross[0, 1] > 0.3 and cross_neg[0, 1] == pytest.approx(-cross[0, 1])
    collapsed = z.copy()
    collapsed[0] = collapsed[0][:, :1]
    assert robust.gram_agreement(collapsed)[0, 1] == 0.0


def test_findings_describe_the_evidence():
    bank, bad = attacked(3, "random", seed=3)
    (finding,) = [f for f in robust.screen(bank, CFG) if f.detector == "gram"]
    assert finding.node == bad and finding.z < -CFG.z_threshold
    assert "Gram-matrix agreement" in finding.describe() and "z=" in finding.describe()


def test_config_names_unknown_detectors():
    with pytest.raises(ConfigError, match=r"robust.*detectors.*'nope'"):
        RunConfig.from_flat({"robust.detectors": "gram,nope"})
    with pytest.raises(ConfigError, match=r"robust.min-clients"):
        RunConfig.from_flat({"robust.min-clients": 2})


def test_unaligned_newcomer_stays_a_partner_negated_one_does_not():
    # Prepare: 4 aligned honest clients; a 5th has the same similarity
    # structure in unrelated coordinates (a random rotation: an honest late
    # joiner, c ≈ 0 with everybody)
    for seed in range(10):
        bank = honest_bank(4, seed, aligned=True)
        rng = np.random.default_rng(seed + 500)
        rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
        newcomer = dict(bank)
        newcomer[200] = bank[max(bank)] @ rotation
        # Execute + Assert: an outlier of c (the old rule flagged it, and,
        # quarantined, it could never align), but not anti-aligned: not flagged
        z = np.stack([newcomer[n] for n in sorted(newcomer)])
        outliers = robust.loo_outliers(
            sorted(newcomer), robust.cross_alignment(z), CFG, "alignment"
        )
        assert 200 in {f.node for f in outliers}
        assert robust.screen(newcomer, CFG) == []
        negated = dict(bank)
        negated[200] = -bank[max(bank)]
        assert {f.node for f in robust.screen(negated, CFG)} == {200}
