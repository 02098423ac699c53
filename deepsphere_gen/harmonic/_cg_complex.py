"""Complex (Condon-Shortley) Clebsch-Gordan coefficients <l1 m1 l2 m2 | l M>, from which the
real-basis tensors of :mod:`._clebsch_gordan` (dense) and :mod:`._cg_sparse` (non-zeros)
are built; the construction is described in :mod:`._clebsch_gordan`."""
from __future__ import annotations

import numpy as np
import scipy.linalg

from .._validation import check_nonnegative_int

__all__ = ["check_triple", "complex_cg"]


def check_triple(l1, l2, l) -> tuple[int, int, int]:
    """(l1, l2, l) as ints, or a ValueError for negative / non-integer degrees or a
    triple violating the triangle rule |l1 - l2| <= l <= l1 + l2."""
    l1, l2, l = (check_nonnegative_int(v, name) for name, v in (("l1", l1), ("l2", l2), ("l", l)))
    if not abs(l1 - l2) <= l <= l1 + l2:
        raise ValueError(f"(l1, l2, l) = ({l1}, {l2}, {l}) violates the triangle rule |l1-l2| <= l <= l1+l2")
    return l1, l2, l


def _ladder(j: int, m: np.ndarray, step: int) -> np.ndarray:
    """sqrt(j(j+1) - m(m+step)): coefficient of J+ (step=1) or J- (step=-1) on |j m>."""
    return np.sqrt(np.maximum(j * (j + 1.0) - m * (m + step), 0.0))


def _state_indices(l1: int, l2: int, M: int) -> np.ndarray:
    """m1 values of the product states |m1, M - m1> that exist."""
    return np.arange(max(-l1, M - l2), min(l1, M + l2) + 1)


def complex_cg(l1: int, l2: int, l: int) -> np.ndarray:
    """Complex CG <l1 m1 l2 m2 | l M>, (2l1+1, 2l2+1, 2l+1) float64.

    For each M >= 0 the vector over m1 is the eigenvector of J^2 (restricted to
    m1 + m2 = M: a symmetric tridiagonal matrix with the simple eigenvalues
    l'(l'+1), gaps >= 2) belonging to l(l+1); its sign follows the lowering chain
    <l, M-1| J- |l, M> > 0 from the highest weight, whose signs are exact from the
    two-term recursion of J+ |l l> = 0.  Negative M by
    <l1 -m1 l2 -m2 | l -M> = (-1)^(l1+l2-l) <l1 m1 l2 m2 | l M>.
    """
    n1 = 2 * l1 + 1
    cols = np.zeros((l + 1, n1))  # cols[M, m1 + l1] = <l1 m1 l2 M-m1 | l M>
    # highest weight: c_p / c_(p-1) = -a1+(p-1) / a2+(l-p), exact signs, log magnitudes
    p = _state_indices(l1, l2, l)
    logr = np.log(_ladder(l1, p[1:] - 1.0, 1)) - np.log(_ladder(l2, (l - p[1:]).astype(float), 1))
    logc = np.concatenate([[0.0], np.cumsum(logr)])
    top = (-1.0) ** np.arange(p.size) * np.exp(logc - logc.max())
    top *= np.sign(top[l1 - p[0]]) / np.linalg.norm(top)  # Condon-Shortley sign
    cols[l, p + l1] = top
    q = np.arange(-l1, l1 + 1, dtype=float)
    down1 = _ladder(l1, q, -1)
    for M in range(l - 1, -1, -1):
        m1 = _state_indices(l1, l2, M)
        m2 = M - m1
        diag = 2.0 * m1 * m2
        off = _ladder(l1, m1[:-1].astype(float), 1) * _ladder(l2, m2[:-1].astype(float), -1)
        k = l - max(M, abs(l1 - l2))  # eigenvalues ascend with l' = max(M, |l1-l2|), ...
        if m1.size == 1:
            vec = np.ones(1)
        else:
            _, v = scipy.linalg.eigh_tridiagonal(diag, off, select="i", select_range=(k, k))
            vec = v[:, 0]
        # J- |l, M+1> on the m1 grid: J1- sends m1 -> m1 - 1, J2- keeps m1
        prev = cols[M + 1]
        lowered = _ladder(l2, M + 1 - q, -1) * prev
        lowered[:-1] += (down1 * prev)[1:]
        if vec @ lowered[m1 + l1] < 0:
            vec = -vec
        cols[M, m1 + l1] = vec
    out = np.zeros((n1, 2 * l2 + 1, 2 * l + 1))
    m1_all = np.arange(-l1, l1 + 1)
    parity = (-1.0) ** (l1 + l2 - l)
    for M in range(l + 1):
        m2 = M - m1_all
        ok = np.abs(m2) <= l2
        out[m1_all[ok] + l1, m2[ok] + l2, M + l] = cols[M, ok]
        if M > 0:
            out[-m1_all[ok] + l1, -m2[ok] + l2, -M + l] = parity * cols[M, ok]
    return out
