"""Real-basis Clebsch-Gordan tensors C[l1, l2 -> l].

``C`` has shape (2l1+1, 2l2+1, 2l+1), index m + l on each axis, in the real orthonormal
basis of :mod:`._wigner`, and couples two degrees equivariantly::

    out[M] = sum_{m1, m2} C[m1, m2, M] u[m1] v[m2]
    D^l(R) out(u, v) = out(D^l1(R) u, D^l2(R) v)        for every rotation R.

Construction: the complex (Condon-Shortley) coefficients <l1 m1 l2 m2 | l M> are, for
each M >= 0, the eigenvector of J^2 restricted to m1 + m2 = M (symmetric tridiagonal,
simple eigenvalues l'(l'+1), gaps >= 2: scipy's eigh_tridiagonal), with its sign fixed
by <l, M-1| J- |l, M> > 0 down from the highest weight |l l> (two-term recursion of
J+ |l l> = 0, exact signs, magnitudes in log space); negative M by symmetry.  No
factorials or alternating sums, so it is stable in float64 far beyond l = 64 (entries
agree with sympy's exact values to ~1e-15 at l1 = l2 = 63).  Sign: <l1 l1 l2 (l-l1) | l l>
> 0.  The change of basis to the real harmonics
(``C = U_l1 (x) U_l2 (x) conj(U_l)`` applied to the complex tensor) gives a purely real
tensor when l1 + l2 + l is even and a purely imaginary one when it is odd; we return
its real part, respectively its imaginary part (a global phase, so equivariance holds).
Cost: first call for (63, 63, 63) ~0.3 s, then cached (see ``_CG_CACHE``).

Normalisation (unitarity of the complex coefficients, kept by the unitary change of
basis): ``sum_{m1, m2} C[m1, m2, M] C[m1, m2, M'] = delta_{M M'}``; and summing over all
l: ``sum_{l, M} C[m1, m2, M] C[m1', m2', M] = delta delta``.  With this normalisation
C[1, 1 -> 1] is the cross product / sqrt2 and C[l, l -> 0] is ``delta_{m1 m2} / sqrt(2l+1)``
(up to the sign (-1)^l), not the Gaunt coefficients of products of harmonics.
"""
from __future__ import annotations

import numpy as np
import torch

from .._validation import check_positive_int
from ._cg_complex import check_triple
from ._cg_sparse import sparse_clebsch_gordan
from ._lru import ByteLRU

__all__ = ["clebsch_gordan", "clebsch_gordan_block", "cg_triples"]


#: real CG tensors per triple, float64, 8 (2l1+1)(2l2+1)(2l+1) bytes each (16 MB for
#: (63, 63, 63); all triples with l1, l2, l < 16 together take 112 MB).  Bounded to 256 MiB.
_CG_CACHE = ByteLRU(256 * 2**20)


def _real_cg(l1: int, l2: int, l: int) -> np.ndarray:
    return _CG_CACHE.get((l1, l2, l), lambda: _make_real_cg(l1, l2, l))


def _make_real_cg(l1: int, l2: int, l: int) -> np.ndarray:
    """Dense form of the sparse real tensor (``_cg_sparse``: conj(U_l) on the complex CG's
    output axis, U_l1 / U_l2 on its inputs, cancelled entries dropped)."""
    sp = sparse_clebsch_gordan(l1, l2, l)
    out = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l + 1))
    out[sp.m1, sp.m2, sp.M] = sp.values
    out.setflags(write=False)
    return out


def clebsch_gordan(l1: int, l2: int, l: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Real-basis Clebsch-Gordan tensor C[l1, l2 -> l], shape (2l1+1, 2l2+1, 2l+1).

    ``out[M] = sum C[m1, m2, M] u[m1] v[m2]`` is equivariant (see module docstring for
    basis, phase and normalisation).  Computed once in float64 (cached per triple) and
    returned as a new tensor in ``dtype`` on ``device``.  Raises ValueError for negative
    or non-integer degrees or triples violating |l1 - l2| <= l <= l1 + l2.
    """
    l1, l2, l = check_triple(l1, l2, l)
    return torch.tensor(_real_cg(l1, l2, l), dtype=dtype, device=device)


def clebsch_gordan_block(
    l1: int, l2: int, ls, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """C[l1, l2 -> l] for every l in ``ls`` concatenated along the last axis.

    Shape (2l1+1, 2l2+1, sum_l (2l+1)); the block of degree ``ls[k]`` starts at
    ``sum_{j<k} (2 ls[j] + 1)``.  ``ls=None`` means every admissible l (|l1-l2|..l1+l2).
    """
    if ls is None:
        ls = range(abs(int(l1) - int(l2)), int(l1) + int(l2) + 1)
    ls = list(ls)
    if not ls:
        raise ValueError("ls is empty: give at least one output degree")
    blocks = [_real_cg(*check_triple(l1, l2, l)) for l in ls]
    return torch.tensor(np.concatenate(blocks, axis=2), dtype=dtype, device=device)


def cg_triples(L: int, max_l: int | None = None) -> list[tuple[int, int, int]]:
    """All admissible (l1, l2, l) with l1, l2 < L and l < ``max_l`` (default L), sorted.

    Admissible: |l1 - l2| <= l <= l1 + l2 (the tensor is non-zero exactly then).
    """
    L = check_positive_int(L, "bandlimit L")
    max_l = int(L) if max_l is None else int(max_l)
    return [
        (l1, l2, l)
        for l1 in range(L)
        for l2 in range(L)
        for l in range(abs(l1 - l2), min(l1 + l2, max_l - 1) + 1)
    ]
