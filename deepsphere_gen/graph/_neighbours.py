"""Nearest neighbours of points on the sphere: the k-nearest-neighbour search shared by the
kNN graphs (:mod:`._knn`) and the kernel widths (:mod:`._kernel`), and the checks of k (alone, and against a
sampling's distinct points: :func:`check_neighbours`, :func:`capped_k`)."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .._memory import index_dtype
from .._validation import check_positive_int
from ._poles import n_points

__all__ = ["CHUNK", "capped_k", "check_k", "check_neighbours", "knn_distances"]

CHUNK = 1 << 18  # rows per chunk: bounds the temporaries of the 12.6M-node graphs


def knn_distances(xyz: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other points of every point, by euclidean distance in R^3.

    Returns ``(idx, d2)``, both (npix, k): neighbour indices (int32 below 2**31 points)
    sorted by increasing distance, and squared distances.  A point is never its own
    neighbour; coincident points (e.g. a ring at a pole) are neighbours at distance 0.
    """
    xyz = np.ascontiguousarray(xyz, dtype=np.float64)
    n = xyz.shape[0]
    k = check_k(k)
    if k >= n:
        raise ValueError(f"k={k} neighbours needs more than k points; the sampling has {n}")
    tree = cKDTree(xyz, balanced_tree=False, compact_nodes=False)
    idx = np.empty((n, k), dtype=index_dtype(n))
    d2 = np.empty((n, k), dtype=np.float64)
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        d, j = tree.query(xyz[s:e], k + 1, workers=-1)
        rows = np.arange(s, e)
        is_self = j == rows[:, None]
        # drop the point itself, or the farthest candidate if ties hid it
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        keep = np.ones(j.shape, dtype=bool)
        keep[np.arange(e - s), drop] = False
        idx[s:e] = j[keep].reshape(e - s, k)
        # cKDTree sums (x_i - x_j)^2 over x, y, z in a fixed order: d(i, j) == d(j, i) exactly
        d2[s:e] = np.square(d[keep]).reshape(e - s, k)
    return idx, d2


def check_k(k) -> int:
    """``k`` (number of neighbours) as a positive int, or a ValueError naming it."""
    return check_positive_int(k, "k (number of neighbours)")


def check_neighbours(sampling, k) -> int:
    """``k`` (:func:`check_k`) where a kNN graph of ``sampling`` can have it: a ValueError when ``k`` is at least the
    sampling's distinct points (:func:`~deepsphere_gen.graph._poles.n_points`; a pole ring's pixels are one point).
    The one check of :func:`~deepsphere_gen.graph.build_graph`, :func:`~deepsphere_gen.graph.knn_graph` and the
    models' inputs."""
    k = check_k(k)
    n = n_points(sampling)
    if k >= n:
        npix = int(sampling.npix)
        if n == npix:
            raise ValueError(f"k={k} neighbours needs more than k pixels; the sampling has {npix}")
        raise ValueError(f"k={k} neighbours needs more than k distinct points; the sampling has {n} ({npix} pixels, "
                         "each pole ring's pixels being one point)")
    return k


def capped_k(sampling, k) -> int:
    """``k`` (:func:`check_k`), or one less than the distinct points of ``sampling`` where it has no more than ``k``
    (:func:`~deepsphere_gen.graph._poles.n_points`): the graph is then complete.  ``sampling`` may be that number
    itself (an int, e.g. a HEALPix input's pixels, known before its sampling is built).  The coarse levels of a
    network (:class:`~deepsphere_gen.nn.LaplacianPyramid`), and a command's default k on a tiny input."""
    points = int(sampling) if isinstance(sampling, (int, np.integer)) else n_points(sampling)
    return min(check_k(k), points - 1)
