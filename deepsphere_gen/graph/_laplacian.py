"""Graph Laplacians (scipy sparse), largest-eigenvalue estimate, rescaling to [-1, 1]."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["LAPLACIAN_KINDS", "laplacian", "laplacian_csr", "degrees", "estimate_lmax", "lanczos_lmax",
           "lanczos_ritz", "rescale_laplacian"]

LAPLACIAN_KINDS = ("combinatorial", "normalized")


def check_laplacian_kind(kind) -> str:
    """Return ``kind`` or raise ValueError unless it is one of :data:`LAPLACIAN_KINDS`."""
    if kind not in LAPLACIAN_KINDS:
        raise ValueError(f"unknown Laplacian kind {kind!r}; choose one of {LAPLACIAN_KINDS}")
    return kind


def _check_square(M, name: str) -> sp.csr_matrix:
    if not sp.issparse(M) and not isinstance(M, np.ndarray):
        raise ValueError(f"{name} must be a scipy sparse matrix or a numpy array, got {type(M).__name__}")
    M = sp.csr_matrix(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be square, got shape {M.shape}")
    if not np.all(np.isfinite(M.data)):
        raise ValueError(f"{name} has NaN or inf entries")
    return M


def laplacian(W, kind: str = "combinatorial") -> sp.csr_matrix:
    """Laplacian of a symmetric weight matrix W (npix, npix), as float64 CSR.

    ``"combinatorial"``: L = D - W; ``"normalized"``: L = I - D^-1/2 W D^-1/2, with
    D = diag(sum_j W_ij).  As pygsp, an isolated node (degree 0) gets a zero row.
    W must be symmetric with non-negative weights (not checked beyond the sign).
    Cost O(nnz) in row blocks (:func:`laplacian_csr`); keeps int32 indices.
    """
    kind = check_laplacian_kind(kind)
    W = _check_square(W, "weight matrix W")
    if W.nnz and W.data.min() < 0:
        raise ValueError("weight matrix W has negative weights")
    return laplacian_csr(W, kind)


def degrees(W: sp.csr_matrix) -> np.ndarray:
    """(npix,) float64 row sums of W (the same sums as ``W.sum(axis=1)``)."""
    return np.asarray(W.sum(axis=1)).ravel()


_BLOCK = 1 << 22  # non-zeros per row block of laplacian_csr


def laplacian_csr(W: sp.csr_matrix, kind: str = "combinatorial", scale: float = 1.0, shift: float = 0.0,
                  dtype=np.float64, deg: np.ndarray | None = None) -> sp.csr_matrix:
    """``scale * L + shift * I`` of the weights W as a canonical CSR (sorted, int32 indices
    when they fit), written row block by row block: no sparse binary operation and no
    temporary of the full size besides the output.  ``scale = 2 / lmax, shift = -1`` gives
    the rescaled Laplacian; values are computed in float64 (the operations of
    ``scale * (D - W) + shift * I``), then cast to ``dtype``.  ``deg``: W's row sums if known.
    A W that is not canonical or stores diagonal entries goes through scipy's sparse algebra.
    """
    kind = check_laplacian_kind(kind)
    W = sp.csr_matrix(W)
    n = W.shape[0]
    deg = degrees(W) if deg is None else deg
    if kind == "normalized":
        dinv = np.zeros(n)
        np.power(deg, -0.5, where=deg > 0, out=dinv)
        diag = (deg > 0).astype(np.float64)
    else:
        dinv, diag = None, deg
    if not W.has_canonical_format or (W.nnz and (W.diagonal() != 0).any()):
        D = sp.diags(diag, format="csr")
        off = W if dinv is None else sp.diags(dinv, format="csr") @ W @ sp.diags(dinv, format="csr")
        out = sp.csr_matrix(scale * (D - off) + shift * sp.identity(n, format="csr"), dtype=dtype)
        out.sort_indices()
        return out
    nnz = W.nnz + n
    itype = np.int32 if max(n, nnz) < 2**31 - 1 else np.int64
    indptr = W.indptr.astype(itype) + np.arange(n + 1, dtype=itype)
    indices = np.empty(nnz, dtype=itype)
    data = np.empty(nnz, dtype=dtype)
    step = max(1, _BLOCK // max(1, W.nnz // max(n, 1)))
    for s in range(0, n, step):
        e = min(n, s + step)
        lo, hi = int(W.indptr[s]), int(W.indptr[e])
        rows = np.repeat(np.arange(s, e), np.diff(W.indptr[s : e + 1]))
        cols = W.indices[lo:hi]
        vals = W.data[lo:hi]
        if dinv is not None:  # (D^-1/2 W) D^-1/2, in that order
            vals = (dinv[rows] * vals) * dinv[cols]
        vals = scale * -vals if scale != 1.0 else -vals
        # every entry moves right by its row's number (the diagonals above) and by one more
        # when it lies right of its row's diagonal
        at = np.arange(lo, hi) + rows + (cols > rows)
        indices[at] = cols
        data[at] = vals
        below = np.bincount(rows - s, weights=cols < rows, minlength=e - s).astype(np.int64)
        at = indptr[s:e].astype(np.int64) + below
        indices[at] = np.arange(s, e)
        d = diag[s:e] * scale if scale != 1.0 else diag[s:e]
        data[at] = d + shift if shift != 0.0 else d
    out = sp.csr_matrix((data, indices, indptr), shape=(n, n), copy=False)
    out.has_sorted_indices = True
    return out


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """a . b accumulated in float64 (slices of float32 vectors converted on the fly)."""
    if a.dtype == np.float64 and b.dtype == np.float64:
        return float(a @ b)
    step = 1 << 20
    return float(sum(a[i : i + step].astype(np.float64) @ b[i : i + step].astype(np.float64)
                     for i in range(0, a.size, step)))


def lanczos_ritz(matvec, n: int, max_steps: int = 300, tol: float | None = None, seed: int = 0,
                 dtype=np.float64) -> np.ndarray:
    """Ritz values (ascending) of a symmetric operator: plain Lanczos from a fixed random start.

    Three vectors kept, no re-orthogonalisation: Ritz values lie inside the spectrum (loss of
    orthogonality only repeats converged ones), so a value outside an interval proves that the
    spectrum leaves it.  Stops after ``max_steps`` steps, on breakdown, or, with ``tol``, once
    the residual estimate of the largest Ritz value is below ``tol`` times it (the criterion of
    ARPACK's ``eigsh``, which pygsp calls with the same tolerance).  Cost: one ``matvec`` per
    step, memory three vectors of ``dtype`` (float32 for the largest graphs: dot products still
    accumulate in float64).
    """
    q = np.random.default_rng(seed).standard_normal(n, dtype=dtype)
    q /= np.sqrt(_dot(q, q))
    q_prev = np.zeros(n, dtype=dtype)
    alpha, beta = [], []
    b = 0.0
    theta = np.zeros(0)
    for _ in range(min(n, max_steps)):  # in place: three n-vectors (and the product's output)
        w = np.asarray(matvec(q), dtype=dtype).ravel()
        if b:
            q_prev *= b
            w -= q_prev
        a = _dot(q, w)
        q_prev[:] = q
        q *= a
        w -= q
        b = float(np.sqrt(_dot(w, w)))
        alpha.append(a)
        beta.append(b)
        if tol is not None:
            theta, S = np.linalg.eigh(_tridiagonal(alpha, beta))
            if b * abs(S[-1, -1]) <= tol * abs(theta[-1]):
                return theta
        if b <= 1e-12 * max(abs(a), abs(theta[-1]) if theta.size else 0.0, 1.0):
            break
        w /= b
        q = w
    return np.linalg.eigvalsh(_tridiagonal(alpha, beta))


def _tridiagonal(alpha: list, beta: list) -> np.ndarray:
    return np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)


def lanczos_lmax(matvec, n: int, tol: float = 5e-3, safety: float = 1.01, max_steps: int = 300,
                 seed: int = 0, dtype=np.float64) -> float:
    """Upper estimate of the largest eigenvalue of a symmetric PSD operator: lambda * ``safety``.

    lambda: the largest Ritz value of :func:`lanczos_ritz` stopped at relative residual
    ``tol``; Ritz values never exceed the largest eigenvalue, and the 1 % margin covers
    ``tol``.  About 40 ``matvec`` for the HEALPix kNN graphs.
    """
    lam = float(lanczos_ritz(matvec, n, max_steps=max_steps, tol=tol, seed=seed, dtype=dtype)[-1])
    if lam <= 0:
        raise ValueError("Laplacian has no positive eigenvalue (graph without edges?)")
    return lam * float(safety)


def estimate_lmax(L, tol: float = 5e-3, safety: float = 1.01) -> float:
    """Upper estimate of the largest eigenvalue of a symmetric Laplacian: lambda * ``safety``.

    lambda comes from Lanczos (:func:`lanczos_lmax`, relative tolerance ``tol``, fixed random
    start vector so that the result is reproducible); Lanczos Ritz values never exceed the
    true largest eigenvalue, and the 1 % margin covers ``tol``, so the result bounds the
    spectrum (the same choices as pygsp).  Graphs below 64 nodes use a dense eigensolver.
    """
    L = _check_square(L, "Laplacian L")
    n = L.shape[0]
    if n < 64:
        lam = float(np.linalg.eigvalsh(L.toarray())[-1])
        if lam <= 0:
            raise ValueError("Laplacian has no positive eigenvalue (graph without edges?)")
        return lam * float(safety)
    return lanczos_lmax(L.dot, n, tol=tol, safety=safety)


def rescale_laplacian(L, lmax: float) -> sp.csr_matrix:
    """2 L / lmax - I (CSR): maps the spectrum [0, lmax] of L onto [-1, 1]."""
    L = _check_square(L, "Laplacian L")
    lmax = float(lmax)
    if not np.isfinite(lmax) or lmax <= 0:
        raise ValueError(f"lmax must be a positive finite number, got {lmax!r}")
    out = sp.csr_matrix((2.0 / lmax) * L - sp.identity(L.shape[0], format="csr"))
    out.sort_indices()
    return out
