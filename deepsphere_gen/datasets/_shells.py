"""Multi-plane log-normal convergence: log-normal matter shells summed along the line of sight.

The Born-approximation convergence of sources with redshift distribution n(z) is the matter
density contrast weighted by the lensing kernel W(chi) (pyccl's, comoving distance chi in Mpc):
``kappa(n) = int W(chi) delta(chi n) dchi``.  Cutting chi into shells of :data:`SHELL_WIDTH_MPC`
gives ``kappa = sum_i W_i delta_i`` with ``W_i`` the kernel's integral over shell i and
``delta_i`` the kernel-weighted density contrast of that shell, a 2-D field whose spectrum
``C_l^i`` pyccl computes in the Limber approximation (the tracer of kernel W / W_i on the shell,
the non-linear matter power spectrum; the kernel is given on the whole chi grid, zero outside the shell, and
pyccl's integration over that range sets the shell's C_l 0.05-0.3 % low, the nearest shells most: measured,
left as is, since the sum stays within 0.3 % of pyccl's convergence C_l).  In the Limber approximation disjoint shells are
uncorrelated and ``sum_i W_i^2 C_l^i`` is the convergence spectrum exactly (the integral split
into pieces; :func:`shell_spectrum_sum`, tested against pyccl's weak-lensing C_l).

Each ``delta_i`` is an independent shifted log-normal field with shift 1 (``delta >= -1``: an
empty shell; :mod:`._lognormal`), the recipe of multi-plane log-normal simulations (e.g. GLASS,
Tessore et al. 2023).  So the convergence is a sum of fields of very different skewness (the
nearby shells strongly non-Gaussian at small angles, the distant ones nearly Gaussian), not one
local transform of a Gaussian field as a single log-normal map: a one-point histogram
captures less of its non-Gaussian information.  Its lower bound is ``-sum_i W_i``, the
empty-beam convergence.  The far shells that together carry at most :data:`TAIL_VARIANCE` of the
convergence variance are dropped (the nearest such cut; their fraction is recorded).

Cost (one core, this package's Smail n(z): 24-26 shells): per map one draw and one synthesis (ducc0) per
shell, ~1.2 s at nside 256 (the default run: 96 maps in 119 s) and ~6 s at 512 with the smoothing; set-up ~7 s per cosmology at nside 256 and
~15 s at 512 (pyccl's Limber integrals and the log-normal transforms), once per process; at nside 1024,
measured once beside other work, 447 s of set-up per cosmology and 47 s per map.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Iterator

import numpy as np

from ._lognormal import field_variance, lognormal_gaussian_cl
from ._spectra import Cosmology, source_nz

__all__ = ["SHELL_WIDTH_MPC", "KERNEL_SAMPLES", "TAIL_VARIANCE", "LensingShells", "lensing_shells",
           "shell_spectrum_sum", "shell_alms", "shells_convergence"]

#: comoving thickness of a matter shell in Mpc (GLASS's examples use 200 Mpc)
SHELL_WIDTH_MPC = 200.0
#: points on which pyccl's lensing kernel is sampled from chi = 0 to the farthest source (spacing ~0.9 Mpc)
KERNEL_SAMPLES = 8192
#: the far shells dropped carry at most this fraction of the convergence variance together
TAIL_VARIANCE = 1e-4


@dataclass(frozen=True)
class LensingShells:
    """The shells of one cosmology up to degree lmax (arrays read-only).

    edges_mpc: (n + 1,) comoving distances of the shell edges; weights: (n,) W_i, the lensing
    kernel integrated over each shell; cl_density: (n, lmax + 1) C_l of each shell's density
    contrast; cl_gauss: (n, lmax + 1) the spectrum of its Gaussian field G_i (shift 1);
    var_gauss: (n,) the variance of G_i; dropped_variance: the fraction of the convergence
    variance in the shells dropped beyond the last one (<= :data:`TAIL_VARIANCE`).
    """

    edges_mpc: np.ndarray
    weights: np.ndarray
    cl_density: np.ndarray
    cl_gauss: np.ndarray
    var_gauss: np.ndarray
    dropped_variance: float

    @property
    def n_shells(self) -> int:
        return int(self.weights.size)


def _shell_pieces(cosmology: Cosmology, lmax: int):
    """(edges, W_i, C_l^i) of every shell with a positive weight, before the tail is dropped."""
    import pyccl

    cosmo = cosmology.to_pyccl()
    chi, w = pyccl.tracers.get_lensing_kernel(cosmo, dndz=source_nz(), n_chi=KERNEL_SAMPLES)
    chi, w = np.asarray(chi, dtype=np.float64).ravel(), np.asarray(w, dtype=np.float64).ravel()
    edges = np.arange(0.0, chi[-1] + SHELL_WIDTH_MPC, SHELL_WIDTH_MPC)
    ell = np.arange(lmax + 1, dtype=np.float64)
    kept_edges, weights, cls = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        kernel = np.where((chi >= lo) & (chi < hi), w, 0.0)
        weight = float(np.trapezoid(kernel, chi))
        if not weight > 0:
            continue
        tracer = pyccl.Tracer()
        tracer.add_tracer(cosmo, kernel=(chi, kernel / weight))
        cl = np.asarray(pyccl.angular_cl(cosmo, tracer, tracer, ell), dtype=np.float64)
        cl[:2] = 0.0  # as the convergence spectrum: no monopole or dipole
        kept_edges.append((lo, hi))
        weights.append(weight)
        cls.append(cl)
    return np.asarray(kept_edges), np.asarray(weights), np.asarray(cls)


@lru_cache(maxsize=8)
def _shells_cached(omega_m: float, sigma8: float, lmax: int) -> LensingShells:
    edges, weights, cls = _shell_pieces(Cosmology(omega_m, sigma8), lmax)
    variance = weights**2 * np.array([field_variance(cl) for cl in cls])
    tail = np.cumsum(variance[::-1])[::-1] / variance.sum()  # tail[i]: fraction in shells i, i+1, ...
    n = int(np.searchsorted(-tail, -TAIL_VARIANCE))  # the first shell whose tail is <= TAIL_VARIANCE
    n = max(n, 1)
    cl_gauss = np.array([lognormal_gaussian_cl(cl, 1.0) for cl in cls[:n]])
    var_gauss = np.array([field_variance(cl) for cl in cl_gauss])
    arrays = (np.append(edges[:n, 0], edges[n - 1, 1]), weights[:n], cls[:n], cl_gauss, var_gauss)
    for a in arrays:
        a.setflags(write=False)
    return LensingShells(*arrays, dropped_variance=float(tail[n]) if n < tail.size else 0.0)


def lensing_shells(cosmology: Cosmology, lmax: int) -> LensingShells:
    """The matter shells of ``cosmology`` up to degree ``lmax`` (computed once per process; ~5 s with pyccl)."""
    if not isinstance(cosmology, Cosmology):
        raise ValueError(f"cosmology must be a Cosmology, got {type(cosmology).__name__}")
    lmax = int(lmax)
    if lmax < 2:
        raise ValueError(f"lmax must be >= 2, got {lmax}")
    return _shells_cached(float(cosmology.omega_m), float(cosmology.sigma8), lmax)


def shell_spectrum_sum(shells: LensingShells) -> np.ndarray:
    """``sum_i W_i^2 C_l^i``, shape (lmax + 1,): the convergence spectrum of the Gaussian-level sum of the shells."""
    return np.einsum("i,il->l", shells.weights**2, shells.cl_density)


def shell_alms(shells: LensingShells, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The Gaussian alm of every shell's field G_i in turn, nearest first: (n_alm,) complex128, healpy order (m >= 0).

    Each from one draw of 2 n_alm standard normals written into the alm's own memory and read as (real, imaginary)
    pairs: both of variance C_l / 2 for m > 0; for m = 0 the real part of variance C_l, the imaginary part 0 (not
    ``_lognormal.synthesize_alm``'s real block then imaginary block: the draw lands in place, half its time).  A
    generator, so that a map holds one shell's alm at a time (24 of them would be 1.8 GiB at nside 1024)."""
    lmax = shells.cl_gauss.shape[1] - 1
    ell = _degrees(lmax)
    for cl in shells.cl_gauss:
        alm = np.empty(ell.size, dtype=np.complex128)
        rng.standard_normal(out=alm.view(np.float64))
        pairs = alm.view(np.float64).reshape(-1, 2)
        pairs *= np.sqrt(cl / 2)[ell][:, None]
        pairs[: lmax + 1, 0] *= np.sqrt(2.0)  # m = 0: the first lmax + 1 entries, real
        pairs[: lmax + 1, 1] = 0.0
        yield alm


@lru_cache(maxsize=4)
def _degrees(lmax: int) -> np.ndarray:
    """Degree l of every entry of a healpy-ordered alm of band limit ``lmax`` (read-only, int64)."""
    import healpy as hp

    ell = hp.Alm.getlm(lmax)[0]
    ell.setflags(write=False)
    return ell


@lru_cache(maxsize=4)
def _ring_geometry(nside: int) -> dict:
    import ducc0

    return ducc0.healpix.Healpix_Base(nside, "RING").sht_info()


def _synthesis(alm: np.ndarray, nside: int, lmax: int, out: np.ndarray) -> np.ndarray:
    """``healpy.alm2map(alm, nside, lmax)`` (RING, no pixel window) by ducc0 on one thread (the generation's
    ``threads`` limit OpenMP, which ducc0 does not use), into ``out`` (12 nside^2,)."""
    import ducc0

    ducc0.sht.experimental.synthesis(alm=alm[None], map=out[None], lmax=int(lmax), spin=0, nthreads=1,
                                     **_ring_geometry(int(nside)))
    return out


def shells_convergence(alms: Iterable[np.ndarray], shells: LensingShells, nside: int) -> np.ndarray:
    """The convergence ``sum_i W_i (exp(G_i - var_i / 2) - 1)`` at the pixel centres, RING, float64, shape
    (12 nside^2,), from the shells' Gaussian alms, one per shell in order (:func:`shell_alms`, or the rows of an
    (n_shells, n_alm) array; band limit that of ``shells``).  ValueError for fewer or more alms."""
    lmax = shells.cl_gauss.shape[1] - 1
    kappa = np.zeros(12 * int(nside) ** 2)
    g = np.empty_like(kappa)
    rows = iter(alms)
    count = 0
    for weight, var, alm in zip(shells.weights, shells.var_gauss, rows):  # the shells first: no alm drawn past them
        _synthesis(np.asarray(alm), nside, lmax, g)
        g -= var / 2
        np.expm1(g, out=g)
        kappa += weight * g
        count += 1
    if count != shells.n_shells or next(rows, None) is not None:
        raise ValueError(f"alms must hold one alm per shell ({shells.n_shells}), got "
                         f"{count if count < shells.n_shells else 'more'}")
    return kappa
