"""Graph Laplacians (scipy sparse), largest-eigenvalue estimate, rescaling to [-1, 1]."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

__all__ = ["LAPLACIAN_KINDS", "laplacian", "estimate_lmax", "rescale_laplacian"]

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
    """
    kind = check_laplacian_kind(kind)
    W = _check_square(W, "weight matrix W")
    if W.nnz and W.data.min() < 0:
        raise ValueError("weight matrix W has negative weights")
    deg = np.asarray(W.sum(axis=1)).ravel()
    n = W.shape[0]
    if kind == "combinatorial":
        L = sp.diags(deg, format="csr") - W
    else:
        dinv = np.zeros(n)
        np.power(deg, -0.5, where=deg > 0, out=dinv)
        D = sp.diags(dinv, format="csr")
        L = sp.diags((deg > 0).astype(np.float64), format="csr") - D @ W @ D
    L = sp.csr_matrix(L)
    L.sort_indices()
    return L


def estimate_lmax(L, tol: float = 5e-3, safety: float = 1.01) -> float:
    """Upper estimate of the largest eigenvalue of a symmetric Laplacian: lambda * ``safety``.

    lambda comes from Lanczos (``scipy.sparse.linalg.eigsh``, relative tolerance ``tol``,
    fixed random start vector so that the result is reproducible); Lanczos Ritz values
    never exceed the true largest eigenvalue, and the 1 % margin covers ``tol``, so the
    result bounds the spectrum (the same choices as pygsp).
    Graphs below 64 nodes use a dense eigensolver.
    """
    L = _check_square(L, "Laplacian L")
    n = L.shape[0]
    if n < 64:
        lam = float(np.linalg.eigvalsh(L.toarray())[-1])
    else:
        v0 = np.random.default_rng(0).standard_normal(n)
        lam = float(eigsh(L, k=1, which="LA", tol=tol, ncv=min(n - 1, 20), v0=v0,
                          return_eigenvectors=False)[0])
    if lam <= 0:
        raise ValueError("Laplacian has no positive eigenvalue (graph without edges?)")
    return lam * float(safety)


def rescale_laplacian(L, lmax: float) -> sp.csr_matrix:
    """2 L / lmax - I (CSR): maps the spectrum [0, lmax] of L onto [-1, 1]."""
    L = _check_square(L, "Laplacian L")
    lmax = float(lmax)
    if not np.isfinite(lmax) or lmax <= 0:
        raise ValueError(f"lmax must be a positive finite number, got {lmax!r}")
    out = sp.csr_matrix((2.0 / lmax) * L - sp.identity(L.shape[0], format="csr"))
    out.sort_indices()
    return out
