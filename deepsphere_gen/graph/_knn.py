"""k-nearest-neighbour graphs with Gaussian weights on any sampling."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._memory import index_dtype
from ..sampling import HealpixSampling, check_sampling
from ._connectivity import ring_links, warn_if_disconnected
from ._kernel import default_sigma
from ._neighbours import CHUNK, check_neighbours, knn_distances
from ._pattern import healpix_knn_pattern
from ._poles import distinct_points, pole_rings, split_poles

__all__ = ["knn_graph"]

def _non_mutual(idx: np.ndarray) -> np.ndarray:
    """(npix, k) bool: True where i = row is not among the neighbours of j = idx[i, a]."""
    n, k = idx.shape
    out = np.empty((n, k), dtype=bool)
    step = max(1, CHUNK // k)
    for s in range(0, n, step):
        e = min(n, s + step)
        rows = np.arange(s, e, dtype=idx.dtype)
        out[s:e] = ~(idx[idx[s:e]] == rows[:, None, None]).any(axis=2)
    return out


def knn_graph(sampling, k: int = 20, sigma: float | None = None) -> sp.csr_matrix:
    """Symmetric weighted kNN graph of a sampling (full or partial HEALPix, DH, GL, MW, ...).

    Distance: euclidean (chordal) distance d between the unit vectors, as DeepSphere v2.
    Weight: ``w = exp(-ln2 d^2 / sigma^2)``; ``sigma=None`` takes :func:`default_sigma`.
    Symmetrised as ``W = max(W_knn, W_knn^T)``: i and j are linked when either is among
    the k nearest of the other (the weight only depends on d, so both directions agree).
    No self-loops; every node has at least k neighbours.

    HEALPix: the neighbours come from the grid (``healpix_knn``, ties at the k-th distance
    broken by the smaller pixel index) and the symmetrisation from each node's k-th
    (distance, index) pair, both O(npix k) (``healpix_knn_pattern``); other samplings: a
    k-d tree (ties broken as it returns them) and a check of every edge's reverse, O(npix k^2).

    Equiangular grids (DH, GL, MW, lat-lon :class:`~deepsphere_gen.sampling.EquiangularSampling`):
    a ring of pixels at a pole (DH, a lat-lon grid with the poles) is copies of one point: the graph is
    that of the distinct points, each pole's edges shared evenly by its copies (weights / copies), which
    are not linked to each other (:mod:`~deepsphere_gen.graph._poles`; the default sigma is taken over
    the distinct points too).  Near a pole all k nearest neighbours of a pixel can sit on its own ring, and the kNN edges alone
    then fall apart into several components (the smallest k that connects them grows with the grid,
    ~L/3 on DH).  Where no kNN edge crosses between two consecutive rings, each pixel of both rings
    is also linked to the nearest pixel of the other ring (same Gaussian weight;
    :func:`~deepsphere_gen.graph._connectivity.ring_links`); a kNN graph with an edge across every
    gap is unchanged.  A graph that is still disconnected comes with a RuntimeWarning naming its
    components and the remedies (``build_graph(..., kind="4neighbour")``, or a larger k;
    HEALPix and point sets are not checked).

    Returns a (npix, npix) float64 CSR matrix with sorted indices (int32 when they fit).
    Cost: see :func:`~deepsphere_gen.graph.build_graph` (which keeps HEALPix graphs as their
    pattern instead of this explicit float64 W: 3 GB at nside 1024, k = 20).
    """
    xyz = check_sampling(sampling).xyz
    n = xyz.shape[0]
    k = check_neighbours(sampling, k)
    if isinstance(sampling, HealpixSampling):
        del xyz
        sigma = default_sigma(sampling, k) if sigma is None else sigma
        return healpix_knn_pattern(sampling, k, _check_sigma(sigma)).weights(sampling)
    poles = pole_rings(sampling)
    if poles:  # the kNN of the distinct points, each pole once (split over its copies below)
        keep = distinct_points(sampling, poles)
        xyz = xyz[keep]
    idx, d2 = knn_distances(xyz, k)
    if sigma is None:
        sigma = default_sigma(sampling, k, mean_distance=_mean_sqrt(d2))
    sigma = _check_sigma(sigma)
    w = d2  # reuse the buffer: weights in place of squared distances
    for s in range(0, n, CHUNK):
        np.multiply(w[s : s + CHUNK], -np.log(2.0) / sigma**2, out=w[s : s + CHUNK])
        np.exp(w[s : s + CHUNK], out=w[s : s + CHUNK])
    W = _symmetrise(idx, w)
    if poles:
        W = split_poles(W, xyz, idx, k, sigma, keep, sampling.npix, poles)
    W = ring_links(sampling, W, sigma)
    warn_if_disconnected(sampling, W, k)
    return W


def _check_sigma(sigma) -> float:
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"kernel width sigma must be a positive finite number, got {sigma!r}")
    return sigma


def _mean_sqrt(d2: np.ndarray) -> float:
    total = 0.0
    for s in range(0, d2.shape[0], CHUNK):
        total += float(np.sqrt(d2[s : s + CHUNK]).sum())
    return total / d2.size


def _symmetrise(idx: np.ndarray, w: np.ndarray) -> sp.csr_matrix:
    """CSR of max(W, W^T) for the directed kNN graph (row i -> idx[i], weights w).

    Built directly (no transpose, no sparse binary op): every directed edge, plus the
    reverse of each non-mutual edge, written row block by row block with the columns sorted.
    """
    n, k = idx.shape
    nm = _non_mutual(idx)
    src = np.flatnonzero(nm.ravel())  # flat positions of the non-mutual edges
    del nm
    extra_row = idx.ravel()[src].astype(np.int64)
    order = np.argsort(extra_row, kind="stable")
    extra_row = extra_row[order]
    extra_col = (src // k)[order]
    extra_w = w.ravel()[src][order]
    del src, order
    counts = np.bincount(extra_row, minlength=n) + k
    nnz = int(counts.sum())
    itype = index_dtype(max(n, nnz))
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(nnz, dtype=itype)
    data = np.empty(nnz, dtype=w.dtype)
    slot = np.arange(k)
    for s in range(0, n, CHUNK):  # each row's own k entries, sorted by column, first
        e = min(n, s + CHUNK)
        key = np.sort(idx[s:e].astype(np.int64) * k + slot, axis=1)
        pos = indptr[s:e, None].astype(np.int64) + slot
        indices[pos] = (key // k).astype(itype)
        data[pos] = np.take_along_axis(w[s:e], key % k, axis=1)
    if extra_row.size:  # then the reverse edges at the end of their rows, and those rows re-sorted
        first = np.searchsorted(extra_row, extra_row)
        pos = indptr[extra_row].astype(np.int64) + k + (np.arange(extra_row.size) - first)
        indices[pos] = extra_col
        data[pos] = extra_w
        rows = np.unique(extra_row)
        lo, hi = indptr[rows].astype(np.int64), indptr[rows + 1].astype(np.int64)
        seg = np.repeat(np.arange(rows.size), hi - lo)
        at = np.arange(seg.size) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo) + np.repeat(lo, hi - lo)
        order = np.lexsort((indices[at], seg))
        indices[at], data[at] = indices[at][order], data[at][order]
    W = sp.csr_matrix((data, indices, indptr), shape=(n, n), copy=False)
    W.has_sorted_indices = True
    return W
