"""Graphs on a sampling: kNN (DeepSphere v2 kernel widths) or 4-neighbour grid graphs,
Laplacians rescaled to [-1, 1], disk cache, export to torch / pygsp / torch_geometric."""
from ._grid import equiangular_4neighbour_graph
from ._kernel import KERNEL_WIDTHS_NSIDE32, default_sigma, kernel_width
from ._knn import knn_distances, knn_graph
from ._laplacian import (
    LAPLACIAN_KINDS,
    degrees,
    estimate_lmax,
    lanczos_extremes,
    lanczos_lmax,
    laplacian,
    laplacian_csr,
    rescale_laplacian,
)
from ._sphere_graph import GRAPH_KINDS, SphereGraph, build_graph, graph_params
from ._optimized import OPTIMIZED_FIT, optimized_graph, predicted_equivariance_error

__all__ = [
    "KERNEL_WIDTHS_NSIDE32",
    "kernel_width",
    "default_sigma",
    "knn_distances",
    "knn_graph",
    "equiangular_4neighbour_graph",
    "LAPLACIAN_KINDS",
    "laplacian",
    "estimate_lmax",
    "lanczos_lmax",
    "lanczos_extremes",
    "laplacian_csr",
    "degrees",
    "rescale_laplacian",
    "GRAPH_KINDS",
    "SphereGraph",
    "build_graph",
    "graph_params",
    "optimized_graph",
    "predicted_equivariance_error",
    "OPTIMIZED_FIT",
]
