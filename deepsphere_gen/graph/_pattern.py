"""kNN graphs kept as a sparsity pattern: weights recomputed from the pixel coordinates on demand.

A Gaussian kNN weight ``w_ij = exp(-ln2 d_ij^2 / sigma^2)`` is a function of the two
pixels, so a HEALPix kNN graph is stored as the CSR pattern of its Laplacian (the
symmetrised neighbours plus the diagonal, sorted, int32) and ``sigma``.  Every matrix
(W, L, the rescaled L~ in float32 for a layer) is written from it in one pass of row
blocks that recomputes the distances exactly as the neighbour search did, so the values
equal those of an explicit W bit for bit, and a layer's CSR tensor can share the pattern's
index arrays: at HEALPix nside 1024, k = 20 the graph costs 1.1 GB and a float32 layer
1.1 GB more, instead of 3 GB + 2.1 GB.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._memory import raise_mmap_threshold, release_free_memory
from ._healpix_knn import coordinates, healpix_knn, squared_distances

__all__ = ["KnnPattern", "healpix_knn_pattern"]

_ROWS = 1 << 14  # rows per block (temporaries of a few MB)

def _block_coordinates(sampling, s: int, e: int, rows: np.ndarray, cols: np.ndarray):
    """(x, y, z of a row block's pixels, ``rows`` and ``cols`` renumbered into them).

    The block's pixels are its rows s..e-1 (numbered 0..e-s-1) followed by the distinct
    columns outside them (sorted, numbered from e-s on); their x, y, z come from
    ``sampling.xyz_of`` (equal bit for bit to the rows of ``sampling.xyz``), so the squared
    distances equal those of the neighbour search (same operands, same operations) while no
    (npix,) coordinate array exists (288 MiB at nside 1024; a block's are ~1 MiB).  Cost
    O(block entries) plus a sort of the outside columns (a few % of them); no per-pixel state.
    """
    c = cols - cols.dtype.type(s)
    out = (c < 0) | (c >= e - s)
    other = cols[out]
    outside = np.unique(other)
    c[out] = (e - s) + np.searchsorted(outside, other)
    xyz = tuple(np.concatenate(parts) for parts in zip(sampling.xyz_of(slice(s, e)), sampling.xyz_of(outside)))
    return xyz, rows - s, c


class KnnPattern:
    """Symmetrised kNN graph as (indptr, indices) of its Laplacian's pattern and the kernel width.

    ``indptr`` (npix + 1,), ``indices`` (nnz + npix,) int32 when they fit, sorted rows, the
    diagonal included.  :meth:`values` writes any Laplacian-like matrix on the pattern.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, sigma: float):
        self.indptr, self.indices, self.sigma = indptr, indices, float(sigma)

    @property
    def npix(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def nnz(self) -> int:
        """Stored entries of W (the pattern without its diagonal)."""
        return int(self.indices.size - self.npix)

    def _blocks(self):
        raise_mmap_threshold()  # the blocks' temporaries reuse heap pages (values pass: 604K -> 11K page faults, nside 512)
        n = self.npix
        for s in range(0, n, _ROWS):
            e = min(n, s + _ROWS)
            lo, hi = int(self.indptr[s]), int(self.indptr[e])
            counts = np.diff(self.indptr[s : e + 1])
            yield s, e, lo, hi, counts, self.indices[lo:hi]

    def _weights(self, sampling, s, e, counts, cols) -> np.ndarray:
        """w on the block's entries (0 on the diagonal), as the explicit kNN graph computes them."""
        Xb, r, c = _block_coordinates(sampling, s, e, np.repeat(np.arange(s, e), counts), cols)
        d2 = squared_distances(Xb, r, c)  # the search's ranking key
        np.sqrt(d2, out=d2)  # the k-d tree's rounding: sqrt(s)**2
        np.square(d2, out=d2)
        np.multiply(d2, -np.log(2.0) / self.sigma**2, out=d2)
        np.exp(d2, out=d2)
        d2[self._diagonal(s, e, counts, cols)] = 0.0  # positions from the pixel numbers, not the renumbered ones
        return d2

    @staticmethod
    def _diagonal(s, e, counts, cols) -> np.ndarray:
        """Positions (within the block) of the diagonal entries, one per row."""
        rows = np.repeat(np.arange(s, e, dtype=cols.dtype), counts)
        return np.flatnonzero(rows == cols)

    @staticmethod
    def _row_sums(w, counts, diag) -> np.ndarray:
        """Row sums of W, the diagonal (0) left out so that each row's sum runs over the same
        entries, hence rounds the same, as ``W.sum(axis=1)`` (numpy's ``add.reduceat``)."""
        off = np.delete(w, diag)
        n_off = counts - 1
        starts = np.concatenate([[0], np.cumsum(n_off)[:-1]])
        sums = np.add.reduceat(off, np.minimum(starts, max(off.size - 1, 0))) if off.size else np.zeros(counts.size)
        sums[n_off == 0] = 0.0  # reduceat gives an element, not 0, for an empty segment
        return sums

    def degrees(self, sampling) -> np.ndarray:
        deg = np.empty(self.npix)
        for s, e, lo, hi, counts, cols in self._blocks():
            w = self._weights(sampling, s, e, counts, cols)
            deg[s:e] = self._row_sums(w, counts, self._diagonal(s, e, counts, cols))
        return deg

    def diagonal_offsets(self) -> np.ndarray:
        """(npix,) offset of each row's diagonal entry within the row (its position minus
        ``indptr[row]``): uint8 when every row has at most 256 entries, else the index dtype.
        One pass over the index array, no coordinates (~0.05 s at nside 512, k = 20)."""
        longest = int(np.diff(self.indptr).max(initial=0))
        out = np.empty(self.npix, dtype=np.uint8 if longest <= 256 else self.indices.dtype)
        for s, e, lo, hi, counts, cols in self._blocks():
            out[s:e] = self._diagonal(s, e, counts, cols) - (self.indptr[s:e] - lo)
        return out

    def values(self, sampling, kind: str = "combinatorial", scale: float = 1.0, shift: float = 0.0,
               dtype=np.float64, weights_only: bool = False) -> np.ndarray:
        """Values on the pattern of ``scale * L + shift * I`` (or of W with ``weights_only``),
        computed in float64 with the operations of ``laplacian_csr`` and stored as ``dtype``."""
        out = np.empty(self.indices.size, dtype=dtype)
        dinv = None
        if kind == "normalized" and not weights_only:
            deg = self.degrees(sampling)
            dinv = np.zeros(self.npix)
            np.power(deg, -0.5, where=deg > 0, out=dinv)
        for s, e, lo, hi, counts, cols in self._blocks():
            w = self._weights(sampling, s, e, counts, cols)
            if weights_only:
                out[lo:hi] = w
                continue
            diag = self._diagonal(s, e, counts, cols)
            if dinv is None:
                d = self._row_sums(w, counts, diag)
                vals = w
            else:
                d = (dinv[s:e] > 0).astype(np.float64)
                vals = (np.repeat(dinv[s:e], counts) * w) * dinv[cols]
            vals = scale * -vals if scale != 1.0 else -vals
            dd = d * scale if scale != 1.0 else d
            vals[diag] = dd + shift if shift != 0.0 else dd
            out[lo:hi] = vals
        return out

    def weights(self, sampling) -> sp.csr_matrix:
        """W as an explicit (npix, npix) float64 CSR (sorted, no diagonal)."""
        n = self.npix
        w = self.values(sampling, weights_only=True)
        keep = np.ones(self.indices.size, dtype=bool)
        keep[self.indptr[:-1] + self.diagonal_offsets()] = False
        indptr = (self.indptr - np.arange(n + 1)).astype(self.indptr.dtype)
        W = sp.csr_matrix((w[keep], self.indices[keep], indptr), shape=(n, n), copy=False)
        W.has_sorted_indices = True
        return W


def pattern_buffer(npix: int, k: int) -> tuple[int, np.dtype]:
    """``(capacity, index dtype)`` of :func:`healpix_knn_pattern`'s index buffer on ``npix`` pixels:
    room for the ``npix * k`` neighbours, the diagonal and ~6 % reverse edges (a larger buffer is
    taken if there are more); int32 below 2**31 - 1 entries, else int64."""
    cap = npix * (k + 1) + max(1024, npix * k // 16)
    return cap, np.dtype(np.int32 if cap < 2**31 - 1 else np.int64)


def healpix_knn_pattern(sampling, k: int, sigma: float) -> KnnPattern:
    """Pattern of max(W_knn, W_knn^T) + I on a HEALPix sampling, built in place.

    The (npix, k) neighbour table is written into the front of the buffer that becomes the
    pattern's index array; the non-mutual edges' reverses are found with one comparison per
    edge against the target's k-th (distance, index) pair; then row blocks move, last first,
    to their final places (never over rows not yet moved), each row sorted with its diagonal
    and reverse edges.  Peak memory: the index array, 12 bytes per pixel and a block.
    """
    n = sampling.npix
    cap, itype = pattern_buffer(n, k)
    buf = np.empty(cap, dtype=itype)
    idx = buf[: n * k].reshape(n, k)
    X = coordinates(sampling)
    kth, last = healpix_knn(sampling, k, idx, X)
    extra_row, extra_col = [], []
    for s in range(0, n, _ROWS):
        e = min(n, s + _ROWS)
        j = idx[s:e].astype(np.int64)
        rows = np.broadcast_to(np.arange(s, e)[:, None], j.shape)
        sij = squared_distances(X, rows, j)
        kj = kth[j]
        nm = (sij > kj) | ((sij == kj) & (rows > last[j]))  # i is not among j's k nearest
        extra_row.append(j[nm])
        extra_col.append(rows[nm])
    del X, kth, last
    extra_row, extra_col = np.concatenate(extra_row), np.concatenate(extra_col)
    order = np.lexsort((extra_col, extra_row))
    extra_row, extra_col = extra_row[order], extra_col[order]
    counts = np.bincount(extra_row, minlength=n) + (k + 1)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    total = int(indptr[-1])
    if total > cap:  # more reverse edges than room: move to a larger buffer
        bigger = np.empty(total, dtype=itype)
        bigger[: n * k] = buf[: n * k]
        buf = bigger
    del idx
    at = np.searchsorted(extra_row, np.arange(0, n + _ROWS, _ROWS).clip(max=n))
    slot = np.arange(k + 1)
    blocks = list(range(0, n, _ROWS))
    for b in reversed(range(len(blocks))):
        s = blocks[b]
        e = min(n, s + _ROWS)
        own = np.empty((e - s, k + 1), dtype=np.int64)
        own[:, :k] = buf[s * k : e * k].reshape(e - s, k)
        own[:, k] = np.arange(s, e)
        own.sort(axis=1)
        pos = indptr[s:e, None] + slot
        buf[pos] = own
        ea, eb = at[b], at[b + 1]
        if eb > ea:  # rows with reverse edges: append them, then sort those rows
            r, c = extra_row[ea:eb], extra_col[ea:eb]
            first = np.searchsorted(r, r)
            buf[indptr[r] + (k + 1) + (np.arange(r.size) - first)] = c
            rows = np.unique(r)
            lo, hi = indptr[rows], indptr[rows + 1]
            seg = np.repeat(np.arange(rows.size), hi - lo)
            pos = np.arange(seg.size) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo) + np.repeat(lo, hi - lo)
            vals = buf[pos]
            buf[pos] = vals[np.lexsort((vals, seg))]
    buf.resize(total, refcheck=False)  # shrinks in place
    pattern = KnnPattern(indptr.astype(itype), buf, sigma)
    del indptr, extra_row, extra_col, order, at
    release_free_memory()
    return pattern
