"""Pseudo-C_l band powers on a survey footprint with the MASTER mode-coupling correction.

A field f seen through a binary mask w has the pseudo spectrum ``C~_l`` (``healpy.alm2cl``
of ``map2alm(w f)``), whose expectation is ``sum_l' M_ll' C_l'`` with the mode-coupling
matrix (Hivon et al. 2002, eq. A31)

    M_ll' = (2l' + 1) / (4 pi) sum_l'' (2l'' + 1) W_l'' (l l' l''; 0 0 0)^2,

W_l'' the mask's own pseudo spectrum.  Band powers (bands b of ``bin_edges``, ``P_bl`` the
average over the band, ``Q_lb`` = 1 on it): ``C_b = K^-1 P C~`` with ``K = P M Q``.  Their
expectation is exactly ``windows @ C_l`` (``windows = K^-1 P M``, the band-power window
functions), close to the band average of C_l when C_l varies slowly in a band.  The Wigner
3j symbols come from the closed form with a log-factorial table; the coupling matrix costs
O(lmax^2 lmax_mask) (~3 s CPU at lmax 383, once per footprint).
"""
from __future__ import annotations

import healpy as hp
import numpy as np
from scipy.special import gammaln

from ..sampling import check_mask, nside_of
from ._footprint import check_no_missing

__all__ = ["wigner3j_000_squared", "coupling_matrix", "PseudoCl", "default_bin_edges", "band_width", "min_band_fsky"]


def _log_factorial(n: np.ndarray) -> np.ndarray:
    """log(max(n, 0)!) of an integer array (negative entries: log 0! = 0; callers zero them)."""
    return gammaln(np.maximum(n, 0) + 1.0)


def wigner3j_000_squared(l1: int, l2: np.ndarray, l3: np.ndarray, log_factorial=_log_factorial) -> np.ndarray:
    """(l1 l2 l3; 0 0 0)^2 for one l1 and broadcastable integer arrays l2, l3 (0 where forbidden).

    Closed form: for L = l1 + l2 + l3 even and the triangle condition,
    ``(L-2l1)! (L-2l2)! (L-2l3)! / (L+1)! * [(L/2)! / ((L/2-l1)! (L/2-l2)! (L/2-l3)!)]^2``.
    ``log_factorial``: n (int array) -> log(max(n, 0)!) (default ``gammaln``; :func:`coupling_matrix`
    passes a lookup in a table of the same values).
    """
    l2, l3 = np.broadcast_arrays(np.asarray(l2, dtype=np.int64), np.asarray(l3, dtype=np.int64))
    L = l1 + l2 + l3
    ok = (L % 2 == 0) & (l3 >= np.abs(l1 - l2)) & (l3 <= l1 + l2)
    L, a, b = np.where(ok, L, 0), np.where(ok, l2, 0), np.where(ok, l3, 0)
    g = L // 2
    lf = log_factorial  # forbidden entries are zeroed below
    log = (lf(L - 2 * l1) + lf(L - 2 * a) + lf(L - 2 * b) - lf(L + 1)
           + 2 * (lf(g) - lf(g - l1) - lf(g - a) - lf(g - b)))
    return np.where(ok, np.exp(log), 0.0)


def coupling_matrix(mask_cl: np.ndarray, lmax: int) -> np.ndarray:
    """Mode-coupling matrix M (lmax+1, lmax+1) from the mask's pseudo spectrum ``mask_cl`` (l = 0..L).

    The log-factorials are looked up in a table of ``gammaln(n + 1)`` for n = 0..lmax + L + lmax + 1
    (the same values as :func:`wigner3j_000_squared`'s default ``gammaln``, so the same bits; the
    1,000 deg^2 footprint at nside 128, lmax 383, one thread: the estimator's construction 6.6 -> 3.5 s CPU).
    """
    w = np.asarray(mask_cl, dtype=np.float64)
    l3 = np.arange(w.size)
    wt = (2 * l3 + 1) * w
    l2 = np.arange(lmax + 1)
    table = _log_factorial(np.arange(2 * lmax + w.size + 1))  # L + 1 <= 2 lmax + (w.size - 1) + 1
    lookup = lambda n: table[np.maximum(n, 0)]  # noqa: E731
    m = np.empty((lmax + 1, lmax + 1))
    for l1 in range(lmax + 1):
        m[l1] = wigner3j_000_squared(l1, l2[:, None], l3[None, :], lookup) @ wt
    return m * (2 * l2 + 1)[None, :] / (4 * np.pi)


def band_width(fsky: float) -> int:
    """The narrowest band :func:`default_bin_edges` uses on a footprint of sky fraction ``fsky``:
    ``dl = ceil(2 pi / sqrt(4 pi fsky))`` (the footprint's coupling width)."""
    if not 0 < fsky <= 1:
        raise ValueError(f"fsky must lie in (0, 1], got {fsky}")
    return int(np.ceil(2 * np.pi / np.sqrt(4 * np.pi * fsky)))


def _grown_edges(nside: int, dl: int, growth: float) -> list[int]:
    """:func:`default_bin_edges`' edges for the band width ``dl``, however few."""
    top = 2 * int(nside) + 1
    edges = [max(dl, 2)]
    while edges[-1] < top:
        edges.append(min(max(edges[-1] + dl, int(round(edges[-1] * growth))), top))
    if len(edges) > 2 and edges[-1] - edges[-2] < dl:
        del edges[-2]
    return edges


def min_band_fsky(nside: int, growth: float = 1.25) -> float:
    """The smallest sky fraction on which :func:`default_bin_edges` gives at least 2 bands at ``nside``: that of
    the widest band width (:func:`band_width`) its edges allow (inf where no footprint does: nside <= 2).  Below
    it the default bands refuse the footprint; e.g. 0.00712 (294 deg^2) at nside 32, 0.000435 (17.9 deg^2) at
    nside 128.  Cost: one edge construction per candidate width (~2 nside: ms)."""
    widths = [dl for dl in range(1, 2 * int(nside) + 2) if len(_grown_edges(nside, dl, growth)) >= 3]
    if not widths:
        return np.inf
    widest = max(widths)
    fsky = np.pi / widest**2  # band_width(fsky) == widest, up to rounding: nudged up until it is
    while fsky <= 1 and band_width(fsky) > widest:
        fsky = float(np.nextafter(fsky, np.inf))
    return float(fsky) if fsky <= 1 else np.inf


def default_bin_edges(nside: int, fsky: float, growth: float = 1.25) -> np.ndarray:
    """Band edges from l = dl to 2 nside: widths grow by ``growth`` but are never below
    ``dl`` = :func:`band_width` (``ceil(2 pi / sqrt(4 pi fsky))``, the footprint's coupling width: narrower bands
    make the decoupling ill-conditioned).  (n_bands + 1,) int; 12 for the 1,000 deg^2 footprint.  Fewer than 2
    bands: ValueError naming the band width, the sky fraction and the smallest one that works at ``nside``
    (:func:`min_band_fsky`)."""
    dl = band_width(fsky)
    edges = _grown_edges(nside, dl, growth)
    if len(edges) < 3:
        low = min_band_fsky(nside, growth)
        need = (f"the default bands need f_sky >= {low:.4g} ({low * _SKY_DEG2:.4g} deg^2) at nside {nside}" if low <= 1
                else f"no footprint gives 2 default bands at nside {nside}")
        raise ValueError(f"nside {nside} leaves fewer than 2 bands of width {dl} (ceil(2 pi / sqrt(4 pi f_sky)) for "
                         f"f_sky {fsky:.4g}, {fsky * _SKY_DEG2:.4g} deg^2) below l = 2 nside: {need}")
    return np.asarray(edges, dtype=np.int64)


#: the whole sky in square degrees
_SKY_DEG2 = 4 * np.pi * (180 / np.pi) ** 2


class PseudoCl:
    """MASTER band-power estimator on one NESTED footprint.

    Parameters
    ----------
    mask : NESTED footprint (12 nside^2,), booleans or exactly 0/1.
    bin_edges : increasing integer band edges; band b is ``edges[b] <= l < edges[b+1]``
        (default :func:`default_bin_edges` of the footprint's sky fraction).  l outside the reported bands (2..edges[0]-1 and
        edges[-1]..lmax) form two extra bands that take part in the decoupling and are dropped.
    lmax : largest multipole of the transforms (default 3 nside - 1).

    Attributes: ``ell`` (n_bands,) band centres, ``windows`` (n_bands, lmax+1),
    ``coupling`` (lmax+1, lmax+1), ``fsky``.
    Calling with footprint values ``(..., n_fields, n_pixels)`` (pixels in the order of
    ``flatnonzero(mask)``) returns ``(..., n_fields (n_fields+1)/2, n_bands)`` band powers of every auto and
    cross pair (i <= j, row-major: 00, 01, .., 11, ..); NaN/inf/UNSEEN values are refused (ValueError).
    Their expectation is :meth:`bin_theory` of the maps' spectrum with its beam and pixel window (C_l b_l^2 w_l^2).
    Cost per call: n_fields map2alm.
    """

    def __init__(self, mask, bin_edges=None, lmax: int | None = None):
        self.mask = check_mask(mask)
        self.nside = nside_of(self.mask.size)
        self.indices = np.flatnonzero(self.mask)
        self.lmax = 3 * self.nside - 1 if lmax is None else int(lmax)
        edges = (default_bin_edges(self.nside, self.mask.mean()) if bin_edges is None
                 else np.asarray(bin_edges, dtype=np.int64))
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 2 or edges[-1] > self.lmax + 1:
            raise ValueError(f"bin_edges must increase within [2, lmax + 1 = {self.lmax + 1}], got {edges}")
        self.edges = edges
        self.fsky = float(self.mask.mean())
        ring_mask = hp.reorder(self.mask.astype(np.float64), n2r=True)
        mask_cl = hp.anafast(ring_mask, lmax=self.lmax, iter=0)
        self.coupling = coupling_matrix(mask_cl, self.lmax)
        # all bands used in the decoupling: [2, e0), reported ones, [e_last, lmax]
        full = [2] + ([int(edges[0])] if edges[0] > 2 else []) + [int(e) for e in edges[1:]]
        if edges[-1] <= self.lmax:
            full.append(self.lmax + 1)
        full = np.unique(full)
        nb = full.size - 1
        p = np.zeros((nb, self.lmax + 1))
        q = np.zeros((self.lmax + 1, nb))
        for b in range(nb):
            p[b, full[b]:full[b + 1]] = 1.0 / (full[b + 1] - full[b])
            q[full[b]:full[b + 1], b] = 1.0
        k = p @ self.coupling @ q
        self._kinv_p = np.linalg.solve(k, p)
        first = int(np.searchsorted(full, edges[0]))
        self._rows = np.arange(first, first + edges.size - 1)
        self.windows = (self._kinv_p @ self.coupling)[self._rows]
        self.ell = 0.5 * (edges[:-1] + edges[1:] - 1)
        self._ring_indices = hp.nest2ring(self.nside, self.indices)  # footprint pixels in RING order

    @property
    def n_bands(self) -> int:
        return self.edges.size - 1

    def bin_theory(self, cl: np.ndarray) -> np.ndarray:
        """Expected band powers ``windows @ cl`` of a spectrum (..., lmax'+1) with lmax' >= lmax.

        ``cl`` must carry every transfer function of the maps the estimator is given: ``C_l b_l^2 w_l^2`` for maps
        smoothed by a beam ``b_l`` and pixelised with the pixel window ``w_l``
        (:func:`~deepsphere_gen.datasets.pixel_window`); the estimator does not divide them out.  Without ``w_l^2``
        the band powers of pixel-window maps fall below this theory (0.72 of it at l ~ 123 at nside 64, measured on a
        40-degree cap; 1.008 +- 0.018 with it).  The cosmo grid's maps carry neither."""
        cl = np.asarray(cl, dtype=np.float64)[..., : self.lmax + 1]
        if cl.shape[-1] != self.lmax + 1:
            raise ValueError(f"spectrum must reach l = {self.lmax}, got l <= {cl.shape[-1] - 1}")
        return cl @ self.windows.T

    def pseudo_spectra(self, values: np.ndarray) -> np.ndarray:
        """Raw pseudo spectra C~_l of footprint values (n_fields, n_pixels): (n_pairs, lmax+1)."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.indices.size:
            raise ValueError(f"values must be (n_fields, {self.indices.size}) footprint pixels, got {values.shape}")
        check_no_missing(values, "in the values given to PseudoCl (one would make every band power NaN)",
                         "build the estimator on a mask that excludes the missing pixels")
        ring = np.zeros((values.shape[0], self.mask.size))  # the RING map of healpy.reorder(full NESTED map)
        ring[:, self._ring_indices] = values
        alms = [hp.map2alm(f, lmax=self.lmax, iter=0) for f in ring]
        n = len(alms)
        return np.stack([hp.alm2cl(alms[i], alms[j]) for i in range(n) for j in range(i, n)])

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim < 2:
            raise ValueError(f"values must be (..., n_fields, n_pixels), got shape {values.shape}")
        lead = values.shape[:-2]
        flat = values.reshape((-1,) + values.shape[-2:])
        out = np.stack([self.pseudo_spectra(v) @ self._kinv_p.T for v in flat])[..., self._rows]
        return out.reshape(lead + out.shape[1:])
