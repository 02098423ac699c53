"""Graphs on a sampling and their Laplacians (imports only :mod:`deepsphere_gen.sampling`).

| module | holds |
| --- | --- |
| :mod:`._neighbours` | k-nearest-neighbour search (``knn_distances``) and the ``k`` checks (``check_neighbours``: k below a sampling's distinct points; ``capped_k``) |
| :mod:`._healpix_knn` | exact kNN on HEALPix from the grid itself (no k-d tree) |
| :mod:`._pattern` | kNN graphs kept as a sparsity pattern, weights recomputed from the coordinates on demand |
| :mod:`._kernel` | Gaussian kernel widths: DeepSphere v2's table (``kernel_width``), ``default_sigma`` for any sampling |
| :mod:`._knn` | symmetric weighted kNN graphs (``knn_graph``) |
| :mod:`._poles` | a pole ring's coincident pixels (DH, lat-lon with the poles): one point (``n_points``), its kNN edges split evenly over the copies |
| :mod:`._connectivity` | connected kNN graphs on equiangular grids: links between the rings no kNN edge joins, and a check (RuntimeWarning) |
| :mod:`._grid` | Khasanova & Frossard's 4-neighbour graph on equiangular grids |
| :mod:`._optimized` | equivariance-optimised kNN weights and the predicted equivariance error |
| :mod:`._laplacian` | combinatorial / normalized Laplacians, lmax estimate, rescaling to [-1, 1] |
| :mod:`._cache` | on-disk cache of weight matrices (npz + JSON, atomic writes) and arrays derived from them (memory-mapped npy); listing and pruning it |
| :mod:`._steps` | ``build_steps``: CPU time of a build's steps (load, values, Lanczos, ...), for benchmarks |
| :mod:`._sphere_graph` | ``SphereGraph`` / ``build_graph``: weights, Laplacian, lmax, exports to torch / pygsp / PyG |
"""
from ._grid import equiangular_4neighbour_graph
from ._kernel import KERNEL_WIDTHS_NSIDE32, default_sigma, kernel_width
from ._knn import knn_graph
from ._neighbours import capped_k, check_neighbours, knn_distances
from ._poles import n_points
from ._laplacian import (
    LAPLACIAN_KINDS,
    degrees,
    estimate_lmax,
    lanczos_ritz,
    lanczos_lmax,
    laplacian,
    laplacian_csr,
    rescale_laplacian,
)
from ._sphere_graph import GRAPH_KINDS, LMAX_RULE, VALUES_FORMAT, SphereGraph, build_graph, build_memory, graph_params
from ._optimized import OPTIMIZED_FIT, optimized_graph, predicted_equivariance_error
from ._cache import VALUES_ENV_VAR, cache_entries, prune_cache
from ._steps import build_steps

__all__ = [
    "KERNEL_WIDTHS_NSIDE32",
    "kernel_width",
    "default_sigma",
    "knn_distances",
    "check_neighbours",
    "capped_k",
    "n_points",
    "knn_graph",
    "equiangular_4neighbour_graph",
    "LAPLACIAN_KINDS",
    "laplacian",
    "estimate_lmax",
    "lanczos_lmax",
    "lanczos_ritz",
    "laplacian_csr",
    "degrees",
    "rescale_laplacian",
    "GRAPH_KINDS",
    "SphereGraph",
    "build_graph",
    "build_memory",
    "cache_entries",
    "prune_cache",
    "graph_params",
    "LMAX_RULE",
    "VALUES_FORMAT",
    "optimized_graph",
    "predicted_equivariance_error",
    "OPTIMIZED_FIT",
    "VALUES_ENV_VAR",
    "build_steps",
]
