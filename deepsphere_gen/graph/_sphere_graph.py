"""SphereGraph: a sampling's graph, Laplacian and lmax, with exports, built or loaded from cache."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .. import __version__
from ._cache import cache_directory, load_cached, sampling_key, save_cached
from ._grid import equiangular_4neighbour_graph
from ._kernel import _check_k, default_sigma
from ._knn import knn_graph
from ._laplacian import check_laplacian_kind, degrees, estimate_lmax, lanczos_lmax, laplacian_csr
from ._optimized import OPTIMIZED_FIT, optimized_graph

__all__ = ["GRAPH_KINDS", "SphereGraph", "build_graph", "graph_params"]

GRAPH_KINDS = ("knn", "4neighbour", "optimized")


@dataclass
class SphereGraph:
    """Graph of a sampling.

    Attributes
    ----------
    sampling : the :class:`~deepsphere_gen.sampling.Sampling` (nodes = its pixels, in its order).
    weights : (npix, npix) float64 CSR, symmetric, no self-loops, sorted int32 indices.
    lmax : float, upper estimate of the largest Laplacian eigenvalue (:func:`estimate_lmax`).
    k, sigma : neighbours and kernel width of a kNN graph (None for ``"4neighbour"``).
    kind : ``"knn"``, ``"optimized"`` or ``"4neighbour"``.
    laplacian_kind : ``"combinatorial"`` or ``"normalized"``.
    from_cache : True when the weights were loaded from the disk cache.

    The Laplacian is not stored: :attr:`laplacian`, :meth:`rescaled_laplacian` and
    :meth:`to_torch` each write it from the weights in one O(nnz) pass (no sparse algebra),
    so a graph costs the memory of W alone (HEALPix nside 1024, k = 20: 3.0 GB).
    """

    sampling: object
    weights: sp.csr_matrix
    lmax: float
    k: int | None
    sigma: float | None
    kind: str
    laplacian_kind: str
    from_cache: bool = field(default=False, compare=False)

    @property
    def npix(self) -> int:
        return int(self.weights.shape[0])

    @property
    def laplacian(self) -> sp.csr_matrix:
        """(npix, npix) float64 CSR of kind ``laplacian_kind`` (written on each access)."""
        return laplacian_csr(self.weights, self.laplacian_kind)

    def rescaled_laplacian(self, dtype=np.float64) -> sp.csr_matrix:
        """2 L / lmax - I, spectrum in [-1, 1] (CSR, values computed in float64, stored as ``dtype``)."""
        return laplacian_csr(self.weights, self.laplacian_kind, 2.0 / self.lmax, -1.0, dtype=dtype)

    def to_torch(self, dtype=torch.float32, device=None, rescaled: bool = True) -> torch.Tensor:
        """(npix, npix) torch sparse CSR tensor (int32 indices when they fit) of the rescaled
        (default) or plain Laplacian, made from numpy arrays without copies on CPU."""
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        M = laplacian_csr(self.weights, self.laplacian_kind, *((2.0 / self.lmax, -1.0) if rescaled else ()),
                          dtype=np_dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                torch.from_numpy(M.indptr),
                torch.from_numpy(M.indices),
                torch.from_numpy(M.data),
                size=M.shape,
                dtype=dtype,
                device=device,
                check_invariants=False,  # canonical CSR by construction
            )

    def to_pygsp(self):
        """``pygsp.graphs.Graph`` with the same weights, Laplacian kind and coords = xyz."""
        from pygsp import graphs

        return graphs.Graph(self.weights, lap_type=self.laplacian_kind, coords=self.sampling.xyz)

    def to_pyg(self, dtype=torch.float32):
        """``torch_geometric.data.Data`` with edge_index (2, nnz), edge_weight (nnz,), pos (npix, 3)."""
        from torch_geometric.data import Data

        W = self.weights.tocoo()
        edge_index = torch.from_numpy(np.stack([W.row, W.col]).astype(np.int64))
        return Data(
            edge_index=edge_index,
            edge_weight=torch.from_numpy(W.data).to(dtype),
            pos=torch.from_numpy(self.sampling.xyz).to(dtype),
            num_nodes=self.npix,
        )


def graph_params(sampling, k: int = 20, sigma: float | None = None,
                 laplacian: str = "combinatorial", kind: str = "knn") -> dict:
    """Every parameter the graph depends on (the cache key); validates them.

    ``sigma=None`` is resolved to the default kernel width of the sampling here.
    """
    check_laplacian_kind(laplacian)
    if kind not in GRAPH_KINDS:
        raise ValueError(f"unknown graph kind {kind!r}; choose one of {GRAPH_KINDS}")
    if kind in ("knn", "optimized"):
        k = _check_k(k)
        if k >= sampling.npix:
            raise ValueError(f"k={k} neighbours needs more than k pixels; the sampling has {sampling.npix}")
        sigma = float(default_sigma(sampling, k) if sigma is None else sigma)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"kernel width sigma must be a positive finite number, got {sigma!r}")
    else:
        k, sigma = None, None
    params = {
        "format": 2,  # 2: HEALPix ties at the k-th distance go to the smaller index
        "version": __version__,
        "sampling": sampling_key(sampling),
        "npix": int(sampling.npix),
        "kind": kind,
        "k": k,
        "sigma": sigma,
        "laplacian": laplacian,
    }
    if kind == "optimized":
        params["fit"] = OPTIMIZED_FIT
    return params


def build_graph(sampling, k: int = 20, sigma: float | None = None, laplacian: str = "combinatorial",
                kind: str = "knn", cache: bool = True, cache_dir=None) -> SphereGraph:
    """Graph, Laplacian and lmax of ``sampling``; loaded from / saved to the disk cache.

    kind ``"knn"``: :func:`knn_graph` (k, sigma); ``"optimized"``: :func:`optimized_graph`
    (the kNN edges, weights fitted for equivariance; full-sky HEALPix); ``"4neighbour"``:
    :func:`equiangular_4neighbour_graph` (k and sigma ignored).  The cache entry is keyed
    by :func:`graph_params` (sampling key, k, sigma, kinds, package version) and lives in
    ``cache_dir``, $DEEPSPHERE_GEN_CACHE or ~/.cache/deepsphere_gen (sub-folder graphs/).
    """
    params = graph_params(sampling, k, sigma, laplacian, kind)
    directory = cache_directory(cache_dir)
    hit = load_cached(directory, params) if cache else None
    if hit is not None:
        W, meta = hit
        lmax = float(meta["lmax"])
    else:
        if kind == "knn":
            W = knn_graph(sampling, params["k"], params["sigma"])
        elif kind == "optimized":
            W = optimized_graph(sampling, params["k"], params["sigma"])
        else:
            W = equiangular_4neighbour_graph(sampling)
        lmax = _lmax(W, params["laplacian"])
        if cache:
            save_cached(directory, params, W, {"lmax": lmax, "nnz": int(W.nnz)})
    return SphereGraph(sampling, W, lmax, params["k"], params["sigma"], kind, params["laplacian"],
                       from_cache=hit is not None)


#: above this many non-zeros, the Lanczos of :func:`_lmax` runs on a float32 copy of W
_FLOAT32_LANCZOS_NNZ = 1 << 24


def _lmax(W: sp.csr_matrix, kind: str) -> float:
    """:func:`estimate_lmax` of the Laplacian of W.  Large graphs: the same Lanczos on
    ``L x = D x - W x`` with W in float32 (torch CSR sharing W's indices; half the memory
    traffic of each of the ~40 products, Ritz value within ~1e-6 of the float64 one)."""
    if W.nnz <= _FLOAT32_LANCZOS_NNZ:
        return estimate_lmax(laplacian_csr(W, kind))
    deg = degrees(W)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        W32 = torch.sparse_csr_tensor(torch.from_numpy(W.indptr), torch.from_numpy(W.indices),
                                      torch.from_numpy(W.data.astype(np.float32)), size=W.shape)
    if kind == "normalized":
        dinv = np.zeros_like(deg)
        np.power(deg, -0.5, where=deg > 0, out=dinv)

        def matvec(x):
            y = torch.mv(W32, torch.from_numpy((dinv * x).astype(np.float32))).numpy()
            return (deg > 0) * x - dinv * y
    else:
        def matvec(x):
            return deg * x - torch.mv(W32, torch.from_numpy(x.astype(np.float32))).numpy()
    return lanczos_lmax(matvec, W.shape[0])
