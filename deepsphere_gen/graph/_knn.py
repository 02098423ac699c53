"""k-nearest-neighbour graphs with Gaussian weights on any sampling."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._kernel import default_sigma
from ._neighbours import CHUNK, check_k, index_dtype, knn_distances

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

    Returns a (npix, npix) float64 CSR matrix with sorted indices (int32 when they fit).
    Cost: one cKDTree query (all cores) and O(npix k) vectorised work in row chunks;
    HEALPix nside 1024, k=20 (12.6M nodes, 254M edges): 7.4 GB peak, about 4 min on
    2 busy cores.
    """
    xyz = sampling.xyz
    n = xyz.shape[0]
    k = check_k(k)
    if k >= n:
        raise ValueError(f"k={k} neighbours needs more than k pixels; the sampling has {n}")
    idx, d2 = knn_distances(xyz, k)
    if sigma is None:
        sigma = default_sigma(sampling, k, mean_distance=_mean_sqrt(d2))
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"kernel width sigma must be a positive finite number, got {sigma!r}")
    w = d2  # reuse the buffer: weights in place of squared distances
    for s in range(0, n, CHUNK):
        np.multiply(w[s : s + CHUNK], -np.log(2.0) / sigma**2, out=w[s : s + CHUNK])
        np.exp(w[s : s + CHUNK], out=w[s : s + CHUNK])
    return _symmetrise(idx, w)


def _mean_sqrt(d2: np.ndarray) -> float:
    total = 0.0
    for s in range(0, d2.shape[0], CHUNK):
        total += float(np.sqrt(d2[s : s + CHUNK]).sum())
    return total / d2.size


def _symmetrise(idx: np.ndarray, w: np.ndarray) -> sp.csr_matrix:
    """CSR of max(W, W^T) for the directed kNN graph (row i -> idx[i], weights w).

    Built directly (no transpose, no sparse binary op): every directed edge, plus the
    reverse of each non-mutual edge appended to the row of its target.
    """
    n, k = idx.shape
    nm = _non_mutual(idx)
    src = np.nonzero(nm.ravel())[0]  # flat positions of the non-mutual edges
    del nm
    extra_row = idx.ravel()[src].astype(np.int64)
    extra_col = src // k
    extra_w = w.ravel()[src]
    order = np.argsort(extra_row, kind="stable")
    extra_row, extra_col, extra_w = extra_row[order], extra_col[order], extra_w[order]
    counts = np.full(n, k, dtype=np.int64)
    counts += np.bincount(extra_row, minlength=n)
    nnz = int(counts.sum())
    itype = index_dtype(max(n, nnz))
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(counts, out=indptr[1:])
    at = (extra_row + 1) * k  # insert each reverse edge at the end of its row's k entries
    indices = np.insert(idx.ravel(), at, extra_col.astype(idx.dtype)).astype(itype, copy=False)
    data = np.insert(w.ravel(), at, extra_w)
    W = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    W.sort_indices()
    return W
