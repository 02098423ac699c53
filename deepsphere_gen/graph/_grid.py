"""Khasanova & Frossard's 4-neighbour graph on equiangular grids (w = 1 / d)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..sampling import EquiangularSampling, McEwenWiauxSampling

__all__ = ["equiangular_4neighbour_graph"]


def _grid_edges(sampling) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges (i, j) between the theta-neighbours and the phi-neighbours (periodic)."""
    if isinstance(sampling, EquiangularSampling):
        nt, nphi = sampling.ntheta, sampling.nphi
        pole = None
    elif isinstance(sampling, McEwenWiauxSampling):
        nt, nphi = sampling.L - 1, sampling.nphi  # rings, then one south-pole sample
        pole = nt * nphi
    else:
        raise ValueError(
            f"the 4-neighbour graph needs an equiangular grid (DH, GL, MW), got {type(sampling).__name__}"
        )
    node = np.arange(nt * nphi).reshape(nt, nphi)
    src = [node.ravel(), node[:-1].ravel()]
    dst = [np.roll(node, -1, axis=1).ravel(), node[1:].ravel()]
    if pole is not None:
        src.append(node[-1])
        dst.append(np.full(nphi, pole))
    return np.concatenate(src), np.concatenate(dst)


def equiangular_4neighbour_graph(sampling) -> sp.csr_matrix:
    """4-neighbour grid graph of Khasanova & Frossard (2017) on DH, GL or MW samplings.

    Each sample is linked to its two neighbours on its ring (phi periodic) and to the
    samples with the same phi on the rings above and below (MW: the last ring to the
    south-pole sample), with weight w = 1 / d, d the euclidean (chordal) distance.
    Coincident samples (the theta = 0 ring of Driscoll-Healy) are not linked to each
    other (d = 0); they stay connected through the next ring.  Returns a symmetric
    float64 CSR (npix, npix) without self-loops.
    """
    i, j = _grid_edges(sampling)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    n = sampling.npix
    key = np.unique(lo.astype(np.int64) * n + hi)  # nphi <= 2 repeats phi-neighbours
    lo, hi = key // n, key % n
    xyz = sampling.xyz
    d = np.linalg.norm(xyz[lo] - xyz[hi], axis=1)
    keep = (lo != hi) & (d > 1e-12)
    lo, hi, w = lo[keep], hi[keep], 1.0 / d[keep]
    W = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([lo, hi]), np.concatenate([hi, lo]))),
                      shape=(n, n)).tocsr()
    W.sort_indices()
    return W
