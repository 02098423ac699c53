"""Hand-crafted statistics of mass-map patches: the features of the PSD, histogram and strong baselines.

A nested base patch is a ``side x side`` image (:func:`deepsphere_gen.datasets.patch_psd.to_square`).
:class:`PatchFeatures` computes, per patch, groups of features:

- ``psd``: log FFT band powers (:func:`~deepsphere_gen.datasets.patch_psd.fft_band_powers`),
  ``n_psd`` log-spaced bands from 2 cycles per patch to the axis Nyquist frequency;
- ``hist``: the normalised 40-bin pixel histogram on fixed bins (training quantiles 0.1 %-99.9 %);
- ``moments``: mean, std, skewness, excess kurtosis;
- ``peaks``: counts of local maxima (above their 8 neighbours) per pixel in height bins;
- ``minkowski``: the three Minkowski functionals V0 (area fraction above the threshold),
  V1 (boundary length / 4 per pixel) and V2 (Euler characteristic per pixel) at
  ``n_thresholds`` thresholds (:func:`minkowski_functionals`).

``moments``, ``peaks`` and ``minkowski`` are measured at every smoothing scale of
``scales_pix`` (Gaussian sigma in pixels, 0 = unsmoothed; on the square image with reflecting
edges, computed through the DCT; the flat-sky approximation of a curved patch),
with thresholds ``nu * sigma_s`` fixed at fit time from the training pixels' std sigma_s at
that scale (one number for both classes, so thresholds carry no class information).

The strong baseline uses all groups: a cosmologist's standard non-Gaussian toolbox
(power spectrum, one-point PDF, peak counts, Minkowski functionals, multi-scale).
Cost at nside 256: ~2 ms per 64 x 64 patch with 4 scales (one core).
"""
from __future__ import annotations

import numpy as np

from ...datasets.patch_psd import fft_band_powers, fft_ell, patch_side, to_square

__all__ = ["FEATURE_GROUPS", "MIN_SIDE", "minkowski_functionals", "peak_counts", "moments", "PatchFeatures"]

#: smallest patch side (pixels) :class:`PatchFeatures` accepts (smaller patches hold too few FFT modes,
#: peaks and smoothing scales for these statistics)
MIN_SIDE = 8

FEATURE_GROUPS = ("psd", "hist", "moments", "peaks", "minkowski")


def _derivatives(u: np.ndarray):
    uy, ux = np.gradient(u, axis=(1, 2))
    uyy, uyx = np.gradient(uy, axis=(1, 2))
    _, uxx = np.gradient(ux, axis=(1, 2))
    return ux, uy, uxx, uyy, uyx


def minkowski_functionals(images: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """V0, V1, V2 of the excursion sets ``u > nu`` of images (n, h, w): (n, 3, n_thresholds).

    Per unit area in pixels^2 (derivatives by central differences, ``np.gradient``):
    V0 = fraction of pixels above nu; V1 = (1/4A) int delta(u - nu) |grad u| dA (a quarter of
    the boundary length per area); V2 = (1/2piA) int delta(u - nu) kappa |grad u| dA with
    kappa |grad u| = (2 ux uy uxy - ux^2 uyy - uy^2 uxx) / |grad u|^2 (the Euler characteristic
    per area).  The delta function is a top hat of width ``d`` = the threshold spacing
    (``thresholds`` must be equally spaced).  For a Gaussian field of variance s0^2 and
    gradient variance s1^2 = <|grad u|^2>: V0 = erfc(nu / sqrt 2 s0) / 2,
    V1 = s1 / (8 sqrt 2 s0) e^(-nu^2/2s0^2), V2 = s1^2 / (2 s0^2 (2pi)^(3/2)) (nu/s0) e^(-nu^2/2s0^2).
    """
    u = np.asarray(images, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if u.ndim != 3:
        raise ValueError(f"images must be shaped (n, h, w), got {u.shape}")
    if t.ndim != 1 or t.size < 2 or not np.allclose(np.diff(t), t[1] - t[0]) or t[1] <= t[0]:
        raise ValueError("thresholds must be increasing and equally spaced (at least 2)")
    n, area = len(u), u.shape[1] * u.shape[2]
    d = t[1] - t[0]
    # V0: pixels above each threshold, from the count of pixels between consecutive thresholds
    above = np.searchsorted(t, u.reshape(n, -1), side="left")  # number of thresholds below u
    counts = np.bincount((np.arange(n)[:, None] * (t.size + 1) + above).ravel(),
                         minlength=n * (t.size + 1)).reshape(n, t.size + 1)
    v0 = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:] / area
    ux, uy, uxx, uyy, uxy = _derivatives(u)
    g2 = ux * ux + uy * uy
    grad = np.sqrt(g2)
    curv = np.divide(2 * ux * uy * uxy - ux * ux * uyy - uy * uy * uxx, g2, out=np.zeros_like(g2), where=g2 > 0)
    b = np.floor((u - t[0]) / d + 0.5).astype(np.int64)  # nearest threshold, top hat of width d
    ok = (b >= 0) & (b < t.size)
    flat = (np.arange(n)[:, None, None] * t.size + b)[ok]
    v1 = np.bincount(flat, weights=grad[ok], minlength=n * t.size).reshape(n, t.size) / (4 * area * d)
    v2 = np.bincount(flat, weights=curv[ok], minlength=n * t.size).reshape(n, t.size) / (2 * np.pi * area * d)
    return np.stack([v0, v1, v2], axis=1)


def peak_counts(images: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Local maxima (strictly above their 8 neighbours, interior pixels) per pixel, binned by
    height into ``edges`` (heights outside fall into the end bins): (n, len(edges) - 1)."""
    u = np.asarray(images, dtype=np.float64)
    c = u[:, 1:-1, 1:-1]
    is_peak = np.ones(c.shape, dtype=bool)
    h, w = u.shape[1:]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_peak &= c > u[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
    nb = len(edges) - 1
    b = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, nb - 1)
    flat = (np.arange(len(u))[:, None, None] * nb + b)[is_peak]
    return np.bincount(flat, minlength=len(u) * nb).reshape(len(u), nb) / (h * w)


def moments(images: np.ndarray) -> np.ndarray:
    """Mean, std, skewness and excess kurtosis of each image: (n, 4)."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    m = x.mean(axis=1)
    c = x - m[:, None]
    c2 = c * c  # products, not c**3 / c**4 (numpy's float power is ~10x slower)
    var = c2.mean(axis=1)
    s = np.sqrt(var)
    safe = np.where(s > 0, s, 1.0)
    return np.stack([m, s, (c2 * c).mean(axis=1) / safe**3, (c2 * c2).mean(axis=1) / safe**4 - 3], axis=1)


class PatchFeatures:
    """Feature groups (:data:`FEATURE_GROUPS`) of nested base patches at ``nside``.

    Call :meth:`fit` once on training values (n, side^2) (fixes histogram bins and the
    per-scale thresholds), then :meth:`transform` -> ``{group: (n, n_features)}``.
    scales_pix: Gaussian smoothing sigmas in pixels (0: none) for moments/peaks/minkowski;
    nu: thresholds in units of the per-scale training std (equally spaced); n_hist: histogram
    bins; n_psd: PSD bands (fewer on small patches, where some bands would hold no FFT mode).
    """

    def __init__(self, nside: int, side: int, scales_pix=(0.0, 1.0, 2.0, 4.0), nu=np.linspace(-2.0, 4.0, 13),
                 n_hist: int = 40, n_psd: int = 16):
        self.nside, self.side = int(nside), patch_side(int(side) ** 2)
        if self.side < MIN_SIDE:
            raise ValueError(f"patches of {self.side} x {self.side} pixels are too small for these statistics")
        self.scales = tuple(float(s) for s in scales_pix)
        if not self.scales or any(s < 0 for s in self.scales):
            raise ValueError(f"scales_pix must be non-negative, got {scales_pix!r}")
        self.nu = np.asarray(nu, dtype=np.float64)
        self.n_hist, self.n_psd = int(n_hist), int(n_psd)
        ell = fft_ell(self.side, self.nside)
        lo, hi = ell[0, 2], ell[0, self.side // 2]  # 2 cycles per patch .. Nyquist along an axis
        edges = np.geomspace(lo, hi, self.n_psd + 1)
        edges[-1] *= 1.0001
        # small patches: merge bands that hold no FFT mode into their upper neighbour
        counts = np.histogram(ell.ravel(), bins=edges)[0]
        self.ell_edges = np.concatenate([edges[:1], edges[1:][counts > 0]])
        self.hist_edges, self.sigma = None, None

    def _smooth(self, images: np.ndarray, s: float, coeffs: np.ndarray | None = None) -> np.ndarray:
        """Gaussian smoothing of sigma ``s`` pixels with reflecting edges, through the DCT-II (whose
        implied extension is the half-sample mirror image: ``scipy.ndimage.gaussian_filter`` with mode
        "reflect", untruncated and with the continuous kernel's transform (0.4 % apart at sigma 1
        pixel, identical from ~2 pixels), at FFT cost).  ``coeffs``: the images' DCT."""
        if s == 0:
            return images
        from scipy.fft import dctn, idctn

        c = dctn(images, type=2, axes=(1, 2), norm="ortho") if coeffs is None else coeffs
        k = np.pi * np.arange(images.shape[1]) / images.shape[1]
        g = np.exp(-0.5 * (k * s) ** 2)
        return idctn(c * g[:, None] * g[None, :], type=2, axes=(1, 2), norm="ortho")

    def fit(self, values: np.ndarray) -> "PatchFeatures":
        """Histogram edges and per-scale stds from training values (n, side^2) (both classes)."""
        img = to_square(np.asarray(values, dtype=np.float64))
        lo, hi = np.quantile(img, (0.001, 0.999))
        if not hi > lo:
            raise ValueError("training pixel values are constant: no histogram bins")
        self.hist_edges = np.linspace(lo, hi, self.n_hist + 1)
        self.sigma = [float(self._smooth(img, s).std()) for s in self.scales]
        return self

    def transform(self, values: np.ndarray, groups=FEATURE_GROUPS) -> dict:
        """``{group: (n, features)}`` for values (n, side^2) in nested patch order."""
        if self.sigma is None:
            raise ValueError("call fit before transform")
        bad = [g for g in groups if g not in FEATURE_GROUPS]
        if bad:
            raise ValueError(f"unknown feature group(s) {bad}; choose from {FEATURE_GROUPS}")
        img = to_square(np.asarray(values, dtype=np.float64))
        out = {}
        if "psd" in groups:
            out["psd"] = np.log(np.clip(fft_band_powers(img, self.nside, self.ell_edges), 1e-300, None))
        if "hist" in groups:
            b = np.clip(np.searchsorted(self.hist_edges, img.reshape(len(img), -1), side="right") - 1,
                        0, self.n_hist - 1)
            out["hist"] = np.stack([np.bincount(r, minlength=self.n_hist) for r in b]) / b.shape[1]
        per_scale = {g: [] for g in ("moments", "peaks", "minkowski") if g in groups}
        if per_scale:
            from scipy.fft import dctn

            coeffs = dctn(img, type=2, axes=(1, 2), norm="ortho")
            for s, sig in zip(self.scales, self.sigma):
                u = self._smooth(img, s, coeffs)
                t = self.nu * sig
                if "moments" in per_scale:
                    per_scale["moments"].append(moments(u))
                if "peaks" in per_scale:
                    per_scale["peaks"].append(peak_counts(u, t))
                if "minkowski" in per_scale:
                    per_scale["minkowski"].append(minkowski_functionals(u, t).reshape(len(u), -1))
        out.update({g: np.concatenate(v, axis=1) for g, v in per_scale.items()})
        return out
