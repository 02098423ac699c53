"""Fisher forecast of the tomographic power-spectrum analysis of :mod:`deepsphere_gen.experiments.cosmo`.

What the band powers of the pipeline can constrain at best, if their likelihood were Gaussian
with the Gaussian (Knox) covariance: the yardstick that tells whether the power-spectrum
network is near-optimal.  Ingredients, all those of the pipeline:

- data vector: band averages of every auto and cross spectrum C^ij_l (i <= j, row-major as
  :class:`~deepsphere_gen.datasets.pseudo_cl.PseudoCl` orders them) over the bands of the
  footprint (``PseudoCl``'s default edges, l = dl .. 2 nside);
- theory: pyccl spectra (:func:`~deepsphere_gen.datasets.tomography.tomographic_cl`);
  derivatives in (Omega_m, sigma_8) by central finite differences, turned into (Omega_m, S8)
  with S8 = sigma_8 sqrt(Omega_m / 0.3) by the chain rule at the fiducial;
- covariance (:func:`knox_covariance`), per band of width dl:
  ``Cov[C^ij_b, C^kl_b] = 1/dl^2 sum_{l in b} (C^ik_l C^jl_l + C^il_l C^jk_l) / ((2l+1) f_sky)``
  with the shape noise ``N_i = sigma_pix,i^2 Omega_pix`` (white, the per-pixel noise std of
  bin i times the pixel solid angle) added to the auto spectra, bands uncorrelated.

Marginal errors are ``sqrt(diag(F^-1))``; ``*_with_box_prior`` adds a Gaussian prior of the
flat prior box's standard deviations (range / sqrt 12 in Omega_m and sigma_8), since the
networks are trained inside that box.  Caveats (why the forecast is a lower bound for this
data): the covariance ignores the non-Gaussian (log-normal) and mode-coupling (edges, holes)
contributions, and the band powers here are plain band averages of the theory.  Cost: 5
pyccl evaluations of n_bins (n_bins + 1) / 2 spectra (a few seconds).
"""
from __future__ import annotations

import math

import healpy as hp
import numpy as np

from ...datasets import Cosmology
from ...datasets.cosmo_grid import CosmoGridConfig, footprint_mask, s8
from ...datasets.pseudo_cl import default_bin_edges
from ...datasets.tomography import tomographic_cl

__all__ = ["band_average", "knox_covariance", "fisher_matrix", "marginal_errors", "power_spectrum_forecast"]


def _pairs(n_bins: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n_bins) for j in range(i, n_bins)]


def _check_edges(edges, lmax: int) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.int64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0 or edges[-1] > lmax + 1:
        raise ValueError(f"band edges must increase within [0, {lmax + 1}], got {edges}")
    return edges


def band_average(cl: np.ndarray, edges) -> np.ndarray:
    """Band averages of spectra (n_bins, n_bins, lmax+1): (n_pairs * n_bands,), pairs i <= j row-major,
    bands ``edges[b] <= l < edges[b+1]`` (the data vector of :func:`knox_covariance`)."""
    cl = np.asarray(cl, dtype=np.float64)
    edges = _check_edges(edges, cl.shape[-1] - 1)
    return np.concatenate([[cl[i, j, lo:hi].mean() for lo, hi in zip(edges[:-1], edges[1:])]
                           for i, j in _pairs(cl.shape[0])])


def knox_covariance(cl_total: np.ndarray, edges, fsky: float) -> np.ndarray:
    """Gaussian covariance of the band averages of every auto and cross spectrum.

    cl_total: (n_bins, n_bins, lmax+1) spectra including noise (symmetric); edges: band edges;
    fsky: observed sky fraction in (0, 1].  Returns (n_pairs * n_bands, n_pairs * n_bands) in the
    order of :func:`band_average` (bands are uncorrelated: block structure).
    """
    cl = np.asarray(cl_total, dtype=np.float64)
    if cl.ndim != 3 or cl.shape[0] != cl.shape[1]:
        raise ValueError(f"cl_total must be (n_bins, n_bins, lmax+1), got {cl.shape}")
    if not 0 < fsky <= 1:
        raise ValueError(f"fsky must lie in (0, 1], got {fsky}")
    edges = _check_edges(edges, cl.shape[-1] - 1)
    pairs, nb = _pairs(cl.shape[0]), edges.size - 1
    ell = np.arange(cl.shape[-1])
    cov = np.zeros((len(pairs) * nb, len(pairs) * nb))
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        modes = (2 * ell[lo:hi] + 1) * fsky
        c = cl[..., lo:hi]
        for p, (i, j) in enumerate(pairs):
            for q, (k, m) in enumerate(pairs):
                v = np.sum((c[i, k] * c[j, m] + c[i, m] * c[j, k]) / modes) / (hi - lo) ** 2
                cov[p * nb + b, q * nb + b] = v
    return cov


def fisher_matrix(derivatives: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``F = D C^-1 D^T`` of data derivatives D (n_params, n_data) and covariance C (n_data, n_data)."""
    d = np.atleast_2d(np.asarray(derivatives, dtype=np.float64))
    if cov.shape != (d.shape[1], d.shape[1]):
        raise ValueError(f"derivatives (n_params, {d.shape[1]}) need a ({d.shape[1]}, {d.shape[1]}) covariance, "
                         f"got {cov.shape}")
    return d @ np.linalg.solve(cov, d.T)


def marginal_errors(fisher: np.ndarray, prior_std=None) -> np.ndarray:
    """sqrt(diag((F + diag(1 / prior_std^2))^-1)) (no prior: ``prior_std`` None)."""
    f = np.array(fisher, dtype=np.float64)
    if prior_std is not None:
        f = f + np.diag(1.0 / np.asarray(prior_std, dtype=np.float64) ** 2)
    return np.sqrt(np.diag(np.linalg.inv(f)))


def _theory(grid: CosmoGridConfig, omega_m: float, sigma8: float, lmax: int) -> np.ndarray:
    return np.asarray(tomographic_cl(Cosmology(omega_m, sigma8), grid.n_bins, lmax))


def power_spectrum_forecast(grid: CosmoGridConfig, noise_std, mask: np.ndarray | None = None, edges=None,
                            step: float = 0.01) -> dict:
    """Fisher forecast of (Omega_m, S8) from the tomographic band powers at ``grid.fiducial``.

    noise_std: per-bin pixel noise std (n_bins,); mask: NESTED bool footprint (default the grid's:
    :func:`~deepsphere_gen.datasets.cosmo_grid.footprint_mask`);
    edges: band edges (default :func:`default_bin_edges` of the footprint, as the pipeline);
    step: relative finite-difference step of Omega_m and sigma_8.  Returns {"omega_m", "s8",
    "sigma8" (marginal 1-sigma errors), "omega_m_with_box_prior", "s8_with_box_prior", "fsky",
    "edges", "noise_cl" (per bin), "step", "fiducial_s8", "knox_std" (n_pairs * n_bands,: the
    band powers' Gaussian std, in the order of the pipeline's features)}.
    """
    mask = footprint_mask(grid) if mask is None else np.asarray(mask, dtype=bool)
    nside = hp.npix2nside(mask.size)
    fsky = float(mask.mean())
    edges = default_bin_edges(nside, fsky) if edges is None else np.asarray(edges, dtype=np.int64)
    lmax = int(edges[-1]) - 1
    noise = np.asarray(noise_std, dtype=np.float64)
    if noise.shape != (grid.n_bins,) or np.any(~(noise >= 0)):
        raise ValueError(f"noise_std must hold {grid.n_bins} values >= 0, got {noise_std!r}")
    if not 0 < step < 0.5:
        raise ValueError(f"step must be a relative step in (0, 0.5), got {step!r}")
    om, sig = grid.fiducial
    noise_cl = noise**2 * hp.nside2pixarea(nside)
    total = _theory(grid, om, sig, lmax).copy()
    total[np.arange(grid.n_bins), np.arange(grid.n_bins)] += noise_cl[:, None]
    cov = knox_covariance(total, edges, fsky)
    h_om, h_s = step * om, step * sig
    d_om = (band_average(_theory(grid, om + h_om, sig, lmax), edges)
            - band_average(_theory(grid, om - h_om, sig, lmax), edges)) / (2 * h_om)
    d_s = (band_average(_theory(grid, om, sig + h_s, lmax), edges)
           - band_average(_theory(grid, om, sig - h_s, lmax), edges)) / (2 * h_s)
    fisher_p = fisher_matrix(np.stack([d_om, d_s]), cov)  # (Omega_m, sigma_8)
    # (Omega_m, S8) -> (Omega_m, sigma_8): sigma_8 = S8 / sqrt(Omega_m / 0.3)
    jac = np.array([[1.0, 0.0], [-0.5 * sig / om, 1.0 / math.sqrt(om / 0.3)]])
    fisher_q = jac.T @ fisher_p @ jac
    err_p = marginal_errors(fisher_p)
    err_q = marginal_errors(fisher_q)
    box = np.array([np.diff(grid.omega_m_range)[0], np.diff(grid.sigma8_range)[0]]) / math.sqrt(12)
    prior_p = fisher_p + np.diag(1.0 / box**2)
    err_prior = np.sqrt(np.diag(np.linalg.inv(jac.T @ prior_p @ jac)))
    return {"omega_m": float(err_q[0]), "s8": float(err_q[1]), "sigma8": float(err_p[1]),
            "omega_m_with_box_prior": float(err_prior[0]), "s8_with_box_prior": float(err_prior[1]),
            "fsky": fsky, "edges": edges.tolist(), "noise_cl": noise_cl.tolist(), "step": step,
            "fiducial_s8": float(s8(om, sig)), "knox_std": np.sqrt(np.diag(cov)).tolist()}
