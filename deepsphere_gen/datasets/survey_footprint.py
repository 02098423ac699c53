"""A stage-III-sized survey footprint and its rotated copies on one HEALPix sky.

:func:`stage3_footprint` is a ~1,000 deg^2 footprint (KiDS-1000 / DES-Y1 sized) with
irregular edges and masked holes (bright stars, satellite galaxies), defined by a fixed
geometric recipe evaluated at pixel centres, so it exists at every nside >= 32:

- an ellipse centred on (lon, lat) = (0, 0) with semi-axes 21.85 deg (longitude) x 15.0 deg
  (latitude), whose radius is modulated by a fixed sum of harmonics (orders 2-9,
  amplitudes 2-6 %) for a ragged edge;
- minus 7 circular holes of radius 0.7-1.6 deg at fixed positions;
- restricted to the equatorial HEALPix base pixel 4 (|lon| < 45 deg, |lat| < 41.8 deg).

Because it lies in base pixel 4, the rotations by 90, 180 and 270 degrees about the polar
axis, which map the HEALPix grid onto itself and base pixel 4 onto 5, 6, 7, give three
disjoint exact copies: :func:`footprint_copies` returns NESTED pixel indices ``idx + k nside^2``
(k = 0..3) of the same shape with the same pixel order, so one full-sky map yields 4
independent-geometry survey samples that a network built on the first copy reads exactly.
A footprint outside one equatorial base pixel (any user FITS mask) has one copy.
"""
from __future__ import annotations

import healpy as hp
import numpy as np

from ..sampling import check_mask, check_nside

__all__ = ["stage3_footprint", "footprint_copies", "footprint_area_deg2", "FOOTPRINT_HOLES"]

#: (lon, lat, radius) in degrees of the holes of :func:`stage3_footprint`
FOOTPRINT_HOLES = ((-12.0, 4.0, 1.6), (6.0, -7.0, 1.2), (14.0, 5.0, 0.9), (-4.0, 9.0, 1.0),
                   (-16.0, -6.0, 1.3), (2.0, 1.0, 0.7), (10.0, 11.0, 0.8))
#: (order, relative amplitude, phase) of the edge modulation
_EDGE = ((2, 0.06, 0.3), (3, 0.05, 1.9), (4, 0.04, 4.1), (5, 0.035, 2.6), (7, 0.03, 0.8), (9, 0.02, 5.2))
_SEMI_AXES = (21.85, 15.0)
_MIN_NSIDE = 32


def _base_pixel(nside: int, base: int) -> np.ndarray:
    mask = np.zeros(12 * nside * nside, dtype=bool)
    mask[base * nside * nside:(base + 1) * nside * nside] = True
    return mask


def stage3_footprint(nside: int) -> np.ndarray:
    """Built-in ~1,000 deg^2 footprint with ragged edges and 7 holes: NESTED bool (12 nside^2,).

    Area: 999 deg^2 at nside 128 (999 at 64, 1,000 at 256, 1,004 at 32); see the module docstring for
    the recipe.  nside >= 32 (holes of 0.7 deg are unresolved below).
    """
    nside = check_nside(nside)
    if nside < _MIN_NSIDE:
        raise ValueError(f"the stage-III footprint needs nside >= {_MIN_NSIDE}, got {nside}")
    lon, lat = hp.pix2ang(nside, np.arange(12 * nside * nside), nest=True, lonlat=True)
    lon = (lon + 180.0) % 360.0 - 180.0
    a, b = _SEMI_AXES
    phi = np.arctan2(lat / b, lon / a)
    edge = 1.0 + sum(amp * np.cos(k * phi + ph) for k, amp, ph in _EDGE)
    mask = np.hypot(lon / a, lat / b) <= edge
    xyz = np.stack(hp.pix2vec(nside, np.arange(12 * nside * nside), nest=True), -1)
    for hlon, hlat, radius in FOOTPRINT_HOLES:
        centre = hp.ang2vec(hlon, hlat, lonlat=True)
        mask &= xyz @ centre < np.cos(np.radians(radius))
    return check_mask(mask & _base_pixel(nside, 4), nside)


def footprint_area_deg2(mask) -> float:
    """Area of a NESTED/RING mask (12 nside^2,) of booleans or exactly 0/1 in square degrees (0 for an empty
    mask); other values are refused (:func:`~deepsphere_gen.sampling.check_mask`: a fractional mask has no area
    until thresholded)."""
    mask = check_mask(mask, allow_empty=True)
    return float(mask.sum() * hp.nside2pixarea(hp.npix2nside(mask.size), degrees=True))


def footprint_copies(mask) -> np.ndarray:
    """Disjoint exact copies of a footprint on one sky: (n_copies, n_pixels) int64 NESTED indices.

    Row 0 is ``flatnonzero(mask)``.  If the footprint lies inside one equatorial base pixel
    (4-7), rows 1-3 are its rotations by 90, 180, 270 deg about the polar axis (base pixel b
    -> 4 + (b - 4 + k) % 4, same position inside it): pixel i of every row is the rotated
    pixel i of row 0.  Otherwise one row.
    """
    mask = check_mask(mask)
    nside = hp.npix2nside(mask.size)
    idx = np.flatnonzero(mask).astype(np.int64)
    per_base = nside * nside
    base = np.unique(idx // per_base)
    if base.size != 1 or not 4 <= base[0] <= 7:
        return idx[None, :]
    local = idx - base[0] * per_base
    return np.stack([local + (4 + (base[0] - 4 + k) % 4) * per_base for k in range(4)])
