r"""Contrastive alignment losses: Muscle loss and pairwise InfoNCE (docs/method.md §2).

Index letters of the shape comments: B batch (anchor rows i; partner rows j, k),
M partners (m, n), D feature dim (d), T = B^M tuples, K sampled tuples,
P = M(M-1)/2 partner pairs. Muscle logits come from B x B Gram blocks
A[m, i, k] = z_i . z^m_k / tau and G[m, n, j, k] = z^m_j . z^n_k (never a T x D
matrix). The log-partition over the B^M tuples is computed by the kernels of
:mod:`fedmuscle_flwr.method.kernels`: by default in factorised form (one GEMM of B^(M+1)
multiply-adds, B^M exponentials), exact, with the explicit grid as fallback.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedmuscle_flwr.method.kernels.dispatch import (
    METHODS,
    ONLINE_MAX_CELLS,
    SMALL_GRID,
    log_partition,
    single_partner_loss,
    use_fused,
    use_online,
)
from fedmuscle_flwr.method.kernels.muscle_grid import axes, log_alpha_grid
from fedmuscle_flwr.method.kernels.muscle_online import online_muscle_loss
from fedmuscle_flwr.method.kernels.muscle_torch import pair_blocks
from fedmuscle_flwr.method.kernels.muscle_triton import fused_muscle_loss

__all__ = [
    "METHODS",
    "ONLINE_MAX_CELLS",
    "SMALL_GRID",
    "MuscleLoss",
    "PairwiseInfoNCE",
    "build_aggregate",
    "muscle_loss",
    "muscle_loss_from_aggregate",
    "mutual_information_bound",
    "pairwise_infonce",
    "unbiased_sampled_muscle_loss",
]


def _check_taus(tau: float, tau_partners: float | None = None, cap: int = 1) -> float:
    """Validate the settings; return gamma = 1/tau_partners - 1/tau (0 if None)."""
    if cap < 1:
        raise ValueError(f"max_tuples must be >= 1, got {cap}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if tau_partners is None:
        return 0.0
    if not tau_partners > 0:
        raise ValueError(f"tau_partners must be > 0, got {tau_partners}")
    if tau_partners > tau:
        raise ValueError(
            f"tau_partners ({tau_partners}) must be <= tau ({tau}) so that "
            "gamma = 1/tau_partners - 1/tau >= 0 (docs/method.md §2)"
        )
    return 1.0 / tau_partners - 1.0 / tau


def _check_inputs(anchor: Tensor, partners: Tensor) -> None:
    """Validate ``anchor`` (B, D) against ``partners`` (M, B, D)."""
    if anchor.dim() != 2:
        raise ValueError(f"anchor must be 2-D (B, D), got shape {tuple(anchor.shape)}")
    if partners.dim() != 3:
        raise ValueError(f"partners must be 3-D (M, B, D), got {tuple(partners.shape)}")
    if partners.shape[0] == 0 or anchor.shape[0] == 0:
        raise ValueError(f"need M >= 1 partners and B >= 1 rows, got {partners.shape}")
    if partners.shape[1:] != anchor.shape:
        shapes = f"partners {tuple(partners.shape)}, anchor {tuple(anchor.shape)}"
        raise ValueError(f"{shapes} do not match: need (M, B, D) and (B, D)")


def _float_math(*tensors: Tensor) -> list[Tensor]:
    """Cast to the loss dtype: float64 stays, float16/bfloat16/float32 -> float32."""
    dtype = torch.promote_types(tensors[0].dtype, torch.float32)
    return [t.to(dtype) for t in tensors]


def _no_autocast(t: Tensor) -> torch.autocast:
    """Context that keeps autocast from lowering the Gram/logit math to half."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def _grams(anchor: Tensor, partners: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """Anchor-partner logits ``A`` (M, B, B) and partner Grams ``G`` (M, M, B, B)."""
    a = torch.einsum("id,mkd->mik", anchor, partners) / tau  # (M, B, B)
    g = torch.einsum("mjd,nkd->mnjk", partners, partners)  # (M, M, B, B)
    return a, g


def _positive_logits(a: Tensor, g: Tensor, gamma: float) -> Tensor:
    """logit(i; (i, ..., i)) for every anchor row i, shape (B,)."""
    cross = torch.diagonal(pair_blocks(g), dim1=1, dim2=2)  # (P, B): z^m_i . z^n_i
    return torch.diagonal(a, dim1=1, dim2=2).sum(0) - gamma * cross.sum(0)  # (B,)


def muscle_loss(
    anchor: Tensor,
    partners: Tensor,
    tau: float = 0.2,
    tau_partners: float = 0.15,
    *,
    max_tuples: int = 2**26,
    method: str = "auto",
) -> Tensor:
    """Muscle loss of one client, mean over the batch (see :class:`MuscleLoss`).

    Parameters
    ----------
    anchor : Tensor
        (B, D) this client's L2-normalised representations; gradients flow here.
    partners : Tensor
        (M, B, D) partners' L2-normalised representations, same rows; detached.
    tau, tau_partners : float
        tau_N > 0 and tau_{N-1} in (0, tau_N]; gamma = 1/tau_partners - 1/tau.
    max_tuples : int
        Memory bound in elements: the factorised kernel streams W in chunks past
        B^M > max_tuples, the grid kernel past B^(M+1) > max_tuples.
    method : str
        ``"auto"``: on CUDA float32 with triton installed, ``"online"`` up to
        ``ONLINE_MAX_CELLS`` cells; else ``"grid"`` up to ``SMALL_GRID`` cells,
        then ``"factorised"`` (``"triton"`` on CUDA above ``ONLINE_MAX_CELLS``).
        ``"online"``: two Triton launches, online log-sum-exp.
        ``"factorised"``: torch GEMMs (any device). ``"triton"``: fused
        factorised kernel on the tensor cores (split precision, CUDA float32).
        ``"grid"``: the explicit logit grid (reference).
        All are exact; the factorised ones fall back to the grid at extreme
        dynamic ranges (see :mod:`fedmuscle_flwr.method.kernels.muscle_torch`).

    Returns
    -------
    Tensor
        Scalar, float64 for float64 inputs, otherwise float32 (also under autocast).
    """
    gamma = _check_taus(tau, tau_partners, max_tuples)
    _check_inputs(anchor, partners)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with _no_autocast(anchor):
        z, zp = _float_math(anchor, partners.detach())
        if zp.shape[0] == 1 and method == "auto":  # InfoNCE: no tuples, no Grams
            return single_partner_loss(z, zp, tau)
        if use_online(z, zp, method):
            return online_muscle_loss(z, zp, tau, gamma)
        if use_fused(z, zp, method):
            fused = fused_muscle_loss(z, zp, tau, gamma)
            if fused is not None:
                return fused
            method = "factorised"  # float32 underflowed: the exact float64 path
        a, g = _grams(z, zp, tau)  # (M, B, B), (M, M, B, B)
        lse = log_partition(a, g, gamma, max_tuples, method)  # (B,)
        return (lse - _positive_logits(a, g, gamma)).mean()


class MuscleLoss(nn.Module):
    r"""Muscle loss (Setayesh et al., ICLR 2026, arXiv:2602.01626).

    For anchor :math:`z_i^n` and partners :math:`m \in U^n`, :math:`|U^n| = M`,

    .. math::

        \mathcal{L}^n_{\mathrm{Muscle}}(i) = -\log
            \frac{e^{\ell(i; (i, \dots, i))}}{\sum_{j \in [B]^M} e^{\ell(i; j)}},
        \quad \ell(i; j) = \sum_{m \in U^n} \frac{z_i^n \cdot z^m_{j_m}}{\tau_N}
            + \log \alpha_j,
        \quad \log \alpha_j = -\gamma \sum_{m < m'} z^m_{j_m} \cdot z^{m'}_{j_{m'}},
        \quad \gamma = \frac{1}{\tau_{N-1}} - \frac{1}{\tau_N} \ge 0,

    averaged over the batch. :math:`\gamma = 0` gives :math:`\sum_m` InfoNCE.

    Parameters
    ----------
    tau, tau_partners : float
        :math:`\tau_N > 0` and :math:`\tau_{N-1} \in (0, \tau_N]`.
    max_tuples : int
        Memory bound of the kernels (see :func:`muscle_loss`).
    method : str
        Kernel: one of ``METHODS`` (see :func:`muscle_loss`).
    """

    def __init__(
        self,
        tau: float = 0.2,
        tau_partners: float = 0.15,
        max_tuples: int = 2**26,
        method: str = "auto",
    ) -> None:
        super().__init__()
        _check_taus(tau, tau_partners, max_tuples)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.tau, self.tau_partners, self.max_tuples = tau, tau_partners, max_tuples
        self.method = method

    def forward(
        self, anchor: Tensor, partners: Tensor, output_dict: bool = False
    ) -> Tensor | dict[str, Tensor]:
        """Loss of ``anchor`` against ``partners``; gradients flow into anchor only.

        Shape:
            - anchor: (B, D), L2-normalised.
            - partners: (M, B, D), L2-normalised, detached inside.
            - output: scalar; with ``output_dict=True`` a dict with ``muscle_loss``
              and ``mi_lower_bound`` = M log B - loss (detached, docs/method.md §2).
        """
        loss = muscle_loss(
            anchor,
            partners,
            self.tau,
            self.tau_partners,
            max_tuples=self.max_tuples,
            method=self.method,
        )
        if not output_dict:
            return loss
        bound = partners.shape[0] * math.log(anchor.shape[0]) - loss.detach()
        return {"muscle_loss": loss, "mi_lower_bound": bound}


def pairwise_infonce(anchor: Tensor, partners: Tensor, tau: float = 0.2) -> Tensor:
    """Pairwise baseline: sum over partners of one-directional InfoNCE.

    ``-log softmax_j(z_i . z^m_j / tau)`` at ``j = i``, summed over m, mean over i.
    Shapes as in :func:`muscle_loss`; partners are detached.
    """
    _check_taus(tau)
    _check_inputs(anchor, partners)
    with _no_autocast(anchor):
        z, zp = _float_math(anchor, partners.detach())
        logits = torch.einsum("id,mkd->mik", z, zp) / tau  # (M, B, B)
        num_m, b = logits.shape[0], logits.shape[1]
        target = torch.arange(b, device=z.device).repeat(num_m)  # (M*B,)
        return num_m * F.cross_entropy(logits.reshape(num_m * b, b), target)


class PairwiseInfoNCE(nn.Module):
    r"""Pairwise baseline :math:`\sum_{m \in U^n} \mathrm{InfoNCE}_\tau` (γ = 0).

    Parameters
    ----------
    tau : float
        Temperature (> 0).
    """

    def __init__(self, tau: float = 0.2) -> None:
        super().__init__()
        _check_taus(tau)
        self.tau = tau

    def forward(self, anchor: Tensor, partners: Tensor) -> Tensor:
        """Shape: anchor (B, D), partners (M, B, D) -> scalar; grads into anchor."""
        return pairwise_infonce(anchor, partners, self.tau)


def build_aggregate(
    partners: Tensor, tau: float = 0.2, tau_partners: float = 0.15
) -> tuple[Tensor, Tensor]:
    """Build the paper's server downlink S (T, D) and log alpha (T,), T = B^M.

    Row ``t`` is the tuple (j_1, ..., j_M) in row-major order:
    ``S[t] = sum_m z^m_{j_m} / tau`` and ``log_alpha[t]`` as in :class:`MuscleLoss`.
    Built by broadcasting (a loop over the M partners, none over tuples).
    """
    gamma = _check_taus(tau, tau_partners)
    if partners.dim() != 3 or partners.shape[0] == 0 or partners.shape[1] == 0:
        raise ValueError(f"partners must be (M, B, D), M, B >= 1, got {partners.shape}")
    with _no_autocast(partners):
        (zp,) = _float_math(partners.detach())
        num_m, b, d = zp.shape
        s = zp.new_zeros([1] * num_m + [d])  # (1, ..., 1, D)
        for m in range(num_m):
            s = s + zp[m].reshape(*axes(num_m, b, 0, m), d) / tau  # (.., B_m, .., D)
        g = torch.einsum("mjd,nkd->mnjk", zp, zp)  # (M, M, B, B)
        log_alpha = log_alpha_grid(g, gamma, ()).expand([b] * num_m)  # (B, ..., B)
        return s.reshape(b**num_m, d), log_alpha.reshape(b**num_m)


def muscle_loss_from_aggregate(anchor: Tensor, S: Tensor, log_alpha: Tensor) -> Tensor:
    """Muscle loss from the aggregated downlink of :func:`build_aggregate`.

    Shape: anchor (B, D) with gradients; S (B^M, D) and log_alpha (B^M,),
    detached. The positive column of row i is the tuple (i, ..., i), flat index
    ``i (B^M - 1) / (B - 1)``. Returns the scalar mean over the batch.
    """
    if anchor.dim() != 2 or S.dim() != 2 or S.shape[1] != anchor.shape[1]:
        raise ValueError(f"need anchor (B, D), S (T, D); got {anchor.shape}, {S.shape}")
    if log_alpha.shape != (S.shape[0],):
        raise ValueError(f"log_alpha must be ({S.shape[0]},), got {log_alpha.shape}")
    b, t = anchor.shape[0], S.shape[0]
    power = b  # B^M for M = 1, 2, ... until it reaches T
    while 1 < power < t:
        power *= b
    if b < 1 or power != t:
        raise ValueError(f"S has {t} rows, not B^M for batch B = {b} and any M >= 1")
    step = (t - 1) // (b - 1) if b > 1 else 0  # flat index of (1, ..., 1)
    with _no_autocast(anchor):
        z, s, la = _float_math(anchor, S.detach(), log_alpha.detach())
        logits = z @ s.T + la  # (B, T)
        target = torch.arange(b, device=z.device) * step  # (B,)
        return F.cross_entropy(logits, target)


def mutual_information_bound(loss: float, num_partners: int, batch_size: int) -> float:
    """Lower bound on I(z_i^n; {z_i^m}): M log B - loss (docs/method.md §2 Theorem)."""
    if num_partners < 1 or batch_size < 1:
        raise ValueError(f"need M, B >= 1, got M={num_partners}, B={batch_size}")
    return num_partners * math.log(batch_size) - loss


def unbiased_sampled_muscle_loss(
    anchor: Tensor,
    partners: Tensor,
    tau: float = 0.2,
    tau_partners: float = 0.15,
    num_samples: int = 1024,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Estimate the Muscle loss by sampling tuples, for M beyond exact reach (ours).

    Draws K tuples uniformly from :math:`[B]^M` (shared by the batch) and uses
    :math:`\hat Z_i = e^{\ell(i; i..i)} + \frac{B^M}{K} \sum_k e^{\ell(i; j_k)}
    1[j_k \ne (i..i)]`, an unbiased estimate of the partition function
    :math:`Z_i = \sum_j e^{\ell(i; j)}` (the positive is always counted once,
    exactly). The loss :math:`\log \hat Z_i - \ell(i; i..i)` is then consistent
    as K grows, and biased low for finite K (Jensen: E log Z^ <= log Z).
    Shapes and gradients as in :func:`muscle_loss`.
    """
    gamma = _check_taus(tau, tau_partners)
    _check_inputs(anchor, partners)
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    with _no_autocast(anchor):
        z, zp = _float_math(anchor, partners.detach())
        a, g = _grams(z, zp, tau)  # (M, B, B), (M, M, B, B)
        (num_m, b), dev = a.shape[:2], a.device
        j = torch.randint(b, (num_samples, num_m), generator=generator, device=dev)
        ms = torch.arange(num_m, device=dev)[:, None]  # (M, 1)
        cells = a[ms, :, j.T].sum(0).T  # (M, K, B) -> (B, K): sum_m A[m, i, j_km]
        pm, pn = torch.triu_indices(num_m, num_m, 1, device=dev)[:, :, None]  # (P, 1)
        cells = cells - gamma * g[pm, pn, j.T[pm[:, 0]], j.T[pn[:, 0]]].sum(0)  # + (K,)
        is_pos = (j == torch.arange(b, device=dev)[:, None, None]).all(-1)  # (B, K)
        cells = cells.masked_fill(is_pos, torch.finfo(cells.dtype).min)
        log_neg = num_m * math.log(b) - math.log(num_samples) + cells.logsumexp(1)
        pos = _positive_logits(a, g, gamma)  # (B,)
        return (torch.logaddexp(pos, log_neg) - pos).mean()
