"""Turn a rescaled Laplacian (scipy sparse, torch sparse, or a graph object) into torch sparse CSR."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["to_torch_csr"]


def to_torch_csr(laplacian, dtype=None, device=None) -> torch.Tensor:
    """Rescaled Laplacian as a square torch sparse CSR tensor (int32 indices when they fit).

    ``laplacian``: scipy sparse matrix, torch sparse tensor (COO or CSR), or an object with
    ``rescaled_laplacian()`` (e.g. ``deepsphere_gen.graph.SphereGraph``).  The matrix must
    already be rescaled to spectrum [-1, 1] (``2 L / lmax - I``).
    """
    if hasattr(laplacian, "rescaled_laplacian") and not sp.issparse(laplacian):
        laplacian = laplacian.rescaled_laplacian()
    if sp.issparse(laplacian):
        m = sp.csr_matrix(laplacian)
        m.sum_duplicates()
        m.sort_indices()
        if dtype is None:
            dtype = torch.float64 if m.dtype == np.float64 else torch.get_default_dtype()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.sparse_csr_tensor(
                torch.from_numpy(m.indptr.astype(np.int64)),
                torch.from_numpy(m.indices.astype(np.int64)),
                torch.from_numpy(np.asarray(m.data)).to(dtype),
                size=m.shape,
            )
    elif torch.is_tensor(laplacian) and laplacian.layout == torch.sparse_coo:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = laplacian.coalesce().to_sparse_csr()
    elif torch.is_tensor(laplacian) and laplacian.layout == torch.sparse_csr:
        t = laplacian
    else:
        raise ValueError(
            "laplacian must be a scipy sparse matrix, a torch sparse (COO/CSR) tensor or a graph "
            f"with rescaled_laplacian(); got {type(laplacian).__name__}"
        )
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"laplacian must be a square matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"laplacian must hold floating-point values, got {t.dtype}")
    if not bool(torch.isfinite(t.values()).all()):
        raise ValueError("laplacian has NaN/inf entries")
    return _with_index_dtype(t).to(dtype=dtype or t.dtype, device=device)


def _with_index_dtype(t: torch.Tensor) -> torch.Tensor:
    """int32 indices when they fit (the CPU sparse kernels run about 2x faster), else int64."""
    idx = torch.int32 if max(t.shape[0], t.values().numel()) < 2**31 - 1 else torch.int64
    if t.crow_indices().dtype == idx:
        return t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(t.crow_indices().to(idx), t.col_indices().to(idx), t.values(), size=t.shape)
