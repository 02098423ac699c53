"""Laplacians shared between the ChebConvs of a network: one per resolution (pooling level).

:class:`LaplacianPyramid` builds (through :func:`deepsphere_gen.graph.build_graph`, disk
cached) one :class:`~deepsphere_gen.nn.Laplacian` per sampling it is asked for, so every conv
of a resolution filters with the same tensors; :class:`SharedLaplacians` is the base of the
modules holding such convs, which keeps the sharing across ``load_state_dict``.
"""
from __future__ import annotations

from torch import nn

from ..graph import build_graph, capped_k
from ..sampling import check_sampling
from .chebconv import ChebConv
from .laplacian import Laplacian

__all__ = ["LaplacianPyramid", "SharedLaplacians", "share_equal_laplacians"]


class LaplacianPyramid:
    """One :class:`~deepsphere_gen.nn.Laplacian` per sampling (a resolution of a pooling
    hierarchy), built once and then shared by all layers of that resolution.

    ``pyramid(sampling)`` returns the rescaled Laplacian of the kNN graph of ``sampling``
    (``k`` neighbours, capped on every level at its distinct points - 1,
    :func:`~deepsphere_gen.graph.capped_k`: a complete graph on a coarse level of fewer points,
    ``laplacian`` "combinatorial" | "normalized") in ``dtype``, built through
    :func:`~deepsphere_gen.graph.build_graph` (``cache`` / ``cache_dir`` as there) on the
    first call and memoised by ``sampling.cache_key()`` (full or partial-sky HEALPix, any
    sampling with a cache key).  The models refuse a ``k`` their input cannot take before building
    any level (:func:`~deepsphere_gen.graph.check_neighbours`, as ``build_graph`` refuses it).  Cost: one graph build (or cache read) and one O(nnz)
    conversion per distinct sampling; memory: one CSR tensor per resolution however many
    convs use it (HEALPix nside 1024, k = 20, float32: 2.1 GB).
    """

    def __init__(self, k: int = 20, laplacian: str = "combinatorial", dtype=None, cache: bool = True,
                 cache_dir=None):
        self.k, self.kind, self.dtype, self.cache, self.cache_dir = int(k), laplacian, dtype, cache, cache_dir
        self._memo: dict[str, Laplacian] = {}
        self._used: dict[str, tuple[int, int]] = {}  # key -> (pixels, k used)

    def __call__(self, sampling, where: str | None = None) -> Laplacian:
        """The rescaled Laplacian of ``sampling`` (built once).  A sampling of one pixel has no graph: ValueError,
        naming ``where`` (the caller's context, e.g. "block 3 works on the map pooled 2 time(s) by 4") if given;
        anything but a :class:`~deepsphere_gen.sampling.Sampling` (an nside) too (:func:`~deepsphere_gen.sampling.check_sampling`)."""
        key = check_sampling(sampling).cache_key()
        if key not in self._memo:
            if sampling.npix < 2:
                context = f"{where}: " if where else ""
                raise ValueError(f"{context}{sampling!r} has {sampling.npix} pixel: a graph needs at least 2 (a partial "
                                 "sky pooled too far? use fewer pooling levels or a larger footprint)")
            k = capped_k(sampling, self.k)  # a level of k points or fewer: the complete graph
            g = build_graph(sampling, k=k, laplacian=self.kind, cache=self.cache, cache_dir=self.cache_dir)
            self._memo[key] = Laplacian.from_graph(g, dtype=self.dtype)
            self._used[key] = (sampling.npix, k)
        return self._memo[key]

    def describe_k(self) -> str:
        """The neighbours the built levels use: "k=20", or where a coarse level has too few distinct points (k of
        them or fewer: the cap of :func:`~deepsphere_gen.graph.capped_k`) "k=20 (11 at 12 points: capped at
        points - 1)", naming the pixels where a pole ring makes them more than the points ("12 at 13 points of 16
        pixels" on DH(2))."""
        capped = sorted({(k + 1, n) for n, k in self._used.values() if k < self.k}, reverse=True)  # capped: k + 1 points
        if not capped:
            return f"k={self.k}"
        levels = ", ".join(f"{p - 1} at {p} points" + (f" of {n} pixels" if n != p else "") for p, n in capped)
        return f"k={self.k} ({levels}: capped at points - 1)"

    def __len__(self) -> int:
        """Number of resolutions built so far."""
        return len(self._memo)

    def __repr__(self) -> str:
        return f"LaplacianPyramid(k={self.k}, laplacian={self.kind!r}, dtype={self.dtype}, levels={len(self)})"


class SharedLaplacians(nn.Module):
    """Base of the modules whose ChebConvs share Laplacians (one CSR tensor per resolution).

    ``.to()`` / ``.double()`` / ``.cuda()`` keep the sharing by themselves (ChebConv converts
    each distinct Laplacian once per call), as do ``copy.deepcopy`` and pickling; after
    ``load_state_dict`` (which gives each conv its own loaded tensor) convs whose Laplacians
    are equal share one tensor again (:func:`share_equal_laplacians`, O(nnz) per pair of
    convs compared).  Subclasses call ``super().__init__()`` first.
    """

    def __init__(self):
        super().__init__()
        self.register_load_state_dict_post_hook(share_equal_laplacians)


def share_equal_laplacians(model: nn.Module, incompatible_keys=None) -> None:
    """Point every ChebConv of ``model`` whose Laplacian equals an earlier one's at that
    tensor (and its transpose).  ``incompatible_keys``: unused, the signature of a
    ``load_state_dict`` post hook."""
    kept: list[ChebConv] = []
    for conv in model.modules():
        if not isinstance(conv, ChebConv):
            continue
        a = conv.laplacian
        for ref in kept:
            b = ref.laplacian
            if Laplacian.same(a, b):
                conv.laplacian, conv.laplacian_t = b, ref.laplacian_t
                break
        else:
            kept.append(conv)
