"""Convergence power spectra (pyccl), log-normal shifts, beam and pixel window.

The two models of DeepSphere's cosmology experiment differ only in (Omega_m, sigma_8);
every other parameter is fixed to :data:`FIXED_PARAMETERS` (Planck-2015-like, flat
LCDM, massless neutrinos).  The linear matter power spectrum uses the Eisenstein & Hu
fitting formula and the non-linear one halofit, so nothing needs CAMB or the network.

Sources follow a Smail-type distribution (:func:`source_nz`)
``n(z) ~ z**2 exp(-(z / z0)**1.5)`` with ``z0 = 0.64`` (median redshift ~0.9, the
Euclid-like choice), sampled on ``0 <= z <= 3.5``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import healpy as hp
import numpy as np

from .._validation import check_nonnegative_int, check_positive_int, as_integer

__all__ = [
    "Cosmology",
    "COSMOLOGIES",
    "FIXED_PARAMETERS",
    "SMAIL_PARAMETERS",
    "source_nz",
    "convergence_cl",
    "empty_beam_convergence",
    "hilbert2011_shift",
    "lognormal_shift",
    "MILLENNIUM",
    "gaussian_beam",
    "pixel_window",
]

#: Parameters shared by both models (pyccl names).
FIXED_PARAMETERS = dict(
    Omega_b=0.049,
    h=0.673,
    n_s=0.96,
    Omega_k=0.0,
    w0=-1.0,
    wa=0.0,
    m_nu=0.0,
    transfer_function="eisenstein_hu",
    matter_power_spectrum="halofit",
)

#: Smail n(z) ~ z**alpha exp(-(z/z0)**beta) on [0, z_max] with n_z sample points.
SMAIL_PARAMETERS = dict(z0=0.64, alpha=2.0, beta=1.5, z_max=3.5, n_z=512)


@dataclass(frozen=True)
class Cosmology:
    """One flat LCDM model of the experiment (the other parameters: FIXED_PARAMETERS)."""

    omega_m: float
    sigma8: float

    def __post_init__(self):
        if not 0 < self.omega_m < 1 or self.omega_m <= FIXED_PARAMETERS["Omega_b"]:
            raise ValueError(f"omega_m must lie in (Omega_b={FIXED_PARAMETERS['Omega_b']}, 1), got {self.omega_m}")
        if not self.sigma8 > 0:
            raise ValueError(f"sigma8 must be positive, got {self.sigma8}")

    def to_pyccl(self):
        import pyccl

        return pyccl.Cosmology(
            Omega_c=self.omega_m - FIXED_PARAMETERS["Omega_b"], sigma8=self.sigma8, **FIXED_PARAMETERS
        )


#: The two nearly power-spectrum-degenerate models (class 0, class 1).
COSMOLOGIES = (Cosmology(0.31, 0.82), Cosmology(0.26, 0.91))


def source_nz() -> tuple[np.ndarray, np.ndarray]:
    """Redshift grid and normalised Smail n(z) (integral 1), both shaped (n_z,)."""
    p = SMAIL_PARAMETERS
    z = np.linspace(0.0, p["z_max"], p["n_z"])
    nz = z ** p["alpha"] * np.exp(-((z / p["z0"]) ** p["beta"]))
    return z, nz / np.trapezoid(nz, z)


@lru_cache(maxsize=16)
def _cl_cached(omega_m: float, sigma8: float, lmax: int) -> np.ndarray:
    import pyccl

    cosmo = Cosmology(omega_m, sigma8).to_pyccl()
    tracer = pyccl.WeakLensingTracer(cosmo, dndz=source_nz())
    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.asarray(pyccl.angular_cl(cosmo, tracer, tracer, ell), dtype=np.float64)
    cl[:2] = 0.0  # no monopole / dipole in a convergence map
    cl.setflags(write=False)
    return cl


def convergence_cl(cosmology: Cosmology, lmax: int) -> np.ndarray:
    """Convergence angular power spectrum C_l, l = 0..lmax, shape (lmax+1,), C_0 = C_1 = 0.

    Computed once per (cosmology, lmax) per process (pyccl with Eisenstein-Hu +
    halofit takes ~0.2 s up to lmax 3071); returns a read-only array.
    """
    n = as_integer(lmax)
    if n is None or n < 2:
        raise ValueError(f"lmax must be an integer >= 2, got {lmax!r}")
    return _cl_cached(float(cosmology.omega_m), float(cosmology.sigma8), n)


@lru_cache(maxsize=16)
def _empty_beam(omega_m: float, sigma8: float) -> float:
    import pyccl

    cosmo = Cosmology(omega_m, sigma8).to_pyccl()
    chi, w = pyccl.tracers.get_lensing_kernel(cosmo, dndz=source_nz())
    return float(np.trapezoid(np.asarray(w).ravel(), np.asarray(chi).ravel()))


def empty_beam_convergence(cosmology: Cosmology) -> float:
    """|kappa| of an empty beam (density contrast -1 along the whole line of sight), > 0.

    Integral of pyccl's lensing kernel W(chi) over comoving distance for the source n(z).
    """
    return _empty_beam(float(cosmology.omega_m), float(cosmology.sigma8))


def hilbert2011_shift(z) -> np.ndarray:
    """Hilbert, Hartlap & Schneider (2011) fit of the log-normal convergence shift at source redshift z.

    ``kappa_0(z) = 0.008 z + 0.029 z^2 - 0.0079 z^3 + 0.00065 z^4``, calibrated on the
    Millennium Simulation (Omega_m = 0.25, Omega_Lambda = 0.75, h = 0.73, sigma_8 = 0.9).
    """
    z = np.asarray(z, dtype=np.float64)
    return z * (8e-3 + z * (2.9e-2 + z * (-7.9e-3 + z * 6.5e-4)))


#: Cosmology of the Millennium Simulation, on which hilbert2011_shift was calibrated.
MILLENNIUM = Cosmology(0.25, 0.9)


def lognormal_shift(cosmology: Cosmology) -> float:
    """Cosmology-dependent shift lambda of the log-normal convergence, kappa > -lambda.

    ``lambda = <kappa_0(z)>_n(z) * kappa_empty(cosmology) / kappa_empty(Millennium)``:
    the Hilbert et al. (2011) fit averaged over the source n(z), rescaled from the
    Millennium cosmology it was fitted on to ``cosmology`` by the ratio of empty-beam
    convergences (the physical lower bound of kappa, proportional to Omega_m times a
    distance integral).  Values: 0.0338 for (0.31, 0.82) and 0.0306 for (0.26, 0.91).
    """
    z, nz = source_nz()
    base = float(np.trapezoid(hilbert2011_shift(z) * nz, z))
    ref = _empty_beam(MILLENNIUM.omega_m, MILLENNIUM.sigma8)
    return base * empty_beam_convergence(cosmology) / ref


def gaussian_beam(fwhm_arcmin: float, lmax: int) -> np.ndarray:
    """Gaussian beam transfer b_l = exp(-l(l+1) sigma^2 / 2), sigma = FWHM / sqrt(8 ln 2); (lmax+1,).
    ValueError for a FWHM that is negative, NaN or infinite."""
    if not 0 <= fwhm_arcmin < np.inf:
        raise ValueError(f"smoothing FWHM must be finite and >= 0 arcmin, got {fwhm_arcmin}")
    return hp.gauss_beam(np.radians(fwhm_arcmin / 60.0), lmax=int(lmax))


@lru_cache(maxsize=8)
def _pixel_window_cached(nside: int, lmax: int, subdiv: int, n_sample: int) -> np.ndarray:
    fine = nside << subdiv
    k = 4**subdiv
    npix = 12 * nside * nside
    # pixels spread over all latitudes (every HEALPix pixel shape class is sampled)
    parents = np.unique(np.linspace(0, npix - 1, min(n_sample, npix)).astype(np.int64))
    children = parents[:, None] * k + np.arange(k)[None, :]
    vec = np.stack(hp.pix2vec(fine, children.ravel(), nest=True), axis=-1).reshape(len(parents), k, 3)
    iu, ju = np.triu_indices(k, 1)
    cosg = np.clip(np.einsum("pia,pia->pi", vec[:, iu], vec[:, ju]), -1.0, 1.0).ravel()
    # w_l^2 = < mean_{i,j} P_l(cos gamma_ij) >_pixels (addition theorem); the k diagonal
    # terms give P_l(1) = 1, the off-diagonal pairs count twice; P_l by recurrence
    diag, off = 1.0 / k, 2.0 / k**2 * (cosg.size / len(parents))
    w2 = np.empty(lmax + 1)
    p_prev, p = np.ones_like(cosg), cosg.copy()
    w2[0] = 1.0
    if lmax >= 1:
        w2[1] = diag + off * p.mean()
    for ell in range(2, lmax + 1):
        p_prev, p = p, ((2 * ell - 1) * cosg * p - (ell - 1) * p_prev) / ell
        w2[ell] = diag + off * p.mean()
    w = np.sqrt(np.clip(w2, 0.0, None))
    w.setflags(write=False)
    return w


def pixel_window(nside: int, lmax: int, subdiv: int = 3, n_sample: int = 96) -> np.ndarray:
    """HEALPix pixel window w_l, l = 0..lmax, shape (lmax+1,), computed offline.

    ``w_l^2`` is the pixel-averaged ``P_l(cos gamma)`` over pairs of points inside a
    pixel (addition theorem), each pixel represented by its ``4**subdiv`` nested
    sub-pixel centres, averaged over ``n_sample`` pixels spread over all latitudes.
    (healpy.pixwin would download its tables; this needs no network.)
    """
    from ..sampling import check_nside

    return _pixel_window_cached(check_nside(nside), check_nonnegative_int(lmax, "lmax"),
                                check_positive_int(subdiv, "subdiv"), check_positive_int(n_sample, "n_sample"))
