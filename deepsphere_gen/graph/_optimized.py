"""Equivariance-optimised kNN graphs: symmetric edge weights fitted so that the combinatorial
Laplacian D - W acts on every degree l like a function of l alone (rotation equivariance).

**Predicted error.**  For a map f made of white spherical harmonics of one degree l, the
Laplacian's row at pixel i applied to f is ``(L f)_i = sum_j w_ij (f_i - f_j)``.  With the
addition theorem (``E[f(x) f(y)] ~ P_l(x . y)``) its part that is a multiple of f_i is
``c_i(l) = sum_j w_ij (1 - P_l(x_i . x_j))`` and the rest has variance
``a_i(l) = sum_jj' w_ij w_ij' P_l(x_j . x_j') - (sum_j w_ij P_l(x_i . x_j))^2`` (the
degree-l Gram matrix of the stencil's neighbours with the centre projected out).  An
equivariant operator has ``c_i(l) = lambda(l)`` at every pixel and ``a_i(l) = 0``; the
relative error ``||L R f - R L f|| / ||L f||`` of DeepSphere's protocol (two independent
misfits, one rotated) is predicted as::

    err(l)^2 ~ 2 mean_i[(c_i(l) - lambda(l))^2 + a_i(l)] / lambda(l)^2,   lambda(l) = mean_i c_i(l)

(:func:`predicted_equivariance_error`; it matches the measured sweep within ~10 % for the
v2 graphs at nside 32, at every degree).  ``(c - lambda)^2`` is the error the varying pixel
arrangement / node degree adds (dominant at low l), ``a`` the stencil's anisotropy
(dominant at high l).

**Fit** (:func:`optimized_graph`).  Both terms are quadratic in the weights, so on the edges
of the v2 kNN graph with k neighbours we minimise

    sum_l alpha_l sum_i [(c_i(l) - lambda_l)^2 + a_i(l)] + rho sum_e ((w_e - g_e) / g_e)^2

over symmetric weights w (one per undirected edge; g = the Gaussian weights, rho a small
Tikhonov term relative to the mean curvature), for every degree l = 1 .. 2 nside, with
alpha_l = 1 / (lambda_l err_ref(l))^2: the relative error measured against the
prediction ``err_ref`` for the v2 graph with ``reference_k`` (default 2 k) neighbours.  The
normal equations are sparse (edges that share a node couple), symmetric positive definite
and solved matrix-free by Jacobi-preconditioned conjugate gradients.  Then ``iterations``
reweighting passes (IRLS towards the minimax of err / err_ref, lambda re-read from the fit)
equalise the ratio over degrees.  Edges whose weight would turn negative are fixed at 0
and the fit repeated, so W stays symmetric and non-negative: L = D - W is positive
semi-definite with constants in its kernel, and the Lanczos bound lmax of
:func:`estimate_lmax` makes Chebyshev filtering work unchanged.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg

from ..sampling import HealpixSampling
from ._knn import knn_graph

__all__ = ["optimized_graph", "predicted_equivariance_error"]

_CHUNK = 512  # pixels per chunk of the Legendre recurrence (bounds the (chunk, K, K) temporaries)
_ACTIVE_SET_PASSES = 3


class _Neighbourhoods:
    """Rows of a symmetric sparse W padded to K = max degree: nb (n, K) neighbour index (the
    pixel itself in padding), mask (n, K), w (n, K) weights (0 in padding), pos (n, K) the CSR
    position of each entry (-1 in padding)."""

    def __init__(self, W: sp.csr_matrix):
        W = sp.csr_matrix(W)
        W.sort_indices()
        n = W.shape[0]
        deg = np.diff(W.indptr)
        K = int(deg.max())
        self.n, self.K, self.W = n, K, W
        self.mask = np.arange(K)[None, :] < deg[:, None]
        self.nb = np.repeat(np.arange(n)[:, None], K, axis=1)
        self.nb[self.mask] = W.indices
        self.w = np.zeros((n, K))
        self.w[self.mask] = W.data
        self.pos = np.full((n, K), -1, dtype=np.int64)
        self.pos[self.mask] = np.arange(W.nnz)


def _legendre_pass(xyz: np.ndarray, hood: _Neighbourhoods, lmax: int, visit) -> None:
    """For every chunk of pixels and every degree l = 1..lmax call ``visit(l, rows, p, P)`` with
    p (c, K) = P_l(x_i . x_j) and P (c, K, K) = P_l(x_j . x_j') (three-term recurrence)."""
    for s in range(0, hood.n, _CHUNK):
        rows = slice(s, min(hood.n, s + _CHUNK))
        X = xyz[hood.nb[rows]]
        ci = np.einsum("ckd,cd->ck", X, xyz[rows])
        C = np.einsum("ckd,cjd->ckj", X, X)
        p0, p1, P0, P1 = np.ones_like(ci), ci, np.ones_like(C), C
        for l in range(1, lmax + 1):
            visit(l, rows, p1, P1)
            p0, p1 = p1, ((2 * l + 1) * ci * p1 - l * p0) / (l + 1)
            P0, P1 = P1, ((2 * l + 1) * C * P1 - l * P0) / (l + 1)


def _centre_and_anisotropy(xyz, hood: _Neighbourhoods, lmax: int):
    """c (lmax, n) and a (lmax, n) of the module docstring for l = 1..lmax."""
    c = np.zeros((lmax, hood.n))
    a = np.zeros((lmax, hood.n))

    def visit(l, rows, p, P):
        w = hood.w[rows]
        wp = np.einsum("ck,ck->c", w, p)
        c[l - 1, rows] = w.sum(axis=1) - wp
        a[l - 1, rows] = np.einsum("ck,ckj,cj->c", w, P, w) - wp**2

    _legendre_pass(xyz, hood, lmax, visit)
    return c, a


def _predict(xyz, W, lmax: int):
    """(err (lmax,), lambda (lmax,)) for l = 1..lmax."""
    c, a = _centre_and_anisotropy(xyz, _Neighbourhoods(W), lmax)
    lam = c.mean(axis=1)
    err = np.sqrt(2.0 * np.maximum(((c - lam[:, None]) ** 2 + a).mean(axis=1), 0.0)) / np.abs(lam)
    return err, lam


def _full_sky_healpix(sampling) -> None:
    if not isinstance(sampling, HealpixSampling) or not sampling.is_full_sky:
        raise ValueError("the equivariance-optimised graph needs a full-sky HEALPix sampling (equal-area nodes)")


def predicted_equivariance_error(sampling, W, degrees) -> np.ndarray:
    """Predicted mean relative equivariance error of L = D - W on single-degree maps (module docstring).

    ``sampling``: full-sky HEALPix (equal-area pixels); ``W``: (npix, npix) symmetric sparse
    weights; ``degrees``: iterable of l >= 1.  Returns a float64 array, one value per degree.
    Cost O(npix K^2 max(degrees)) for K = the largest node degree.
    """
    _full_sky_healpix(sampling)
    degrees = np.asarray(list(degrees), dtype=np.int64)
    if degrees.size == 0 or degrees.min() < 1:
        raise ValueError("degrees must be a non-empty list of integers >= 1")
    W = sp.csr_matrix(W)
    if W.shape != (sampling.npix, sampling.npix):
        raise ValueError(f"W must be ({sampling.npix}, {sampling.npix}), got {W.shape}")
    err, _ = _predict(np.asarray(sampling.xyz, dtype=np.float64), W, int(degrees.max()))
    return err[degrees - 1]


class _EdgeSystem:
    """Undirected edges of a symmetric W (upper triangle) and the map from padded rows to edge ids."""

    def __init__(self, hood: _Neighbourhoods):
        W = hood.W
        rows = np.repeat(np.arange(hood.n), np.diff(W.indptr))
        cols = W.indices
        up = rows < cols
        # position of (j, i) for every CSR entry (i, j): same sparsity pattern (W symmetric)
        T = sp.csr_matrix((np.arange(W.nnz) + 1.0, (cols, rows)), shape=W.shape)
        T.sort_indices()
        transpose_pos = (T.data - 1).astype(np.int64)
        eid = np.empty(W.nnz, dtype=np.int64)
        eid[np.nonzero(up)[0]] = np.arange(int(up.sum()))
        eid[transpose_pos[up]] = np.arange(int(up.sum()))
        self.E = int(up.sum())
        self.i, self.j, self.g = rows[up], cols[up], W.data[up]
        self.eid = np.where(hood.mask, eid[np.maximum(hood.pos, 0)], 0)
        self.mask = hood.mask

    def matrix(self, w: np.ndarray, n: int) -> sp.csr_matrix:
        keep = w > 0
        i, j, w = self.i[keep], self.j[keep], w[keep]
        W = sp.csr_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
        W.sort_indices()
        return W


def _normal_equations(xyz, hood: _Neighbourhoods, lmax: int, alpha: np.ndarray, lam: np.ndarray):
    """Per-pixel Q (n, K, K) and b (n, K): the objective is sum_i w_i^T Q_i w_i - 2 b_i^T w_i + const."""
    Q = np.zeros((hood.n, hood.K, hood.K))
    b = np.zeros((hood.n, hood.K))
    m = hood.mask.astype(np.float64)

    def visit(l, rows, p, P):
        mm = m[rows]
        q = (1.0 - p) * mm  # c_i(l) = q . w
        pm = p * mm
        Q[rows] += alpha[l - 1] * (q[:, :, None] * q[:, None, :] + P * mm[:, :, None] * mm[:, None, :]
                                   - pm[:, :, None] * pm[:, None, :])
        b[rows] += (alpha[l - 1] * lam[l - 1]) * q

    _legendre_pass(xyz, hood, lmax, visit)
    return Q, b


def _solve(es: _EdgeSystem, Q, b, g, reg: float, w0: np.ndarray, free: np.ndarray, tol: float) -> np.ndarray:
    """Minimise sum_i w_i^T Q_i w_i - 2 b_i^T w_i + reg' sum ((w - g)/g)^2 over the free edges
    (others fixed at 0): matrix-free Jacobi-preconditioned CG."""
    eid, mask, E = es.eid, es.mask, es.E
    diag = np.bincount(eid[mask], weights=np.einsum("nkk->nk", Q)[mask], minlength=E)
    r = reg * float(np.mean(diag * g**2)) / g**2  # Tikhonov weight relative to the mean curvature
    rhs = np.bincount(eid[mask], weights=b[mask], minlength=E) + r * g
    idx = np.nonzero(free)[0]

    def full(x):
        v = np.zeros(E)
        v[idx] = x
        return v

    def matvec(x):
        v = full(np.ravel(x))
        y = np.einsum("nkj,nj->nk", Q, np.where(mask, v[eid], 0.0))
        return (np.bincount(eid[mask], weights=y[mask], minlength=E) + r * v)[idx]

    A = LinearOperator((idx.size, idx.size), matvec=matvec, dtype=np.float64)
    M = sp.diags(1.0 / (diag + r)[idx])
    x, info = cg(A, rhs[idx], x0=w0[idx], rtol=tol, maxiter=4000, M=M)
    if info < 0 or not np.all(np.isfinite(x)):
        raise ValueError("equivariance fit failed (conjugate gradients broke down)")
    return full(x)


def optimized_graph(sampling, k: int = 20, sigma: float | None = None, reference_k: int | None = None,
                    iterations: int = 3, reg: float = 1e-6, tol: float = 1e-8) -> sp.csr_matrix:
    """Symmetric non-negative weights on the kNN edges of a full-sky HEALPix sampling, fitted for
    rotation equivariance of L = D - W at every degree l = 1 .. 2 nside (module docstring).

    ``k``, ``sigma``: the v2 graph whose edges are used and whose Gaussian weights start and
    regularise the fit; ``reference_k`` (default 2 k): the v2 graph whose predicted error
    curve the fit divides by (the goal: as equivariant as v2 with ``reference_k`` neighbours);
    ``iterations``: reweighting passes after the first fit; ``reg``: Tikhonov weight towards
    the Gaussian weights; ``tol``: CG relative tolerance.  Returns a (npix, npix) float64 CSR,
    symmetric, non-negative, no self-loops, edges a subset of the kNN graph's.
    Cost O(npix K^2 nside (iterations + 2)) + the CG solves: nside 32, k = 20: ~2 min,
    nside 64: ~10 min on 2 busy cores (``build_graph`` caches the result on disk).
    """
    _full_sky_healpix(sampling)
    if reference_k is None:
        reference_k = 2 * k
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    if not (np.isfinite(reg) and reg >= 0):
        raise ValueError(f"reg must be a non-negative finite number, got {reg!r}")
    xyz = np.asarray(sampling.xyz, dtype=np.float64)
    lmax = 2 * sampling.nside
    G = knn_graph(sampling, k, sigma)
    err_ref, _ = _predict(xyz, knn_graph(sampling, reference_k), lmax)
    hood = _Neighbourhoods(G)
    es = _EdgeSystem(hood)
    W = G
    _, lam = _predict(xyz, G, lmax)
    weights = np.ones(lmax)
    w = es.g.copy()
    for it in range(int(iterations) + 1):
        if it:  # reweight towards the minimax of err / err_ref, lambda from the current fit
            err, lam = _predict(xyz, W, lmax)
            ratio = err / err_ref
            weights *= (ratio / ratio.max()) ** 2
        alpha = weights / (lam * err_ref) ** 2
        Q, b = _normal_equations(xyz, hood, lmax, alpha / alpha.max(), lam)
        free = np.ones(es.E, dtype=bool)
        for _ in range(_ACTIVE_SET_PASSES):
            w = _solve(es, Q, b, es.g, reg, np.where(free, np.maximum(w, 0.0), 0.0), free, tol)
            if not (w[free] < 0).any():
                break
            free &= w > 0  # edges whose weight turns negative are fixed at 0, then refit
        W = es.matrix(np.maximum(w, 0.0), sampling.npix)
        del Q, b
    return W
