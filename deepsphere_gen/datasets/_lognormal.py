"""Shifted log-normal fields on the sphere: C_l <-> xi transforms and map synthesis.

A field ``kappa = lam * (exp(G - sigma_G^2 / 2) - 1)`` with G Gaussian (zero mean,
variance sigma_G^2) has mean 0, is bounded below by ``-lam`` and has correlation
``xi_kappa = lam^2 (exp(xi_G) - 1)``; so the Gaussian field's spectrum C_l^G is the
Legendre transform of ``xi_G = ln(1 + xi_kappa / lam^2)``.  Transforms use
Gauss-Legendre quadrature in mu = cos(theta):

    xi(mu)  = sum_l (2l+1) / (4 pi) C_l P_l(mu)
    C_l     = 2 pi sum_i w_i xi(mu_i) P_l(mu_i)
"""
from __future__ import annotations

import healpy as hp
import numpy as np

__all__ = [
    "cl_to_xi",
    "xi_to_cl",
    "gauss_legendre",
    "lognormal_gaussian_cl",
    "lognormal_skewness",
    "field_variance",
    "synthesize_alm",
    "lognormal_from_alm",
    "lognormal_map",
]


def gauss_legendre(lmax: int, oversample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Nodes mu and weights of ``oversample * (lmax + 1)`` point Gauss-Legendre quadrature."""
    from scipy.special import roots_legendre

    return roots_legendre(int(oversample) * (int(lmax) + 1))


def cl_to_xi(cl: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Correlation function xi(mu) of a field with spectrum ``cl`` (shape (lmax+1,)), shape mu.shape."""
    cl = np.asarray(cl, dtype=np.float64)
    coef = (2 * np.arange(cl.size) + 1) / (4 * np.pi) * cl
    return np.polynomial.legendre.legval(np.asarray(mu, dtype=np.float64), coef)


def xi_to_cl(xi: np.ndarray, mu: np.ndarray, weights: np.ndarray, lmax: int) -> np.ndarray:
    """Spectrum C_l, l = 0..lmax, of the correlation function sampled at quadrature nodes mu."""
    f = 2 * np.pi * np.asarray(weights) * np.asarray(xi, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    cl = np.empty(int(lmax) + 1)
    p_prev, p = np.ones_like(mu), mu.copy()
    cl[0] = f.sum()
    if lmax >= 1:
        cl[1] = f @ p
    for ell in range(2, int(lmax) + 1):
        p_prev, p = p, ((2 * ell - 1) * mu * p - (ell - 1) * p_prev) / ell
        cl[ell] = f @ p
    return cl


def lognormal_gaussian_cl(cl_kappa: np.ndarray, shift: float) -> np.ndarray:
    """Spectrum C_l^G of the Gaussian field whose shifted exponential has spectrum ``cl_kappa``.

    Both shaped (lmax+1,).  Negative C_l^G (the target is not exactly realisable by a
    log-normal field) are clipped to 0.  Raises ValueError if ``1 + xi_kappa / shift^2``
    is not positive (shift too small for that spectrum).
    """
    if not shift > 0:
        raise ValueError(f"log-normal shift must be positive, got {shift}")
    cl_kappa = np.asarray(cl_kappa, dtype=np.float64)
    lmax = cl_kappa.size - 1
    mu, w = gauss_legendre(lmax)
    arg = 1.0 + cl_to_xi(cl_kappa, mu) / shift**2
    if np.any(arg <= 0):
        raise ValueError(f"shift {shift} too small: 1 + xi/shift^2 <= 0 somewhere, no log-normal field")
    cl_g = xi_to_cl(np.log(arg), mu, w, lmax)
    return np.clip(cl_g, 0.0, None)


def field_variance(cl: np.ndarray) -> float:
    """Pixel variance sum_l (2l+1) C_l / (4 pi) of a band-limited isotropic field."""
    cl = np.asarray(cl, dtype=np.float64)
    return float(np.sum((2 * np.arange(cl.size) + 1) * cl) / (4 * np.pi))


def lognormal_skewness(variance, shift):
    """Skewness of the shifted log-normal ``lam (exp(G - s^2/2) - 1)`` with given variance.

    With ``r = sqrt(variance) / lam``: ``skew = 3 r + r^3`` (= (e^{s^2} + 2) sqrt(e^{s^2} - 1)).
    """
    r = np.sqrt(np.asarray(variance, dtype=np.float64)) / shift
    return 3 * r + r**3


def synthesize_alm(cl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random complex alm (healpy order, m >= 0) with spectrum ``cl`` from ``rng``."""
    cl = np.asarray(cl, dtype=np.float64)
    lmax = cl.size - 1
    ell, m = hp.Alm.getlm(lmax)
    amp = np.sqrt(cl[ell])
    re = rng.standard_normal(ell.size)
    im = rng.standard_normal(ell.size)
    real_m0 = m == 0
    alm = np.where(real_m0, amp * re, amp * (re + 1j * im) / np.sqrt(2.0))
    return alm.astype(np.complex128)


def lognormal_from_alm(alm: np.ndarray, cl_gauss: np.ndarray, shift: float, nside: int) -> np.ndarray:
    """Shifted log-normal map in RING order from the Gaussian field's ``alm`` (healpy order, lmax =
    ``cl_gauss.size - 1``): ``shift * (exp(G - var_G / 2) - 1)`` with G at the pixel centres (no pixel
    window) and the analytic ``var_G`` of ``cl_gauss``; shape (12 nside^2,) float64."""
    lmax = np.asarray(cl_gauss).size - 1
    g = hp.alm2map(alm, int(nside), lmax=lmax, pixwin=False)
    var_g = field_variance(cl_gauss)
    return shift * np.expm1(g - var_g / 2)


def lognormal_map(cl_gauss: np.ndarray, shift: float, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Shifted log-normal map in RING order, values at pixel centres, shape (12 nside^2,) float64.

    G is synthesised band-limited to ``lmax = cl_gauss.size - 1`` without pixel window;
    ``kappa = shift * (exp(G - var_G / 2) - 1)`` with the analytic ``var_G`` (:func:`lognormal_from_alm`).
    """
    return lognormal_from_alm(synthesize_alm(cl_gauss, rng), cl_gauss, shift, nside)
