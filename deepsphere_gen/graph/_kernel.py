"""Gaussian kernel widths of the kNN graphs (DeepSphere v2 optimum, and a default for any sampling).

Weights are ``w = exp(-ln2 d^2 / sigma^2)``: ``sigma`` is the (chordal) distance at which
a weight falls to 1/2; equivalently ``exp(-d^2 / (4 t))`` with ``t = sigma^2 / (4 ln2)``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..sampling import HealpixSampling, check_nside
from ._neighbours import check_k, knn_distances
from ._poles import distinct_points, pole_rings

__all__ = ["KERNEL_WIDTHS_NSIDE32", "kernel_width", "default_sigma"]

#: DeepSphere v2 optimal kernel widths at nside 32 (Defferrard et al. 2020), by k.
KERNEL_WIDTHS_NSIDE32 = {8: 0.02500, 20: 0.03185, 40: 0.042432, 60: 0.051720}

_TABLE_K = np.array(sorted(KERNEL_WIDTHS_NSIDE32), dtype=np.float64)
_TABLE_S2 = np.array([KERNEL_WIDTHS_NSIDE32[k] ** 2 for k in sorted(KERNEL_WIDTHS_NSIDE32)])


def _sigma2_nside32(k: int) -> float:
    """sigma^2 at nside 32: the table, piecewise linear in k in between (i.e. linear in the
    heat-kernel time t = sigma^2 / (4 ln2)), extended linearly with the end segments."""
    ks, s2 = _TABLE_K, _TABLE_S2
    if k <= ks[0]:
        i = 0
    elif k >= ks[-1]:
        i = len(ks) - 2
    else:
        i = int(np.searchsorted(ks, k)) - 1
    slope = (s2[i + 1] - s2[i]) / (ks[i + 1] - ks[i])
    return float(s2[i] + slope * (k - ks[i]))


def kernel_width(nside: int, k: int) -> float:
    """DeepSphere v2 kernel width sigma (chordal distance, unit sphere) for HEALPix.

    ``sigma = sigma_32(k) * 32 / nside``: the nside-32 optimum of
    :data:`KERNEL_WIDTHS_NSIDE32`, halved with each doubling of nside, for every power of
    2 from 1 to ``MAX_NSIDE``.  For k outside the table, sigma_32(k)^2 is interpolated
    piecewise linearly in k between the tabulated k (8, 20, 40, 60) and extrapolated
    linearly with the first / last segment (sigma^2 ~ t grows about linearly with k, as
    the area covered by k neighbours does).
    """
    nside = check_nside(nside)
    k = check_k(k)
    if k in KERNEL_WIDTHS_NSIDE32:
        s32 = KERNEL_WIDTHS_NSIDE32[k]
    else:
        s32 = float(np.sqrt(_sigma2_nside32(k)))
    return s32 * 32.0 / nside


@lru_cache(maxsize=None)
def _healpix_width_ratio(k: int) -> float:
    """kernel_width(32, k) / mean k-neighbour distance of the full nside-32 HEALPix sampling."""
    _, d2 = knn_distances(HealpixSampling(32).xyz, k)
    return kernel_width(32, k) / float(np.sqrt(d2).mean())


def default_sigma(sampling, k: int, mean_distance: float | None = None) -> float:
    """Default kernel width for ``sampling`` and ``k`` neighbours.

    HEALPix (full or partial sky): :func:`kernel_width` of its nside.  Any other
    sampling (equiangular grids, point sets): ``mean_distance`` (the mean distance from
    a node to its k nearest neighbours, computed if not given; over the distinct points, a pole
    ring's coincident pixels counted once, as :func:`~deepsphere_gen.graph.knn_graph`) times the same ratio
    sigma / mean-neighbour-distance that the DeepSphere optimum has on the full
    nside-32 HEALPix sampling.
    """
    k = check_k(k)
    if isinstance(sampling, HealpixSampling):
        return kernel_width(sampling.nside, k)
    if mean_distance is None:
        xyz, poles = sampling.xyz, pole_rings(sampling)
        if poles:  # each pole once (as knn_graph)
            xyz = xyz[distinct_points(sampling, poles)]
        _, d2 = knn_distances(xyz, k)
        mean_distance = float(np.sqrt(d2).mean())
    return _healpix_width_ratio(k) * float(mean_distance)
