"""Tomographic weak-lensing convergence: redshift bins, pyccl spectra, correlated log-normal maps.

Sources follow the Smail n(z) of :func:`deepsphere_gen.datasets._spectra.source_nz`
(``z^2 exp(-(z/0.64)^1.5)`` on 0 <= z <= 3.5, median ~0.9), cut into ``n_bins``
equal-count bins with sharp edges (no photometric-redshift scatter): :func:`redshift_bins`.
Cosmologies are flat LCDM with the fixed parameters of ``_spectra.FIXED_PARAMETERS``
(Omega_b 0.049, h 0.673, n_s 0.96, massless neutrinos, Eisenstein-Hu + halofit); only
(Omega_m, sigma_8) vary.

Maps (:func:`lognormal_maps`): bin i is ``kappa_i = lam_i (exp(G_i - var_i / 2) - 1)`` with
jointly Gaussian G whose spectra satisfy ``xi^G_ij = ln(1 + xi^kappa_ij / (lam_i lam_j))``
(the exact two-point relation of shifted log-normal fields), so every auto and cross
spectrum of the maps equals pyccl's.  The shift of bin i is Hilbert, Hartlap & Schneider's
(2011) fit averaged over the bin's n(z), rescaled from the Millennium cosmology by the ratio
of the bin's empty-beam convergences (as ``_spectra.lognormal_shift`` does for one bin).
Per l, the Gaussian spectra matrix is made positive semi-definite (negative eigenvalues set
to 0; their size is reported) and factored, and correlated alm drawn from it.
"""
from __future__ import annotations

from functools import lru_cache

import healpy as hp
import numpy as np

from .._validation import check_positive_int, as_integer
from ._lognormal import cl_to_xi, gauss_legendre, xi_to_cl
from ._spectra import MILLENNIUM, Cosmology, hilbert2011_shift, source_nz

__all__ = [
    "MAX_BINS",
    "check_n_bins",
    "redshift_bins",
    "tomographic_cl",
    "tomographic_shifts",
    "gaussian_cl_matrix",
    "lognormal_maps",
    "MILLENNIUM",
]


#: the most redshift bins :func:`redshift_bins` cuts (equal-count bins of the Smail n(z))
MAX_BINS = 8


def check_n_bins(n_bins, name: str = "number of redshift bins") -> int:
    """``n_bins`` as an int in [1, :data:`MAX_BINS`], else ValueError "``name`` must be an integer in [1, 8], got ...":
    the rule of every function here (and of ``cosmo_grid.CosmoGridConfig``, which checks it before any work;
    the ``cosmo`` command passes ``name="--bins"``)."""
    try:
        n = check_positive_int(n_bins, name)
    except ValueError:
        n = None
    if n is None or n > MAX_BINS:
        raise ValueError(f"{name} must be an integer in [1, {MAX_BINS}], got {n_bins!r}")
    return n


@lru_cache(maxsize=8)
def _bins(n_bins: int):
    z, nz = source_nz()
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (nz[1:] + nz[:-1]) * np.diff(z))])
    cdf /= cdf[-1]
    edges = np.interp(np.linspace(0, 1, n_bins + 1), cdf, z)
    edges[0], edges[-1] = 0.0, z[-1] + 1e-9
    out = np.stack([np.where((z >= lo) & (z < hi), nz, 0.0) for lo, hi in zip(edges[:-1], edges[1:])])
    out.setflags(write=False)
    edges.setflags(write=False)
    return z, out, edges


def redshift_bins(n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-count tomographic bins of the Smail n(z).

    Returns ``z`` (n_z,), ``nz`` (n_bins, n_z) (bin i: n(z) inside [edges[i], edges[i+1]),
    zero outside; unnormalised, so each bin holds ~1/n_bins of the galaxies) and ``edges``
    (n_bins + 1,).  Read-only arrays.
    """
    return _bins(check_n_bins(n_bins))


def _tracers(cosmo, n_bins):
    import pyccl

    z, nz, _ = redshift_bins(n_bins)
    return [pyccl.WeakLensingTracer(cosmo, dndz=(z, nz[i])) for i in range(n_bins)]


@lru_cache(maxsize=64)
def _cl_cached(omega_m: float, sigma8: float, n_bins: int, lmax: int) -> np.ndarray:
    import pyccl

    cosmo = Cosmology(omega_m, sigma8).to_pyccl()
    tracers = _tracers(cosmo, n_bins)
    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.zeros((n_bins, n_bins, lmax + 1))
    for i in range(n_bins):
        for j in range(i, n_bins):
            cl[i, j] = cl[j, i] = pyccl.angular_cl(cosmo, tracers[i], tracers[j], ell)
    cl[..., :2] = 0.0
    cl.setflags(write=False)
    return cl


def tomographic_cl(cosmology: Cosmology, n_bins: int, lmax: int) -> np.ndarray:
    """Auto and cross convergence spectra from pyccl: (n_bins, n_bins, lmax+1), symmetric, C_0 = C_1 = 0.

    Cost: n_bins (n_bins + 1) / 2 calls of ``pyccl.angular_cl`` (~0.1 s each at lmax 383);
    cached per process.  Read-only.
    """
    n = as_integer(lmax)
    if n is None or n < 2:
        raise ValueError(f"lmax must be an integer >= 2, got {lmax!r}")
    return _cl_cached(float(cosmology.omega_m), float(cosmology.sigma8), check_n_bins(n_bins), n)


@lru_cache(maxsize=64)
def _empty_beam(omega_m: float, sigma8: float, n_bins: int) -> np.ndarray:
    import pyccl

    cosmo = Cosmology(omega_m, sigma8).to_pyccl()
    z, nz, _ = redshift_bins(n_bins)
    out = []
    for i in range(n_bins):
        chi, w = pyccl.tracers.get_lensing_kernel(cosmo, dndz=(z, nz[i]))
        out.append(float(np.trapezoid(np.asarray(w).ravel(), np.asarray(chi).ravel())))
    return np.array(out)


@lru_cache(maxsize=8)
def _millennium_shifts(n_bins: int) -> np.ndarray:
    """Hilbert et al.'s shift averaged over each bin's n(z), (n_bins,): cosmology-independent, computed once."""
    z, nz, _ = redshift_bins(n_bins)
    out = np.trapezoid(hilbert2011_shift(z) * nz, z, axis=1) / np.trapezoid(nz, z, axis=1)
    out.setflags(write=False)
    return out


def tomographic_shifts(cosmology: Cosmology, n_bins: int) -> np.ndarray:
    """Log-normal shift lambda_i > 0 of every bin, (n_bins,) (kappa_i > -lambda_i)."""
    n_bins = check_n_bins(n_bins)
    ratio = _empty_beam(float(cosmology.omega_m), float(cosmology.sigma8), n_bins) / _empty_beam(
        MILLENNIUM.omega_m, MILLENNIUM.sigma8, n_bins)
    return _millennium_shifts(n_bins) * ratio


def gaussian_cl_matrix(cl: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, float]:
    """Spectra of the Gaussian fields behind correlated shifted log-normal fields.

    cl: (n, n, lmax+1) target auto/cross spectra; shifts: (n,).  Returns ``(cl_g, clipped)``:
    cl_g (n, n, lmax+1) positive semi-definite at every l, and ``clipped``, the largest
    negative eigenvalue removed relative to the largest eigenvalue at that l (0 when the
    target is exactly realisable).  ValueError if a shift is too small for its spectrum.
    """
    cl = np.asarray(cl, dtype=np.float64)
    shifts = np.asarray(shifts, dtype=np.float64)
    n, lmax = cl.shape[0], cl.shape[-1] - 1
    if cl.shape[:2] != (n, n) or shifts.shape != (n,):
        raise ValueError(f"cl must be (n, n, lmax+1) and shifts (n,), got {cl.shape} and {shifts.shape}")
    if not np.all(shifts > 0):
        raise ValueError(f"log-normal shifts must be positive, got {shifts}")
    mu, w = gauss_legendre(lmax)
    cl_g = np.empty_like(cl)
    for i in range(n):
        for j in range(i, n):
            arg = 1.0 + cl_to_xi(cl[i, j], mu) / (shifts[i] * shifts[j])
            if np.any(arg <= 0):
                raise ValueError(f"shifts {shifts[i]}, {shifts[j]} too small for the spectrum of bins {i}, {j}")
            cl_g[i, j] = cl_g[j, i] = xi_to_cl(np.log(arg), mu, w, lmax)
    evals, evecs = np.linalg.eigh(np.moveaxis(cl_g, -1, 0))  # (lmax+1, n), (lmax+1, n, n)
    top = evals[:, -1]
    live = top > 0
    clipped = float(np.max(np.clip(-evals[live] / top[live, None], 0.0, None), initial=0.0))
    fixed = np.einsum("lij,lj,lkj->ikl", evecs, np.clip(evals, 0.0, None), evecs)
    return fixed, clipped


def _sqrt_matrices(cl_g: np.ndarray) -> np.ndarray:
    """Per l a matrix A_l (n, n) with A_l A_l^T = cl_g[:, :, l]; shape (lmax+1, n, n)."""
    evals, evecs = np.linalg.eigh(np.moveaxis(cl_g, -1, 0))
    return evecs * np.sqrt(np.clip(evals, 0.0, None))[:, None, :]


def lognormal_maps(cl_g: np.ndarray, shifts: np.ndarray, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Correlated shifted log-normal maps, NESTED, float64 (n, 12 nside^2), values at pixel centres.

    cl_g: Gaussian spectra (n, n, lmax+1) from :func:`gaussian_cl_matrix`; the fields are
    band-limited to lmax; randomness only from ``rng``.  Cost: n alm2map at lmax.
    """
    cl_g = np.asarray(cl_g, dtype=np.float64)
    n, lmax = cl_g.shape[0], cl_g.shape[-1] - 1
    ell, m = hp.Alm.getlm(lmax)
    # independent unit white alm: real for m = 0, complex with variance 1 otherwise
    re, im = rng.standard_normal((n, ell.size)), rng.standard_normal((n, ell.size))
    z = np.where(m == 0, re, (re + 1j * im) / np.sqrt(2.0))
    a = _sqrt_matrices(cl_g)[ell]  # (nalm, n, n)
    alm = np.einsum("aij,ja->ia", a, z)
    var = np.einsum("l,iil->i", (2 * np.arange(lmax + 1) + 1) / (4 * np.pi), cl_g)
    out = np.empty((n, 12 * nside * nside))
    for i in range(n):
        g = hp.alm2map(np.ascontiguousarray(alm[i]), int(nside), lmax=lmax, pixwin=False)
        out[i] = hp.reorder(shifts[i] * np.expm1(g - var[i] / 2), r2n=True)
    return out
