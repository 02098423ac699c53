"""Real-basis Clebsch-Gordan tensors in coordinate form (the non-zeros only).

The real tensor ``C[l1, l2 -> l]`` of :mod:`._clebsch_gordan` is sparse: for given
(m1, m2) it is non-zero only at |M| in {|m1| + |m2|, ||m1| - |m2||}, i.e. at most 2 of
its 2l+1 outputs (the complex tensor has M = m1 + m2 only, and the change of basis
pairs m with -m).  So a contraction costs O((2l1+1)(2l2+1)) instead of
O((2l1+1)(2l2+1)(2l+1)).

Construction without the dense tensor: each non-zero complex coefficient
<l1 m1 l2 m2 | l M> feeds 8 real positions (rows m and -m of each ``U``); those are
accumulated by linear index (O(nnz log nnz)), then the real part (l1 + l2 + l even) or
imaginary part (odd) is kept, as in :func:`._clebsch_gordan.clebsch_gordan`.  Rounding
residue is dropped: complex coefficients below 16 eps (the columns are unit vectors
from an eigensolver, accurate to a few eps absolute; exact zeros such as
<l1 0 l2 0 | l 0> for odd l1 + l2 + l come out at ~1e-17; genuinely tiny coefficients,
e.g. of the stretched triple (30, 30, 60), lose at most 16 eps = 3.6e-15 each) and real
positions where the contributions cancel (result below 16 eps times the sum of their
magnitudes).  The remaining entries equal the dense tensor's to rounding (tested).
Cost for (63, 63, 63): ~0.1 s (vs ~1 s dense), cached.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._cg_complex import check_triple, complex_cg
from ._lru import ByteLRU
from ._wigner import basis_weights

__all__ = ["SparseCG", "sparse_clebsch_gordan", "sparse_from_dense"]


class SparseCG(NamedTuple):
    """Non-zeros of C[l1, l2 -> l]: index arrays ``m1``, ``m2``, ``M`` (each m + l of its
    degree, int64) and ``values`` (float64), sorted by (m1, m2, M); read-only."""

    m1: np.ndarray
    m2: np.ndarray
    M: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self)


#: residue threshold, in units of float64 epsilon times the summed magnitudes
_CANCEL_ULPS = 16.0

#: per triple, 32 bytes per non-zero (0.75 MB for (63, 63, 63)).  Bounded to 128 MiB.
_SPARSE_CACHE = ByteLRU(128 * 2**20)


def _frozen(*arrays: np.ndarray) -> SparseCG:
    for a in arrays:
        a.setflags(write=False)
    return SparseCG(*arrays)


def _make_sparse(l1: int, l2: int, l: int) -> SparseCG:
    cc = complex_cg(l1, l2, l)
    idx = np.nonzero(np.abs(cc) > _CANCEL_ULPS * np.finfo(np.float64).eps)  # unit columns
    vals = cc[idx]
    dims = (2 * l1 + 1, 2 * l2 + 1, 2 * l + 1)
    options = []
    for axis, (deg, n) in enumerate(zip((l1, l2, l), dims)):
        a, b = basis_weights(deg)
        if axis == 2:
            a, b = a.conj(), b.conj()
        col = idx[axis]
        options.append(((col, a[col]), (n - 1 - col, b[n - 1 - col])))
    keys, contrib = [], []
    for i, wi in options[0]:
        for j, wj in options[1]:
            for k, wk in options[2]:
                w = wi * wj * wk * vals
                part = w.real if (l1 + l2 + l) % 2 == 0 else w.imag
                keys.append((i * dims[1] + j) * dims[2] + k)
                contrib.append(part)
    keys, contrib = np.concatenate(keys), np.concatenate(contrib)
    uniq, inv = np.unique(keys, return_inverse=True)
    total = np.bincount(inv, weights=contrib, minlength=uniq.size)
    scale = np.bincount(inv, weights=np.abs(contrib), minlength=uniq.size)
    keep = np.abs(total) > _CANCEL_ULPS * np.finfo(np.float64).eps * scale
    uniq, total = uniq[keep], total[keep]
    m1, rest = np.divmod(uniq, dims[1] * dims[2])
    m2, M = np.divmod(rest, dims[2])
    return _frozen(m1, m2, M, np.ascontiguousarray(total))


def sparse_clebsch_gordan(l1: int, l2: int, l: int) -> SparseCG:
    """Non-zeros of the real Clebsch-Gordan tensor C[l1, l2 -> l] (float64, cached).

    ``C[m1[n], m2[n], M[n]] = values[n]`` and zero elsewhere, with C exactly the tensor of
    :func:`deepsphere_gen.harmonic.clebsch_gordan` up to rounding.  Raises ValueError for
    negative or non-integer degrees or triples violating |l1 - l2| <= l <= l1 + l2.
    """
    l1, l2, l = check_triple(l1, l2, l)
    return _SPARSE_CACHE.get((l1, l2, l), lambda: _make_sparse(l1, l2, l))


def sparse_from_dense(C, rtol: float = 64 * np.finfo(np.float64).eps) -> SparseCG:
    """Coordinate form of a dense (2l1+1, 2l2+1, 2l+1) tensor (numpy or torch).

    Entries with ``|C| <= rtol * max|C|`` are dropped (rounding residue of a tensor
    built densely); for user-supplied Clebsch-Gordan accessors.
    """
    C = np.asarray(C.detach().cpu().double() if hasattr(C, "detach") else C, dtype=np.float64)
    if C.ndim != 3:
        raise ValueError(f"a Clebsch-Gordan tensor has 3 axes, got shape {C.shape}")
    peak = np.abs(C).max() if C.size else 0.0
    m1, m2, M = np.nonzero(np.abs(C) > rtol * peak)
    return _frozen(m1.astype(np.int64), m2.astype(np.int64), M.astype(np.int64),
                   np.ascontiguousarray(C[m1, m2, M]))
