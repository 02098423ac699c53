"""Nested HEALPix base patches as square images, and their FFT band powers (a cheap patch PSD).

A nested base patch of level k (sky fraction 1 / (12 * 4**k)) is ``side x side`` pixels with
``side = nside >> k``; inside it the NESTED index interleaves the bits of the pixel's face
coordinates (x on the even bits, y on the odd bits), so :func:`patch_square_order` turns the
patch's nested values into a ``side x side`` image (rows y, columns x).  The image lives on a
curvilinear grid (a HEALPix base pixel is a curved rhombus of ~58.6 deg side), so a flat-sky
FFT of it measures the angular power spectrum approximately: multipole
``l ~ 2 pi |m| / (side * d)`` for the FFT frequency m (cycles per side) and the pixel spacing
``d = sqrt(4 pi / npix)``, power normalised as a flat-sky C_l (Tukey apodisation, mean
removed, edges tapered).  Checked against ``healpy.anafast`` on the full sky (tests/datasets/test_patch_psd.py).

Cost: one ``side x side`` FFT per patch, O(side^2 log side): ~0.1 ms for a 64 x 64 patch
(nside 256, 1/192) against ~100 ms for ``anafast`` of the patch embedded in a full map.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ._footprint import check_no_missing

__all__ = ["patch_square_order", "to_square", "patch_side", "fft_ell", "fft_band_powers"]


def patch_side(npix_patch: int) -> int:
    """Side of a nested base patch of ``npix_patch`` pixels (a power of 2); ValueError otherwise."""
    side = int(round(math.sqrt(npix_patch)))
    if side * side != npix_patch or side & (side - 1):
        raise ValueError(f"a nested base patch has side^2 pixels with side a power of 2, got {npix_patch} pixels")
    return side


@lru_cache(maxsize=16)
def _order(side: int) -> np.ndarray:
    x, y = np.meshgrid(np.arange(side), np.arange(side))  # image[y, x]
    nest = np.zeros((side, side), dtype=np.int64)
    for b in range(max(side.bit_length() - 1, 0)):
        nest |= ((x >> b) & 1) << (2 * b)
        nest |= ((y >> b) & 1) << (2 * b + 1)
    order = nest.ravel()
    order.setflags(write=False)
    return order


def patch_square_order(side: int) -> np.ndarray:
    """Indices (side*side,) into a patch's nested values: ``values[..., order].reshape(side, side)``
    is the image with ``image[y, x]`` at face coordinates (x, y) relative to the patch corner."""
    patch_side(int(side) ** 2)
    return _order(int(side))


def to_square(values: np.ndarray) -> np.ndarray:
    """Nested patch values (..., side^2) -> images (..., side, side) (a copy)."""
    values = np.asarray(values)
    side = patch_side(values.shape[-1])
    return values[..., _order(side)].reshape(values.shape[:-1] + (side, side))


def fft_ell(side: int, nside: int) -> np.ndarray:
    """Multipole of every FFT frequency of a ``side x side`` patch at ``nside``, shape (side, side)."""
    d = math.sqrt(4 * math.pi / (12 * nside * nside))
    f = np.fft.fftfreq(side) * side  # cycles per side
    m = np.hypot(f[:, None], f[None, :])
    return 2 * math.pi * m / (side * d)


@lru_cache(maxsize=8)
def _taper(side: int) -> np.ndarray:
    """2-D Tukey window: cosine tapers over the outer 1/8 of the side at each edge, flat inside
    (<w^2> ~ 0.77: most of the patch keeps full weight; a Hann window, <w^2> = 0.14, would
    throw most of the area away and raise the estimator's variance)."""
    from scipy.signal.windows import tukey

    w = tukey(side, alpha=0.25, sym=False)
    w2 = np.outer(w, w)
    w2.setflags(write=False)
    return w2


def fft_band_powers(images: np.ndarray, nside: int, ell_edges: np.ndarray, apodize: bool = True) -> np.ndarray:
    """Band powers (n, n_bands) of images (n, side, side): flat-sky C_l averaged over the FFT
    modes with ``ell_edges[b] <= l < ell_edges[b+1]``.

    Each image has its mean removed and is multiplied by a 2-D Tukey window (``apodize``: cosine
    tapers over the outer eighths);
    ``C = |FFT|^2 d^2 / (side^2 <w^2>)`` with d the pixel spacing.  Bands without modes raise
    ValueError (choose edges from :func:`fft_ell`), and so do NaN/inf/UNSEEN pixels.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be shaped (n, side, side), got {images.shape}")
    check_no_missing(images, "in the images given to fft_band_powers (one would make its image's band powers NaN)",
                     "choose patches without missing pixels or fill them")
    side = images.shape[1]
    ell = fft_ell(side, nside).ravel()
    edges = np.asarray(ell_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("ell_edges must be an increasing 1-D array of at least 2 values")
    band = np.searchsorted(edges, ell, side="right") - 1
    keep = (band >= 0) & (band < edges.size - 1)
    counts = np.bincount(band[keep], minlength=edges.size - 1)
    if np.any(counts == 0):
        raise ValueError(f"band(s) {np.flatnonzero(counts == 0).tolist()} of ell_edges hold no FFT mode "
                         f"of a {side} x {side} patch at nside {nside}")
    x = images - images.mean(axis=(1, 2), keepdims=True)
    w = _taper(side) if apodize else np.ones((side, side))
    p = np.abs(np.fft.fft2(x * w)) ** 2
    d2 = 4 * math.pi / (12 * nside * nside)
    p *= d2 / (side * side * np.mean(w * w))
    p = p.reshape(len(p), -1)[:, keep]
    sums = np.zeros((len(p), edges.size - 1))
    np.add.at(sums.T, band[keep], p.T)
    return sums / counts
