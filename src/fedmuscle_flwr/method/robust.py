"""Poisoning defence: screen each round's uploaded representations (no Flower).

The server only ever sees every client's representations Z^n (K, B, d) of the
*same* public batches, so the evidence against a client is how its
representations relate to everybody else's. Each detector below turns the bank
into one statistic per client; a client is flagged when it is an outlier with
respect to the others and it is then excluded from partners for the rest of the
round (docs/method.md §3 step 2b), which the strategy logs and counts.

Detectors (registry :data:`DETECTORS`, chosen and ordered by ``robust.detectors``;
each runs on the clients that the earlier ones did not flag):

``gram``
    Agreement of Gram matrices: G^n = Z^n Z^nᵀ (B, B) says which public samples
    client n finds similar; any sensible encoder of the same images agrees with
    the others on that, whatever its architecture and even before any alignment.
    a_nm = Pearson correlation of the off-diagonal entries of G^n and G^m, mean
    over the K batches. Catches random, permuted (rows shuffled) and collapsed
    representations. Blind to a sign flip (G^{-Z} = G^Z) and to rotations.
``alignment``
    Cross-client alignment of matching rows: c_nm = mean_i z_i^n·z_i^m −
    mean_{i≠j} z_i^n·z_j^m. Once the honest clients are aligned (c > 0), a
    negated client has c < 0. Only *anti*-alignment is flagged (the outlier
    rule below and s_n < −``min-ratio`` · center): a client that is merely not
    aligned yet (c ≈ 0: an honest late joiner, or one that fell behind) must
    stay a partner, since a quarantined client gets no partners to align to
    and would stay unaligned, and flagged, for good. Before alignment every
    c ≈ 0 and nobody is flagged.
``collapse``
    Mean cosine between distinct rows of one client above ``collapse-cosine``
    (all rows (nearly) equal): absolute rule.
``norm``
    Mean row norm off 1 by more than ``norm-tolerance`` (scaled rows): absolute
    rule. The codec already rejects non-unit rows on the wire; this detector
    keeps the screen self-contained.

Robust statistics for ``gram`` and ``alignment`` (leave-one-out, so that the
suspect cannot shift its own reference): client n's score is the median of its
pairwise values with the others, s_n = median_m a_nm; its reference is the set
of pairwise values among the *other* clients, with center = median and scale =
max(1.4826 · MAD, ``mad-floor``, sampling error) where the sampling error of a
correlation over the K·B(B−1)/2 Gram entries is 1/√(K·B(B−1)/2) (small
batches give noisy agreements). n is flagged when z_n = (s_n − center)/scale
< −``z-threshold`` **and** s_n < ``min-ratio`` · center with center > 0 (a
significant and a large drop; no basis when the others do not agree either).
This needs a majority of honest clients and at least ``min-clients`` (≥ 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedmuscle_flwr.config.run import DETECTOR_NAMES, RobustConfig

#: node -> (K, B, d) representations of the round's public batches
Bank = Mapping[int, np.ndarray]
#: 1.4826 · MAD estimates σ for normal data
_MAD_TO_SIGMA = 1.4826
#: a Gram vector with a smaller spread than this is constant (collapsed rows)
_FLAT = 1e-6


@dataclass(frozen=True)
class Finding:
    """One client flagged by one detector."""

    node: int
    detector: str
    score: float  # the client's statistic
    reference: float  # the same statistic among the others (median)
    z: float = math.nan  # robust z-score; nan for the absolute rules

    def describe(self) -> str:
        """Human-readable reason for the log."""
        what = _WHAT[self.detector]
        text = f"{what} {self.score:.3g} vs {self.reference:.3g} among the others"
        return text if math.isnan(self.z) else f"{text} (z={self.z:.1f})"


_WHAT = {
    "gram": "Gram-matrix agreement",
    "alignment": "alignment with the others' matching rows",
    "collapse": "mean cosine between distinct rows",
    "norm": "mean row norm",
}

Detector = Callable[[Sequence[int], np.ndarray, "RobustConfig"], list[Finding]]


# ---------------------------------------------------------------- statistics
def _stack(bank: Bank, nodes: Sequence[int]) -> np.ndarray:
    """(N, K, B, d) float64 in ``nodes`` order."""
    return np.stack([np.asarray(bank[n], dtype=np.float64) for n in nodes])


def _offdiag_grams(z: np.ndarray) -> np.ndarray:
    """Upper off-diagonal Gram entries: z (N, K, B, d) -> (N, K, B(B-1)/2)."""
    b = z.shape[2]
    grams = z @ z.swapaxes(-1, -2)  # (N, K, B, B)
    iu, ju = np.triu_indices(b, k=1)
    return grams[:, :, iu, ju]  # (N, K, P)


def gram_agreement(z: np.ndarray) -> np.ndarray:
    """a_nm: mean over batches of corr(offdiag G^n, offdiag G^m); (N, N).

    A constant Gram vector (collapsed rows) correlates 0 with everything.
    """
    g = _offdiag_grams(z)  # (N, K, P)
    g = g - g.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(g, axis=-1, keepdims=True)  # (N, K, 1)
    flat = norm < _FLAT * math.sqrt(g.shape[-1])
    g = np.where(flat, 0.0, g / np.where(flat, 1.0, norm)).swapaxes(0, 1)  # (K, N, P)
    return (g @ g.swapaxes(-1, -2)).mean(axis=0)  # (K, N, N) -> (N, N)


def cross_alignment(z: np.ndarray) -> np.ndarray:
    """c_nm: matching-row minus non-matching-row similarity, batch mean; (N, N)."""
    n, k, b, d = z.shape
    rows = z.swapaxes(0, 1).reshape(k, n, b * d)  # (K, N, B·d)
    matching = rows @ rows.swapaxes(-1, -2)  # (K, N, N): sum_i z_i^n.z_i^m
    sums = z.sum(axis=2).swapaxes(0, 1)  # (K, N, d)
    every = sums @ sums.swapaxes(-1, -2)  # (K, N, N): sum_ij z_i^n.z_j^m
    off = (every - matching) / (b * (b - 1))  # (K, N, N)
    return (matching / b - off).mean(axis=0)  # (N, N)


def loo_outliers(
    nodes: Sequence[int],
    pairwise: np.ndarray,
    cfg: RobustConfig,
    detector: str,
    floor: float = 0.0,
) -> list[Finding]:
    """Leave-one-out robust outliers of a symmetric (N, N) statistic (low side).

    ``floor`` is a lower bound on the scale besides ``robust.mad-floor``.
    """
    n = len(nodes)
    rows, cols = np.triu_indices(n, k=1)
    pairs = pairwise[rows, cols]  # (N(N-1)/2,)
    found = []
    for i in range(n):
        score = float(np.median(np.delete(pairwise[i], i)))
        ref = pairs[(rows != i) & (cols != i)]  # pairs among the others
        center = float(np.median(ref))
        mad = float(np.median(np.abs(ref - center)))
        scale = max(_MAD_TO_SIGMA * mad, cfg.mad_floor, floor)
        z = (score - center) / scale
        if center > 0 and z < -cfg.z_threshold and score < cfg.min_ratio * center:
            found.append(Finding(nodes[i], detector, score, center, z))
    return found


# ----------------------------------------------------------------- detectors
def _gram(nodes: Sequence[int], z: np.ndarray, cfg: RobustConfig) -> list[Finding]:
    _, k, b, _ = z.shape
    sampling = 1.0 / math.sqrt(k * b * (b - 1) / 2)  # s.e. of a correlation
    return loo_outliers(nodes, gram_agreement(z), cfg, "gram", sampling)


def _alignment(nodes: Sequence[int], z: np.ndarray, cfg: RobustConfig) -> list[Finding]:
    found = loo_outliers(nodes, cross_alignment(z), cfg, "alignment")
    return [f for f in found if f.score < -cfg.min_ratio * f.reference]


def _collapse(nodes: Sequence[int], z: np.ndarray, cfg: RobustConfig) -> list[Finding]:
    cos = _offdiag_grams(z).mean(axis=(1, 2))  # (N,)
    return [
        Finding(node, "collapse", float(cos[i]), float(np.median(np.delete(cos, i))))
        for i, node in enumerate(nodes)
        if cos[i] > cfg.collapse_cosine
    ]


def _norm(nodes: Sequence[int], z: np.ndarray, cfg: RobustConfig) -> list[Finding]:
    norms = np.linalg.norm(z, axis=-1).mean(axis=(1, 2))  # (N,)
    return [
        Finding(node, "norm", float(norms[i]), float(np.median(np.delete(norms, i))))
        for i, node in enumerate(nodes)
        if abs(norms[i] - 1.0) > cfg.norm_tolerance
    ]


#: detectors by name (``robust.detectors``); add one here, never an elif
DETECTORS: dict[str, Detector] = {
    "gram": _gram,
    "alignment": _alignment,
    "collapse": _collapse,
    "norm": _norm,
}
# the config validates names against its list, so the two must agree
assert set(DETECTORS) == set(DETECTOR_NAMES), "config.run.DETECTOR_NAMES is stale"


def detector_names(cfg: RobustConfig) -> list[str]:
    """The detectors ``cfg`` selects, in the order given."""
    return [name.strip() for name in cfg.detectors.split(",") if name.strip()]


def screen(bank: Bank, cfg: RobustConfig) -> list[Finding]:
    """All findings of the selected detectors on ``bank`` (node -> (K, B, d)).

    Detectors run in the configured order, each on the clients no earlier one
    flagged, so that e.g. a scaled client cannot inflate the references of the
    relative detectors; none runs on fewer than ``min-clients`` clients. All
    arrays have one shape: the protocol validated them against the round's.
    """
    findings: list[Finding] = []
    if not cfg.enabled:
        return findings
    nodes = sorted(bank)
    for name in detector_names(cfg):
        if len(nodes) < cfg.min_clients:
            break
        found = DETECTORS[name](nodes, _stack(bank, nodes), cfg)  # z (N, K, B, d)
        findings += found
        nodes = [n for n in nodes if n not in {f.node for f in found}]
    return findings


__all__ = [
    "DETECTORS",
    "Finding",
    "cross_alignment",
    "gram_agreement",
    "loo_outliers",
    "screen",
]
