"""Weak-lensing shape noise per HEALPix pixel, from the survey's galaxy density.

Shape noise is a property of the survey, not of the map resolution: with ``n_gal``
galaxies per arcmin^2, each with an intrinsic ellipticity dispersion ``sigma_e`` per
component, the convergence estimated in a pixel of area ``A`` (arcmin^2) carries white noise
of standard deviation ``sigma_e / sqrt(n_gal * A)``.  One survey therefore means a larger
per-pixel std at higher nside (4 times the pixels, twice the std), and maps of one survey at
two resolutions agree after averaging down.

DeepSphere (Perraudin et al. 2019) gave its noise as *levels*: white noise of std
``level x`` the clean pixel std of its nside-1024 convergence maps smoothed with a Gaussian of
sigma 3' (FWHM 7.06').  :func:`deepsphere_level_to_ngal` turns such a level into the galaxy
density that gives the same per-pixel noise at nside 1024, using the clean pixel std of
*this project's* generator (:func:`clean_pixel_std`: both cosmologies, the convergence C_l
times the beam and the HEALPix pixel window), so that a table can say "DeepSphere level 2
(n_gal = 22.47 /arcmin^2)" (``deepsphere_level_to_ngal(2)``) and mean the same survey at every nside.
"""
from __future__ import annotations

import math

from ..sampling import check_nside

__all__ = [
    "DEFAULT_SIGMA_E",
    "DEEPSPHERE_REFERENCE_NSIDE",
    "DEEPSPHERE_SMOOTHING_SIGMA_ARCMIN",
    "DEEPSPHERE_SMOOTHING_FWHM_ARCMIN",
    "pixel_area_arcmin2",
    "pixel_noise_std",
    "clean_pixel_std",
    "deepsphere_level_to_ngal",
    "ngal_to_deepsphere_level",
]

#: intrinsic ellipticity dispersion per component (stage-III surveys, e.g. KiDS: 0.26-0.28)
DEFAULT_SIGMA_E = 0.26

#: resolution and smoothing of the maps DeepSphere's noise levels refer to
DEEPSPHERE_REFERENCE_NSIDE = 1024
DEEPSPHERE_SMOOTHING_SIGMA_ARCMIN = 3.0
DEEPSPHERE_SMOOTHING_FWHM_ARCMIN = DEEPSPHERE_SMOOTHING_SIGMA_ARCMIN * math.sqrt(8 * math.log(2))  # 7.064'


def pixel_area_arcmin2(nside: int) -> float:
    """Area of one HEALPix pixel in arcmin^2: 4 pi / (12 nside^2) sr; ``nside`` a power of 2
    (:func:`~deepsphere_gen.sampling.check_nside`: ValueError otherwise)."""
    nside = check_nside(nside)
    return 4 * math.pi / (12 * nside * nside) * (180 * 60 / math.pi) ** 2


def pixel_noise_std(nside: int, ngal: float, sigma_e: float = DEFAULT_SIGMA_E) -> float:
    """Convergence noise std per pixel: ``sigma_e / sqrt(ngal * pixel_area_arcmin2(nside))``.

    nside: a power of 2 (:func:`~deepsphere_gen.sampling.check_nside`, checked also where ngal is ``inf``);
    ngal: galaxies per arcmin^2 (> 0; ``inf`` means no noise, returns 0); sigma_e: per-component
    ellipticity dispersion (>= 0).
    """
    nside = check_nside(nside)
    ngal, sigma_e = float(ngal), float(sigma_e)
    if not ngal > 0 or math.isnan(ngal):
        raise ValueError(f"galaxy density ngal must be > 0 galaxies per arcmin^2 (inf: no noise), got {ngal!r}")
    if not (sigma_e >= 0 and math.isfinite(sigma_e)):
        raise ValueError(f"ellipticity dispersion sigma_e must be a finite number >= 0, got {sigma_e!r}")
    if math.isinf(ngal):
        return 0.0
    return sigma_e / math.sqrt(ngal * pixel_area_arcmin2(nside))


def clean_pixel_std(nside: int, smoothing_fwhm_arcmin: float = DEEPSPHERE_SMOOTHING_FWHM_ARCMIN,
                    pixel_window: bool = True, lmax: int | None = None, per_class: bool = False):
    """Expected pixel std of the generator's clean convergence maps (both classes pooled).

    ``sqrt(mean_c sum_l (2l+1)/(4 pi) C_l^c b_l^2 w_l^2)`` for l <= lmax (default 3 nside - 1,
    the generator's band limit), C_l^c the convergence spectrum of class c
    (:data:`~deepsphere_gen.datasets.COSMOLOGIES`), b_l the Gaussian beam of FWHM
    ``smoothing_fwhm_arcmin`` and w_l the HEALPix pixel window: the std that
    :func:`~deepsphere_gen.datasets.generate_massmaps` produces with the same settings.
    ``per_class``: return the two class stds instead.  Cost: pyccl's C_l and the offline
    pixel window, ~2 s at nside 1024 (cached per process).
    """
    from ._lognormal import field_variance
    from ._spectra import COSMOLOGIES, convergence_cl, gaussian_beam
    from ._spectra import pixel_window as window

    lmax = 3 * int(nside) - 1 if lmax is None else int(lmax)
    t = gaussian_beam(smoothing_fwhm_arcmin, lmax)
    if pixel_window:
        t = t * window(int(nside), lmax)
    var = [field_variance(convergence_cl(c, lmax) * t**2) for c in COSMOLOGIES]
    if per_class:
        return tuple(math.sqrt(v) for v in var)
    return math.sqrt(sum(var) / len(var))


def _reference_std() -> float:
    return clean_pixel_std(DEEPSPHERE_REFERENCE_NSIDE, DEEPSPHERE_SMOOTHING_FWHM_ARCMIN)


def deepsphere_level_to_ngal(level: float, sigma_e: float = DEFAULT_SIGMA_E) -> float:
    """Galaxies per arcmin^2 whose shape noise equals DeepSphere's relative noise ``level``.

    DeepSphere's level: noise std = level x clean pixel std of nside-1024 maps smoothed with a
    Gaussian of sigma 3' (:func:`clean_pixel_std` of this generator).  Solves
    ``pixel_noise_std(1024, ngal, sigma_e) = level * clean_std``:
    ``ngal = sigma_e^2 / (A_pix(1024) (level clean_std)^2)``; level 0 -> ``inf`` (no noise).
    """
    level = float(level)
    if not (level >= 0 and math.isfinite(level)):
        raise ValueError(f"DeepSphere noise level must be a finite number >= 0, got {level!r}")
    pixel_noise_std(DEEPSPHERE_REFERENCE_NSIDE, 1.0, sigma_e)  # validates sigma_e
    if level == 0 or sigma_e == 0:
        return math.inf
    std = level * _reference_std()
    return float(sigma_e) ** 2 / (pixel_area_arcmin2(DEEPSPHERE_REFERENCE_NSIDE) * std * std)


def ngal_to_deepsphere_level(ngal: float, sigma_e: float = DEFAULT_SIGMA_E) -> float:
    """Inverse of :func:`deepsphere_level_to_ngal` (``inf`` galaxies -> level 0)."""
    return pixel_noise_std(DEEPSPHERE_REFERENCE_NSIDE, ngal, sigma_e) / _reference_std()
