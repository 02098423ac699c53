"""Moment-fitted kNN graphs: symmetric edge weights corrected so that D - W is a
consistent Laplace-Beltrami stencil at every pixel (an RBF-FD-style fit, kept symmetric).

Start from the DeepSphere v2 kNN graph (edges and Gaussian weights g).  In normal
coordinates v_ij = log_{x_i}(x_j) (tangent vector, length = arc length) a smooth f obeys
``sum_j w_ij (f_j - f_i) = grad f . sum_j w_ij v_ij + 1/2 tr(Hess f  sum_j w_ij v_ij v_ij^T)
+ O(h^3)``.  The Gaussian graph's first moment ``sum_j w_ij v_ij`` and anisotropic /
varying second moment (both set by how HEALPix pixels happen to sit around pixel i) are
what makes L f depend on the orientation of f: the equivariance error that dominates at
low degree.  We choose the symmetric weights closest to g,

    minimise  sum_edges (w_e - g_e)^2 / g_e
    subject to, at every pixel i:  sum_j w_ij v_ij = 0                    (2 equations)
                                   sum_j w_ij v_ij v_ij^T = 2 s I         (3 equations)
                  optionally (moments=3):  sum_j w_ij v_ij^(x3) = 0       (4 equations)

with one constant s for all pixels (the median of the Gaussian graph's half trace), so that
(D - W) f = -s Delta f + O(h^3) everywhere.  The Lagrange system (A G A^T) lambda =
b - A g (equations scaled to unit norm) is sparse, symmetric positive definite and
solved directly (SuperLU; conjugate gradients stall on it).  Edges whose weight turns
negative are dropped and the fit repeated (at most 4 passes; left-over negatives clipped).  W stays
symmetric (real spectrum, a Lanczos bound lmax for Chebyshev filtering, constants in the
kernel, non-negative weights so D - W is positive semi-definite).  Needs equal-area nodes (full-sky HEALPix),
where the symmetric operator is the right discretisation of the self-adjoint -Delta.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from ..sampling import HealpixSampling
from ._knn import knn_graph

__all__ = ["stencil_graph", "STENCIL_MOMENTS"]

#: accepted ``moments`` orders (2: consistent; 3: odd third moments cancelled too).
STENCIL_MOMENTS = (2, 3)
_PASSES = 4


def _tangent(xyz: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(E, 2) normal coordinates of x_cols around x_rows in an orthonormal tangent frame."""
    xi, xj = xyz[rows], xyz[cols]
    c = np.clip(np.einsum("ed,ed->e", xi, xj), -1.0, 1.0)
    u = xj - c[:, None] * xi
    nu = np.linalg.norm(u, axis=1)
    v = (np.arccos(c) / np.where(nu > 0, nu, 1.0))[:, None] * u
    # frame per node: e1 = normalise(z x x) (x-axis fallback near the poles), e2 = x e1
    ref = np.where(np.abs(xyz[:, 2:3]) > 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]]))
    e1 = np.cross(ref, xyz)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(xyz, e1)
    return np.stack([np.einsum("ed,ed->e", v, e1[rows]), np.einsum("ed,ed->e", v, e2[rows])], axis=1)


def _moment_rows(t: np.ndarray, moments: int) -> np.ndarray:
    """(E, m) per-edge contribution to the moment equations of the edge's row node."""
    a, b = t[:, 0], t[:, 1]
    cols = [a, b, a * a - b * b, a * b, a * a + b * b]
    if moments == 3:
        cols += [a**3, a * a * b, a * b * b, b**3]
    return np.stack(cols, axis=1)


def stencil_graph(sampling, k: int = 20, sigma: float | None = None, moments: int = 2) -> sp.csr_matrix:
    """Symmetric moment-fitted weights on the edges of the kNN graph of a full-sky HEALPix sampling.

    ``k``, ``sigma``: the starting DeepSphere v2 graph (:func:`knn_graph`); ``moments``: 2
    (first and second moments fitted) or 3 (third moments cancelled too).  Returns a
    (npix, npix) float64 CSR, symmetric, no self-loops, same sparsity as the kNN graph.
    Cost: one to four sparse direct solves of a (5 or 9) npix square SPD system: nside 32
    took ~220 s on 2 busy cores (the graph disk cache of ``build_graph`` keeps it).
    """
    if not isinstance(sampling, HealpixSampling) or not sampling.is_full_sky:
        raise ValueError("stencil_graph needs a full-sky HEALPix sampling (equal-area nodes)")
    if moments not in STENCIL_MOMENTS:
        raise ValueError(f"moments must be one of {STENCIL_MOMENTS}, got {moments!r}")
    G = sp.triu(knn_graph(sampling, k, sigma), k=1).tocoo()
    i, j, g = G.row.astype(np.int64), G.col.astype(np.int64), G.data
    n, E = sampling.npix, g.size
    xyz = np.ascontiguousarray(sampling.xyz, dtype=np.float64)
    mi = _moment_rows(_tangent(xyz, i, j), moments)  # edge seen from i
    mj = _moment_rows(_tangent(xyz, j, i), moments)  # edge seen from j
    nm = mi.shape[1]
    e = np.arange(E)
    rows = np.concatenate([(i[:, None] * nm + np.arange(nm)).ravel(), (j[:, None] * nm + np.arange(nm)).ravel()])
    cols = np.concatenate([np.repeat(e, nm), np.repeat(e, nm)])
    A = sp.csr_matrix((np.concatenate([mi.ravel(), mj.ravel()]), (rows, cols)), shape=(n * nm, E))
    # target: zero odd / anisotropic moments, trace = 4 s with s = median Gaussian half trace
    b = np.zeros((n, nm))
    b[:, 4] = np.median((A @ g).reshape(n, nm)[:, 4])
    w = g.copy()
    for _ in range(_PASSES):  # active set: edges whose fitted weight turns negative are dropped, then refit
        keep = w > 0
        As = A[:, keep]
        rn = np.sqrt(np.asarray(As.multiply(As).multiply(g[keep][None, :]).sum(axis=1)).ravel())
        Dn = sp.diags(1.0 / np.where(rn > 0, rn, 1.0))
        As, bs = Dn @ As, Dn @ b.ravel()  # unit-scaled equations
        S = (As.multiply(g[keep][None, :]) @ As.T).tocsr()
        lam = spsolve(S.tocsc(), bs - As @ g[keep])
        if not np.all(np.isfinite(lam)):
            raise ValueError("moment fit failed (singular system); try moments=2 or a larger k")
        w = np.zeros_like(g)
        w[keep] = g[keep] * (1.0 + As.T @ lam)
        if not (w < 0).any():
            break
    w = np.maximum(w, 0.0)
    W = sp.csr_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    W.sort_indices()
    return W
