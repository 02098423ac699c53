"""The 2-d Gaussian posterior that every estimator outputs: parameter space, likelihood, ensemble merge.

The posterior is over (Omega_m, S8), S8 = sigma_8 sqrt(Omega_m / 0.3), scaled to the prior box
(:class:`ParameterSpace`: u in [-1, 1]^2 over the box): a mean and a Cholesky factor
``L = [[exp(a), 0], [b, exp(c)]]`` of its covariance, trained with the Gaussian negative log
likelihood :func:`gaussian_nll` (S8 rather than sigma_8 because lensing constrains S8: the
posterior is close to Gaussian there, and banana-shaped in (Omega_m, sigma_8); sigma_8's mean and
variance follow by the delta method, :mod:`.metrics`).  :func:`mean_cov` turns raw outputs (n, 5)
into means and covariances; :func:`mixture_moments` merges the Gaussians of an ensemble's members into
one, :func:`ensemble_moments` does both for every split of an ensemble's raw outputs (graph networks and
summary-statistic MLPs alike).
"""
from __future__ import annotations

import numpy as np
import torch

from ...datasets.cosmo_grid import CosmoGridConfig, s8

__all__ = ["ParameterSpace", "gaussian_nll", "mean_cov", "mixture_moments", "ensemble_moments"]


class ParameterSpace:
    """Map (Omega_m, sigma_8) to standardised u = ((Omega_m - c_m) / h_m, (S8 - c_s) / h_s) over the prior box."""

    def __init__(self, grid: CosmoGridConfig):
        (om0, om1), (s0, s1) = grid.omega_m_range, grid.sigma8_range
        corners = s8(np.array([om0, om0, om1, om1]), np.array([s0, s1, s0, s1]))
        self.centre = np.array([(om0 + om1) / 2, (corners.min() + corners.max()) / 2])
        self.half = np.array([(om1 - om0) / 2, (corners.max() - corners.min()) / 2])

    def to_u(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        phys = np.stack([theta[..., 0], s8(theta[..., 0], theta[..., 1])], -1)
        return (phys - self.centre) / self.half

    def from_u(self, mean_u: np.ndarray, cov_u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean (n, 2), cov (n, 2, 2)) in (Omega_m, S8)."""
        return mean_u * self.half + self.centre, cov_u * np.outer(self.half, self.half)


def _cholesky(out: torch.Tensor):
    mu = out[:, :2]
    a, b, c = out[:, 2].clamp(-10, 5), out[:, 3], out[:, 4].clamp(-10, 5)
    return mu, a, b, c


def gaussian_nll(out: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative log likelihood (up to log 2 pi) of ``target`` (B, 2) under N(mu, L L^T).

    out (B, 5): mu (2), a, b, c with ``L = [[exp(a), 0], [b, exp(c)]]``; the log-scales are
    clamped to [-10, 5].  reduction: "mean", "sum" or "none".
    """
    if out.dim() != 2 or out.shape[1] != 5 or target.shape != (out.shape[0], 2):
        raise ValueError(f"need outputs (B, 5) and targets (B, 2), got {tuple(out.shape)} and {tuple(target.shape)}")
    mu, a, b, c = _cholesky(out)
    d = target - mu
    z1 = d[:, 0] * torch.exp(-a)
    z2 = (d[:, 1] - b * z1) * torch.exp(-c)
    nll = 0.5 * (z1.square() + z2.square()) + a + c
    if reduction == "none":
        return nll
    return nll.sum() if reduction == "sum" else nll.mean()


def mean_cov(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means (n, 2) and covariances ``L L^T`` (n, 2, 2) in u-space of raw outputs (n, 5) (float64; log-scales
    clamped as in :func:`gaussian_nll`)."""
    mu, a, b, c = (t.numpy() for t in _cholesky(torch.as_tensor(out, dtype=torch.float64)))
    L = np.zeros((len(mu), 2, 2))
    L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = np.exp(a), b, np.exp(c)
    return mu, L @ np.swapaxes(L, 1, 2)


def mixture_moments(means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (n, d) and covariance (n, d, d) of the equal-weight mixture of M Gaussians per sample,
    means (M, n, d), covs (M, n, d, d): ``mean = avg_i mu_i``, ``cov = avg_i C_i + avg_i (mu_i - mean)(mu_i - mean)^T``
    (the moment-matched Gaussian of a deep ensemble; M = 1 returns the inputs unchanged)."""
    means, covs = np.asarray(means, dtype=np.float64), np.asarray(covs, dtype=np.float64)
    if means.ndim != 3 or covs.shape != means.shape + means.shape[-1:] or len(means) == 0:
        raise ValueError(f"need means (M, n, d) and covs (M, n, d, d), got {means.shape} and {covs.shape}")
    if len(means) == 1:
        return means[0], covs[0]
    mean = means.mean(0)
    d = means - mean
    return mean, covs.mean(0) + np.einsum("mni,mnj->nij", d, d) / len(means)


def ensemble_moments(outs: list[dict]) -> tuple[list[dict], dict]:
    """The Gaussians in u-space of an ensemble's members and of the ensemble, from the members' raw outputs
    ``outs`` (one {split: (n, 5)} per member, the same splits and samples): (per member {split: (mean (n, 2),
    cov (n, 2, 2))} by :func:`mean_cov`, the ensemble's {split: (mean, cov)} by :func:`mixture_moments`).  The
    one combination of every method's members (graph networks, MLPs); one member: the ensemble is that member,
    bit for bit."""
    if not outs:
        raise ValueError("an ensemble needs at least one member's outputs")
    per_member = [{split: mean_cov(o) for split, o in out.items()} for out in outs]
    return per_member, {split: mixture_moments(np.stack([m[split][0] for m in per_member]),
                                               np.stack([m[split][1] for m in per_member])) for split in per_member[0]}
