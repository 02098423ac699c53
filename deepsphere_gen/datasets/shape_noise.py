"""Weak-lensing shape noise per HEALPix pixel, from the survey's galaxy density.

Shape noise is a property of the survey, not of the map resolution: with ``n_gal``
galaxies per arcmin^2, each with an intrinsic ellipticity dispersion ``sigma_e`` per
component, the convergence estimated in a pixel of area ``A`` (arcmin^2) carries white noise
of standard deviation ``sigma_e / sqrt(n_gal * A)``.  One survey therefore means a larger
per-pixel std at higher nside (4 times the pixels, twice the std), and maps of one survey at
two resolutions agree after averaging down.
"""
from __future__ import annotations

import math

__all__ = ["DEFAULT_SIGMA_E", "pixel_area_arcmin2", "pixel_noise_std"]

#: intrinsic ellipticity dispersion per component (stage-III surveys, e.g. KiDS: 0.26-0.28)
DEFAULT_SIGMA_E = 0.26


def pixel_area_arcmin2(nside: int) -> float:
    """Area of one HEALPix pixel in arcmin^2: 4 pi / (12 nside^2) sr."""
    nside = int(nside)
    if nside < 1:
        raise ValueError(f"nside must be a positive integer, got {nside}")
    return 4 * math.pi / (12 * nside * nside) * (180 * 60 / math.pi) ** 2


def pixel_noise_std(nside: int, ngal: float, sigma_e: float = DEFAULT_SIGMA_E) -> float:
    """Convergence noise std per pixel: ``sigma_e / sqrt(ngal * pixel_area_arcmin2(nside))``.

    ngal: galaxies per arcmin^2 (> 0; ``inf`` means no noise, returns 0); sigma_e: per-component
    ellipticity dispersion (>= 0).
    """
    ngal, sigma_e = float(ngal), float(sigma_e)
    if not ngal > 0 or math.isnan(ngal):
        raise ValueError(f"galaxy density ngal must be > 0 galaxies per arcmin^2 (inf: no noise), got {ngal!r}")
    if not (sigma_e >= 0 and math.isfinite(sigma_e)):
        raise ValueError(f"ellipticity dispersion sigma_e must be a finite number >= 0, got {sigma_e!r}")
    if math.isinf(ngal):
        return 0.0
    return sigma_e / math.sqrt(ngal * pixel_area_arcmin2(nside))
