"""Nearest neighbours of points on the sphere: the k-nearest-neighbour search shared by the
kNN graphs (:mod:`._knn`) and the kernel widths (:mod:`._kernel`), and its argument check."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .._memory import index_dtype
from .._validation import check_positive_int

__all__ = ["CHUNK", "check_k", "knn_distances"]

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
