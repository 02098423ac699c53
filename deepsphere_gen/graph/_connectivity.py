"""Connectivity of the kNN graphs of ring samplings (equiangular grids): ring links and a check.

Near a pole the pixels of one ring of an equiangular grid are much closer to each other than to
the next ring, so all k nearest neighbours of a polar pixel can sit on its own ring: the plain
kNN graph falls apart into several connected components, and a ChebConv passes nothing between
them.  The smallest k that connects the plain kNN graph (a pole ring's coincident pixels split as
:mod:`._poles` does) grows linearly with the grid (measured, ``connected_components``):
DH(L) 6 / 12 / 21 at L = 16 / 32 / 64 (~L/3), GL(L) 5 / 11 / 23 (~L/3), MW(L) 7 / 13 / 27
(~0.4 L), a lat-lon grid with both poles 6 / 12 / 23 at 19 x 36 / 37 x 72 / 73 x 144 (~nphi / 6).

So :func:`~deepsphere_gen.graph.knn_graph` adds :func:`ring_links` where no kNN edge crosses
between two consecutive rings (only there: a kNN graph that has an edge across every gap
between rings is left as it is, bit for bit), and :func:`warn_if_disconnected` checks the
result (with the links every grid tested is connected from k = 2).  The 4-neighbour grid graph
(``kind="4neighbour"``) is connected on every grid.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components

from .._warnings import PACKAGE, caller_stacklevel
from ..sampling import EquiangularSampling, McEwenWiauxSampling

__all__ = ["footprint_pieces", "ring_layout", "ring_links", "warn_if_disconnected"]

#: a gap between consecutive rings over this many times the median gap separates two pieces of the footprint
_GAP_FACTOR = 2.0

#: at most this many components outside the largest are named in the warning
_NAMED = 6


def footprint_pieces(sampling) -> int | None:
    """Number of pieces of the footprint of a ring sampling, or None where it is not known (not checked).

    An :class:`~deepsphere_gen.sampling.EquiangularSampling` (DH, GL, a lat-lon grid) or a
    :class:`~deepsphere_gen.sampling.McEwenWiauxSampling` is a set of full rings (each a whole circle of
    longitude): its footprint is one piece, the band between its first and last ring, unless a gap between
    consecutive rings exceeds twice their median gap (a user's grid of two polar caps, say: two pieces,
    one more per such gap).  Other samplings (HEALPix, point sets) give None: a partial HEALPix sky may
    legitimately be in several pieces, and full-sky HEALPix kNN graphs are connected for every k >= 2
    (nside 1 - 64 tested; k = 1 pairs pixels and never connects).
    """
    rings = ring_layout(sampling)
    return None if rings is None else 1 + int(np.count_nonzero(_separated(rings[0])))


def ring_layout(sampling) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(theta, start, nphi, order, ring) of a ring sampling, None for other samplings: ``sampling.rings()`` with
    its rings sorted by increasing colatitude (a user's lat-lon grid may list them from the south), so that ring
    ``r``'s pixels by increasing longitude are ``order[start[r]: start[r] + nphi[r]]``, and ``ring``: (npix,)
    each pixel's ring.  O(npix) (``rings()`` makes ``order``)."""
    if not isinstance(sampling, (EquiangularSampling, McEwenWiauxSampling)):
        return None
    r = sampling.rings()
    by_theta = np.argsort(r.theta, kind="stable")
    rank = np.empty(by_theta.size, dtype=np.int64)
    rank[by_theta] = np.arange(by_theta.size)
    ring = np.empty(sampling.npix, dtype=np.int64)
    ring[r.order] = np.repeat(rank, r.nphi)  # ring-major: the rings one after another, as rings() lists them
    return np.asarray(r.theta, dtype=np.float64)[by_theta], r.start[by_theta], r.nphi[by_theta], r.order, ring


def _separated(theta: np.ndarray) -> np.ndarray:
    """(nrings - 1,) bool: True where the gap between consecutive rings separates two pieces of the footprint
    (over ``_GAP_FACTOR`` times the median gap)."""
    gaps = np.diff(theta)
    if gaps.size < 2:
        return np.zeros(gaps.size, dtype=bool)
    return gaps > _GAP_FACTOR * np.median(gaps)


def ring_links(sampling, W: sp.csr_matrix, sigma: float) -> sp.csr_matrix:
    """``W`` with links across each gap between consecutive rings that no edge of ``W`` crosses.

    Ring samplings only (:class:`~deepsphere_gen.sampling.EquiangularSampling`: DH, GL, lat-lon;
    :class:`~deepsphere_gen.sampling.McEwenWiauxSampling`); other samplings, and a ``W`` with an edge
    across every gap, are returned as they are (the same object).  Across such a gap every pixel of
    either ring is linked to the pixel of the other ring nearest to it (nearest in longitude, hence in
    distance; the pixels of a pole ring are equidistant: the first in longitude), weight
    ``exp(-ln2 d^2 / sigma^2)`` as the kNN edges.  A gap that separates two pieces of the footprint
    (:func:`footprint_pieces`) is not linked.  Symmetric CSR, sorted indices (int32 when they fit).
    Cost O(nnz) for the crossing test and the union, O(pixels of the linked rings) for the links:
    1.0 s of CPU at DH(512), k = 20 (21.6M non-zeros; the kNN edges alone are in 32 components there,
    63,488 entries added; the kNN build itself takes 11 s), one thread.
    """
    rings = ring_layout(sampling)
    if rings is None:
        return W
    theta, start, nphi, order, ring = rings
    if theta.size < 2:
        return W
    lo = np.repeat(ring, np.diff(W.indptr))  # each stored entry's row ring, then its column ring
    hi = ring[W.indices]
    up = lo < hi  # each edge between rings once (W symmetric)
    lo, hi = lo[up], hi[up]
    cross = np.bincount(lo, minlength=theta.size) - np.bincount(hi, minlength=theta.size)  # a difference array
    gaps = np.flatnonzero((np.cumsum(cross)[:-1] == 0) & ~_separated(theta))  # gap g: between rings g and g + 1
    del lo, hi, up
    if gaps.size == 0:
        return W
    phi = np.asarray(sampling.phi, dtype=np.float64)
    pairs = []
    for g in gaps:
        for a, b in ((g, g + 1), (g + 1, g)):
            src, dst = (order[start[r]: start[r] + nphi[r]] for r in (a, b))  # by increasing longitude
            m = np.rint(phi[src] * dst.size / (2 * np.pi)).astype(np.int64) % dst.size  # phi equispaced from 0
            pairs.append((src, dst[m]))
    i = np.concatenate([p[0] for p in pairs])
    j = np.concatenate([p[1] for p in pairs])
    n = W.shape[0]
    key = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
    i, j = key // n, key % n
    xyz_i, xyz_j = sampling.xyz_of(i), sampling.xyz_of(j)
    d2 = sum((a - b) ** 2 for a, b in zip(xyz_i, xyz_j))
    w = np.exp(-np.log(2.0) * d2 / sigma**2)
    links = sp.csr_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=W.shape)
    out = (W + links).tocsr()  # no edge of W joins these rings: a union
    out.sort_indices()
    itype = W.indices.dtype
    out.indices, out.indptr = out.indices.astype(itype, copy=False), out.indptr.astype(itype, copy=False)
    return out


def warn_if_disconnected(sampling, W: sp.csr_matrix, k: int, cached: bool = False) -> int:
    """Number of connected components of the symmetric graph ``W`` on ``sampling``, after a RuntimeWarning
    when it has more than the sampling's footprint has pieces (:func:`footprint_pieces`; samplings with
    an unknown footprint are not checked: returns 0).  The warning, headed by the sampling and ``k`` (and
    "from the cache" when ``cached``), names
    the count, the colatitudes and sizes of the components outside the largest, and the remedies:
    ``kind="4neighbour"``, or a larger k (with :func:`ring_links`, k >= 2 connected every DH, GL and MW
    grid at L = 2 - 128 and lat-lon grid up to 181 x 360 tested; k = 1 none); it points at the first
    caller outside this package.

    Cost: one breadth-first search over W's structure (no copy of it; the full component labelling only
    for a disconnected graph, 0.25 s there): 0.03 s of CPU for DH(512), k = 20 (1M pixels, 21.7M
    non-zeros; its kNN build takes 11 s), one thread.  The same search on the HEALPix nside-512, k = 20
    pattern (3.1M pixels, 63M non-zeros) would take 0.21 s; HEALPix is not checked (above).
    """
    pieces = footprint_pieces(sampling)
    if pieces is None:
        return 0
    n = W.shape[0]
    S = sp.csr_matrix((np.broadcast_to(np.float64(1.0), W.indices.shape), W.indices, W.indptr), shape=W.shape,
                      copy=False)  # the structure only: a zero-stride view as the values
    if n == 0 or breadth_first_order(S, 0, directed=True, return_predecessors=False).size == n:  # W symmetric
        return 1
    count, labels = connected_components(S, directed=False)
    if count <= pieces:
        return count
    sizes = np.bincount(labels, minlength=count)
    largest = int(np.argmax(sizes))
    theta = np.degrees(np.asarray(sampling.theta, dtype=np.float64))
    lo, hi = np.full(count, np.inf), np.full(count, -np.inf)  # each component's colatitude range
    np.minimum.at(lo, labels, theta)
    np.maximum.at(hi, labels, theta)
    named = []
    for c in sorted((c for c in range(count) if c != largest), key=lambda c: lo[c])[:_NAMED]:
        where = f"{lo[c]:.1f}" if np.isclose(lo[c], hi[c], atol=0.05) else f"{lo[c]:.1f}-{hi[c]:.1f}"
        named.append(f"{where} deg ({sizes[c]} pixels)")
    more = f" and {count - 1 - _NAMED} more" if count - 1 > _NAMED else ""
    footprint = "is one piece" if pieces == 1 else f"is in {pieces} pieces"
    what = f"kNN graph of {sampling!r}, k = {k}" + (" (from the cache)" if cached else "")
    warnings.warn(
        f"{what}: the graph has {count} connected components, though the grid's footprint {footprint}: a ChebConv "
        f"passes nothing between them.  Outside the largest ({sizes[largest]} of {n} pixels), at colatitude "
        f"{', '.join(named)}{more}: no edge leaves them (the rings are linked, but a k this small splits them).  Use "
        "kind='4neighbour' (the grid graph, connected), or a larger k (with its ring links the kNN graph of every "
        "DH, GL, MW and lat-lon grid tested is connected from k = 2)",
        RuntimeWarning, stacklevel=caller_stacklevel((PACKAGE,)))
    return count
