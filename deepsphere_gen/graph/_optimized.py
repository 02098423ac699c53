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
prediction ``err_ref`` for the v2 graph with ``reference_k`` (default 2 k) neighbours.
Since ``(1 - p)(1 - p)^T + P - p p^T = 1 1^T - 1 p^T - p 1^T + P``, each pixel's K x K block
of the normal equations is ``A - F(x_i . x_j) - F(x_i . x_j') + F(x_j . x_j')`` with the one
Legendre sum ``F = sum_l alpha_l P_l`` (Clenshaw).  The edge system is sparse (edges that
share a node couple), symmetric positive definite and solved matrix-free by conjugate
gradients with an additive-Schwarz preconditioner (the inverted pixel blocks).  Then
``iterations`` reweighting passes (IRLS towards the minimax of err / err_ref over ~30
degrees, interpolated in l; lambda re-read from the fit) equalise the ratio over degrees.
Edges whose weight would turn negative are fixed at 0 and the fit repeated, so W stays
symmetric and non-negative: L = D - W is positive semi-definite with constants in its
kernel, and the Lanczos bound lmax of
:func:`estimate_lmax` makes Chebyshev filtering work unchanged.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg

from .._validation import check_nonnegative_int
from ..sampling import HealpixSampling
from ._knn import knn_graph

__all__ = ["optimized_graph", "predicted_equivariance_error", "OPTIMIZED_FIT"]

#: version of the fit and its defaults (part of the graph cache key of ``build_graph``).
OPTIMIZED_FIT = "1: reference 2k, 3 IRLS passes, reg 1e-6, CG tol 1e-8"

_CHUNK = 1024  # pixels per chunk of the Legendre passes (bounds the (chunk, K, K) temporaries)
_ACTIVE_SET_PASSES = 3


class _Neighbourhoods:
    """Rows of a symmetric sparse W padded to K = max degree: nb (n, K) neighbour index (the
    pixel itself in padding), mask (n, K), w (n, K) weights (0 in padding), pos (n, K) the CSR
    position of each entry (-1 in padding); ju, jv: the K (K - 1) / 2 slot pairs j < j'."""

    def __init__(self, W: sp.csr_matrix, xyz: np.ndarray, centres: np.ndarray | None = None):
        W = sp.csr_matrix(W)
        if centres is not None:  # only these rows (pixels) of W
            W = W[centres]
        W.sort_indices()
        n = W.shape[0]
        self.centres = np.arange(n) if centres is None else centres
        deg = np.diff(W.indptr)
        K = int(deg.max())
        self.n, self.K, self.W, self.xyz = n, K, W, xyz
        self.mask = np.arange(K)[None, :] < deg[:, None]
        self.nb = np.repeat(self.centres[:, None], K, axis=1)
        self.nb[self.mask] = W.indices
        self.w = np.zeros((n, K))
        self.w[self.mask] = W.data
        self.pos = np.full((n, K), -1, dtype=np.int64)
        self.pos[self.mask] = np.arange(W.nnz)
        self.ju, self.jv = np.triu_indices(K, 1)

    def chunks(self):
        """Per chunk of pixels: (rows, c (c, K) = x_i . x_j, C (c, pairs) = x_j . x_j' for j < j')."""
        for s in range(0, self.n, _CHUNK):
            rows = slice(s, min(self.n, s + _CHUNK))
            X = self.xyz[self.nb[rows]]
            centre = self.xyz[self.centres[rows]]
            yield rows, np.einsum("ckd,cd->ck", X, centre), np.einsum("cpd,cpd->cp", X[:, self.ju], X[:, self.jv])


def _legendre(t: np.ndarray, degrees):
    """Yield (l, P_l(t)) for the sorted ``degrees`` (three-term recurrence, in place)."""
    wanted = set(int(l) for l in degrees)
    p0, p1 = np.ones_like(t), t.copy()
    tmp = np.empty_like(t)
    for l in range(1, max(wanted) + 1):
        if l in wanted:
            yield l, p1
        np.multiply(t, p1, out=tmp)
        tmp *= (2 * l + 1) / (l + 1)
        p0 *= -l / (l + 1)
        p0 += tmp
        p0, p1 = p1, p0


def _legendre_sum(t: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """sum_l coef[l] P_l(t), elementwise (Clenshaw)."""
    b1, b2 = np.zeros_like(t), np.zeros_like(t)
    tmp = np.empty_like(t)
    for l in range(len(coef) - 1, 0, -1):  # b_l = coef_l + (2l+1)/(l+1) t b_{l+1} - (l+1)/(l+2) b_{l+2}
        np.multiply(t, b1, out=tmp)
        tmp *= (2 * l + 1) / (l + 1)
        b2 *= -(l + 1) / (l + 2)
        b2 += tmp
        b2 += coef[l]
        b1, b2 = b2, b1
    # P_0 = 1, P_1 = t: sum = coef_0 + t b_1 - b_2 / 2
    return coef[0] + t * b1 - 0.5 * b2


def _centre_and_anisotropy(hood: _Neighbourhoods, degrees, anisotropy: bool = True):
    """c (len(degrees), n) and a (len(degrees), n) of the module docstring (a = 0 if not ``anisotropy``)."""
    degrees = list(degrees)
    c = np.zeros((len(degrees), hood.n))
    a = np.zeros((len(degrees), hood.n))
    at = {l: i for i, l in enumerate(degrees)}
    for rows, ci, C in hood.chunks():
        w = hood.w[rows]
        ww = 2.0 * w[:, hood.ju] * w[:, hood.jv]
        sq = (w * w).sum(axis=1)
        sw = w.sum(axis=1)
        for l, p in _legendre(ci, degrees):
            wp = np.einsum("ck,ck->c", w, p)
            c[at[l], rows] = sw - wp
            a[at[l], rows] = sq - wp**2
        for l, P in (_legendre(C, degrees) if anisotropy else ()):
            a[at[l], rows] += np.einsum("cp,cp->c", ww, P)
    return c, a


def _predict(hood: _Neighbourhoods, degrees):
    """(err, lambda), one value per degree."""
    c, a = _centre_and_anisotropy(hood, degrees)
    lam = c.mean(axis=1)
    err = np.sqrt(2.0 * np.maximum(((c - lam[:, None]) ** 2 + a).mean(axis=1), 0.0)) / np.abs(lam)
    return err, lam


def _fit_degrees(lmax: int) -> np.ndarray:
    """Degrees where the error is predicted during the fit: every l <= 8, then ~24 log-spaced up to lmax."""
    return np.unique(np.concatenate([np.arange(1, min(8, lmax) + 1),
                                     np.round(np.geomspace(min(8, lmax), lmax, 24)).astype(np.int64)]))


def _full_sky_healpix(sampling, caller: str) -> None:
    """ValueError naming ``caller`` (the public function called) unless ``sampling`` is a full-sky HEALPix sampling."""
    if not isinstance(sampling, HealpixSampling) or not sampling.is_full_sky:
        raise ValueError(f"{caller} needs a full-sky HEALPix sampling (equal-area nodes), got {sampling!r}")


def predicted_equivariance_error(sampling, W, degrees, pixels=None) -> np.ndarray:
    """Predicted mean relative equivariance error of L = D - W on single-degree maps (module docstring).

    ``sampling``: full-sky HEALPix (equal-area pixels); ``W``: (npix, npix) symmetric sparse
    weights; ``degrees``: iterable of l >= 1; ``pixels``: optional pixel indices over which the
    mean is taken (a random subset estimates the full mean at a fraction of the cost, e.g.
    nside 128 at l = 350).  Returns a float64 array, one value per degree.
    Cost O(len(pixels) K^2 max(degrees)) for K = the largest node degree.
    """
    _full_sky_healpix(sampling, "predicted_equivariance_error")
    degrees = np.asarray(list(degrees), dtype=np.int64)
    if degrees.size == 0 or degrees.min() < 1:
        raise ValueError("degrees must be a non-empty list of integers >= 1")
    W = sp.csr_matrix(W)
    if W.shape != (sampling.npix, sampling.npix):
        raise ValueError(f"W must be ({sampling.npix}, {sampling.npix}), got {W.shape}")
    if pixels is not None:
        pixels = np.unique(np.asarray(pixels, dtype=np.int64))
        if pixels.size == 0 or pixels[0] < 0 or pixels[-1] >= sampling.npix:
            raise ValueError(f"pixels must be a non-empty set of indices in [0, {sampling.npix})")
    return _predict(_Neighbourhoods(W, np.asarray(sampling.xyz, dtype=np.float64), pixels), degrees)[0]


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


def _normal_equations(hood: _Neighbourhoods, alpha: np.ndarray, lam: np.ndarray):
    """Per-pixel Q (n, K, K) and b (n, K): the objective is sum_i w_i^T Q_i w_i - 2 b_i^T w_i + const.

    With p = P_l(x_i . x_j), P = P_l(x_j . x_j'): (1 - p)(1 - p)^T + P - p p^T = 1 1^T - 1 p^T - p 1^T
    + P, so Q_i[j, j'] = A - F(x_i . x_j) - F(x_i . x_j') + F(x_j . x_j') with F = sum_l alpha_l P_l,
    A = F(1), and b_i[j] = B - H(x_i . x_j) with H = sum_l alpha_l lambda_l P_l, B = H(1)
    (``alpha``, ``lam`` indexed by l, entry 0 unused).  Padding slots hold junk (masked later).
    """
    coef_f = np.concatenate([[0.0], alpha[1:]])
    coef_h = np.concatenate([[0.0], alpha[1:] * lam[1:]])
    A, B = coef_f.sum(), coef_h.sum()
    Q = np.empty((hood.n, hood.K, hood.K))
    b = np.empty((hood.n, hood.K))
    d = np.arange(hood.K)
    for rows, ci, C in hood.chunks():
        f = _legendre_sum(ci, coef_f)
        q = np.empty((f.shape[0], hood.K, hood.K))
        fC = _legendre_sum(C, coef_f)
        q[:, hood.ju, hood.jv] = fC
        q[:, hood.jv, hood.ju] = fC
        q[:, d, d] = A
        q += A - f[:, :, None] - f[:, None, :]
        Q[rows] = q
        b[rows] = B - _legendre_sum(ci, coef_h)
    return Q, b


def _solve(es: _EdgeSystem, Q, b, g, reg: float, w0: np.ndarray, free: np.ndarray, tol: float) -> np.ndarray:
    """Minimise sum_i w_i^T Q_i w_i - 2 b_i^T w_i + reg' sum ((w - g)/g)^2 over the free edges
    (others fixed at 0): matrix-free CG, additive-Schwarz preconditioner (each pixel's K x K block)."""
    eid, E = es.eid, es.E
    mask = es.mask & free[eid]
    Qm = Q * (mask[:, :, None] & mask[:, None, :])
    diag = np.bincount(eid[mask], weights=np.einsum("nkk->nk", Qm)[mask], minlength=E)
    r = reg * float(np.mean(diag * g**2)) / g**2  # Tikhonov weight relative to the mean curvature
    rhs = (np.bincount(eid[mask], weights=b[mask], minlength=E) + r * g) * free
    # local blocks: Q_i + r/2 on the free slots, identity on the others, inverted once
    blocks = Qm + np.where(mask, 0.5 * r[eid], 1.0)[:, :, None] * np.eye(Q.shape[1])
    inv = np.linalg.inv(blocks) * (mask[:, :, None] & mask[:, None, :])

    def local(M, v):
        y = np.matmul(M, np.where(mask, v[eid], 0.0)[:, :, None])[:, :, 0]
        return np.bincount(eid[mask], weights=y[mask], minlength=E)

    A = LinearOperator((E, E), matvec=lambda x: local(Qm, np.ravel(x)) + r * np.ravel(x) * free
                       + (1.0 - free) * np.ravel(x), dtype=np.float64)
    Minv = LinearOperator((E, E), matvec=lambda x: 0.5 * local(inv, np.ravel(x)) + (1.0 - free) * np.ravel(x),
                          dtype=np.float64)
    x, info = cg(A, rhs, x0=w0 * free, rtol=tol, maxiter=2000, M=Minv)
    if info < 0 or not np.all(np.isfinite(x)):
        raise ValueError("equivariance fit failed (conjugate gradients broke down)")
    return x * free


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
    Cost O(npix K^2 nside (iterations + 2)) + the CG solves, memory ~npix K^2 x 24 bytes:
    nside 32, k = 20: 143 s, nside 64: 590 s (1.3 GB) on 2 cores shared by 8 jobs
    (``build_graph`` caches the result on disk).
    """
    _full_sky_healpix(sampling, "optimized_graph (build_graph kind='optimized')")
    if reference_k is None:
        reference_k = 2 * k
    iterations = check_nonnegative_int(iterations, "iterations")
    if not (np.isfinite(reg) and reg >= 0):
        raise ValueError(f"reg must be a non-negative finite number, got {reg!r}")
    xyz = np.asarray(sampling.xyz, dtype=np.float64)
    lmax = 2 * sampling.nside
    degrees = _fit_degrees(lmax)  # the error is predicted there and interpolated in l (log scale)
    ells = np.arange(lmax + 1)

    def on_all_degrees(v):
        return np.exp(np.interp(ells, degrees, np.log(v)))

    G = knn_graph(sampling, k, sigma)
    err_ref = _predict(_Neighbourhoods(knn_graph(sampling, reference_k), xyz), degrees)[0]
    hood = _Neighbourhoods(G, xyz)
    es = _EdgeSystem(hood)
    W, w, weights = G, es.g.copy(), np.ones(degrees.size)
    for it in range(iterations + 1):
        current = _Neighbourhoods(W, xyz)
        if it:  # reweight towards the minimax of err / err_ref
            ratio = _predict(current, degrees)[0] / err_ref
            weights *= (ratio / ratio.max()) ** 2
        c, _ = _centre_and_anisotropy(current, ells[1:], anisotropy=False)
        lam = np.concatenate([[0.0], c.mean(axis=1)])  # the current symbol lambda_l
        alpha = on_all_degrees(weights / err_ref**2) / np.maximum(lam, lam[1]) ** 2
        Q, b = _normal_equations(hood, alpha / alpha[1:].max(), lam)
        free = np.ones(es.E, dtype=bool)
        for _ in range(_ACTIVE_SET_PASSES):
            w = _solve(es, Q, b, es.g, reg, np.maximum(w, 0.0), free, tol)
            if not (w[free] < 0).any():
                break
            free &= w > 0  # edges whose weight turns negative are fixed at 0, then refit
        W = es.matrix(np.maximum(w, 0.0), sampling.npix)
        del Q, b
    return W
