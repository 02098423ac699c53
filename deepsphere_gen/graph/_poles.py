"""Coincident pixels of ring samplings (a ring at a pole): one point in the kNN graph, split evenly over its copies.

A ring of nphi > 1 pixels at theta = 0 or pi (Driscoll-Healy's first ring, the pole rings of a lat-lon grid
that includes the poles, Clenshaw-Curtis) is nphi copies of one point.  A plain kNN graph joins the copies to
arbitrary subsets of one another at distance 0 (weight 1, against ~0.1-0.5 for other edges): those links set
the Laplacian's lambda_max (DH(32), k = 8: 65 against 10.6 without them; a 181 x 360 grid: 364 against 11),
squeeze every other pixel's rescaled spectrum toward -1, and give the copies different outputs for the same
input.  So :func:`~deepsphere_gen.graph.knn_graph` builds the graph of the *distinct* points (the pole once)
and splits each pole P of m copies with :func:`split_poles`: every copy gets all of P's edges, each weight
divided by m, and no copy is linked to another.  On a signal equal at the copies the Laplacian is then the
distinct-point graph's with P counted m times (its rows at the copies are P's divided by m, its rows
elsewhere are the distinct-point graph's), so all copies give the same output, and lambda_max is at most the
larger of the distinct-point graph's and P's degree / m (the modes that differ between copies): DH(32),
k = 8: 10.8 (10.7 for the graph without the pole ring); 181 x 360, k = 8: 11.4.  (W symmetric, the copies'
degree and what P's neighbours see of P cannot both be P's: giving each copy P's full weights makes its
neighbours count P m times, lambda_max 14.0 on DH(32).  So the copies' degree is P's / m, and a filter at
the pole acts mostly on the pole's own value.)  The pole's neighbours are its k nearest distinct points with
the ties at the k-th distance (the whole next ring of a pole: all equidistant) sharing the slots left evenly,
so no longitude is preferred.  Cost: the copies times the pole's neighbours, twice, stored entries (a block
of nphi^2 per pole and ring: 181 x 360, k = 8: 1.08M non-zeros instead of 0.57M; DH(512), k = 20: 23.7M
instead of 21.7M; kNN build 8.8 s of CPU against 9.9 s before, one thread, noise-level).  Grids without a
pole ring of several pixels (GL, cell-centred lat-lon; MW, whose south pole is one sample) and HEALPix are
not touched (their graphs bit for bit as before).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._connectivity import ring_layout

__all__ = ["distinct_points", "n_points", "pole_rings", "split_poles"]

#: the pixels of a ring with |sin theta| below this are one point (chordal distances below 2e-12)
_AT_POLE = 1e-12

#: relative tolerance on squared distances within which the pole's neighbours are tied at the k-th distance
_TIE = 1e-9


def pole_rings(sampling) -> list[np.ndarray]:
    """Pixel indices of each ring of more than one pixel at a pole (theta = 0 or pi): its pixels coincide.

    Ring samplings only (:func:`~deepsphere_gen.graph._connectivity.ring_layout`); [] for the others and for grids
    without such a ring (MW: its pole ring is one sample).
    """
    rings = ring_layout(sampling)
    if rings is None:
        return []
    theta, start, nphi, order, _ = rings
    at_pole = (np.abs(np.sin(theta)) < _AT_POLE) & (nphi > 1)
    return [np.asarray(order[start[t]: start[t] + nphi[t]], dtype=np.int64) for t in np.flatnonzero(at_pole)]


def n_points(sampling) -> int:
    """Distinct points of ``sampling``: its pixels, each pole ring's copies counted once (:func:`pole_rings`).  The
    kNN graph is that of these points, so ``k`` must stay below this number (the pixels on HEALPix, GL, MW)."""
    return int(sampling.npix) - sum(p.size - 1 for p in pole_rings(sampling))


def distinct_points(sampling, poles: list[np.ndarray]) -> np.ndarray:
    """The pixels kept as the distinct points: all but each pole ring's copies after its first, increasing
    ((n,) int64)."""
    is_copy = np.zeros(sampling.npix, dtype=bool)
    for p in poles:
        is_copy[p[1:]] = True
    return np.flatnonzero(~is_copy)


def split_poles(W: sp.csr_matrix, xyz: np.ndarray, idx: np.ndarray, k: int, sigma: float,
                keep: np.ndarray, npix: int, poles: list[np.ndarray]) -> sp.csr_matrix:
    """The pixels' graph from ``W``, the symmetric kNN graph of the distinct points ``xyz`` (their kNN lists
    ``idx``, (n, k)), with each pole's edges spread over its copies (module docstring).

    A pole P's edges: to each of its k nearest distinct points, weight ``w(d) = exp(-ln2 d^2 / sigma^2)``,
    those tied at the k-th distance sharing the slots left (``w(d) s / ties``), and to each point that lists P
    among its k nearest, ``w(d)`` (the larger of the two where both hold, as the symmetrisation).  Returns a
    symmetric (npix, npix) CSR with sorted indices, W's index dtype.  Cost O(nnz) (a COO pass of W) plus
    O(n) per pole (its distances, to find the ties).
    """
    pole_ids = np.searchsorted(keep, [p[0] for p in poles])  # each pole's index among the distinct points
    is_pole = np.zeros(W.shape[0], dtype=bool)
    is_pole[pole_ids] = True
    # W without the poles' rows and columns, as a CSR over the pixels (the copies' rows empty): keep is increasing
    plain = ~(np.repeat(is_pole, np.diff(W.indptr)) | is_pole[W.indices])
    before = np.concatenate([[0], np.cumsum(plain)])
    counts = np.zeros(npix, dtype=np.int64)
    counts[keep] = before[W.indptr[1:]] - before[W.indptr[:-1]]
    A = sp.csr_matrix((W.data[plain], keep[W.indices[plain]], np.concatenate([[0], np.cumsum(counts)])),
                      shape=(npix, npix))
    del plain, before
    rows, cols, vals = [], [], []
    scale = -np.log(2.0) / sigma**2
    weights = []  # per pole: (n,) its edge weights to every distinct point
    for q in pole_ids:
        d2 = np.sum((xyz - xyz[q]) ** 2, axis=1)
        d2[q] = np.inf  # not its own neighbour (weight exp(-inf) = 0)
        w = np.exp(scale * d2)
        v = np.zeros_like(w)  # w where W links q (its k nearest and the points listing it: max(W_knn, W_knn^T)) ...
        v[W.indices[W.indptr[q]: W.indptr[q + 1]]] = 1.0
        v *= w
        kth = np.partition(d2, k - 1)[k - 1]  # ... but at the ties at the k-th distance
        closer = np.count_nonzero(d2 < kth * (1 - _TIE))
        tied = np.flatnonzero((d2 >= kth * (1 - _TIE)) & (d2 <= kth * (1 + _TIE)))
        apart = tied[~(idx[tied] == q).any(axis=1)]  # tied points not listing the pole: a share of the slots left
        v[apart] = w[apart] * (k - closer) / tied.size
        weights.append(v)
    for a, p in enumerate(poles):
        v = weights[a]
        for b, q in enumerate(pole_ids):  # two poles joined: the larger of the two directions, as W
            v[q] = 0.0 if b == a else max(v[q], weights[b][pole_ids[a]])
        j = np.flatnonzero((v > 0) & ~is_pole)  # ordinary points: one pixel each, the edge both ways
        nb, share = keep[j], np.tile(v[j] / p.size, p.size)
        rows += [np.repeat(p, j.size), np.tile(nb, p.size)]
        cols += [np.tile(nb, p.size), np.repeat(p, j.size)]
        vals += [share, share]
        for b, q in enumerate(pole_ids):  # another pole's copies: this direction (its own loop writes the other)
            if v[q] > 0:
                rows.append(np.repeat(p, poles[b].size))
                cols.append(np.tile(poles[b], p.size))
                vals.append(np.full(p.size * poles[b].size, v[q] / (p.size * poles[b].size)))
    out = A + sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(npix, npix))
    out.sort_indices()  # scipy's sum is sorted already: a check
    itype = W.indices.dtype
    out.indices, out.indptr = out.indices.astype(itype, copy=False), out.indptr.astype(itype, copy=False)
    return out
