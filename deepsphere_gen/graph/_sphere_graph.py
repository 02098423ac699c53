"""SphereGraph: a sampling's graph, Laplacian and lmax, with exports, built or loaded from cache."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .. import __version__
from .._memory import available_memory
from .._warnings import PACKAGE, caller_stacklevel
from ._connectivity import footprint_pieces, warn_if_disconnected
from ._cache import (cache_directory, load_array, load_cached, other_versions, sampling_key, save_array,
                     save_cached, save_pattern, update_meta, values_cached)
from ._grid import equiangular_4neighbour_graph
from ._kernel import default_sigma
from ._knn import knn_graph
from ._neighbours import check_neighbours
from ._laplacian import check_laplacian_kind, estimate_lmax, lanczos_lmax, laplacian_csr
from ._optimized import OPTIMIZED_FIT, optimized_graph
from ._healpix_knn import search_workers
from ._pattern import KnnPattern, healpix_knn_pattern, pattern_buffer
from ._poles import pole_rings
from ._steps import step
from ..sampling import HealpixSampling, check_sampling

__all__ = ["GRAPH_KINDS", "SphereGraph", "build_graph", "graph_params"]

GRAPH_KINDS = ("knn", "4neighbour", "optimized")


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
    from_cache : True when the graph was loaded from the disk cache.
    pattern : for HEALPix kNN graphs, the :class:`KnnPattern` the graph is stored as (the
        Laplacian's sparsity pattern and sigma; weights recomputed from the coordinates,
        bitwise equal); None when the weights are stored (``weights`` then is that CSR).

    No matrix but the stored one is kept: :attr:`weights` (of a pattern graph),
    :attr:`laplacian`, :meth:`rescaled_laplacian` and :meth:`to_torch` are written on each
    call in one O(nnz) pass (no sparse algebra), except that :func:`build_graph` gives pattern
    graphs over 16M non-zeros their float32 rescaled values (computed with lmax, or memory-
    mapped from the cache), which ``to_torch(torch.float32)`` shares.  A HEALPix nside-1024
    k = 20 graph holds 1.1 GB (its int32 pattern); ``to_torch`` on CPU shares those index
    arrays, adding only the values (float32: 1.1 GB).
    """

    def __init__(self, sampling, weights: sp.csr_matrix | None, lmax: float, k, sigma, kind: str,
                 laplacian_kind: str, from_cache: bool = False, pattern: KnnPattern | None = None):
        if (weights is None) == (pattern is None):
            raise ValueError("a SphereGraph stores either its weights or its kNN pattern")
        self.sampling, self._weights, self.pattern = sampling, weights, pattern
        self._rescaled32: np.ndarray | None = None  # see _lmax
        self.lmax, self.k, self.sigma, self.kind = float(lmax), k, sigma, kind
        self.laplacian_kind, self.from_cache = laplacian_kind, from_cache

    def __repr__(self) -> str:
        return (f"SphereGraph(npix={self.npix}, nnz={self.nnz}, kind={self.kind!r}, k={self.k}, "
                f"sigma={self.sigma}, laplacian={self.laplacian_kind!r}, lmax={self.lmax:.6g})")

    @property
    def npix(self) -> int:
        return self.pattern.npix if self.pattern is not None else int(self._weights.shape[0])

    @property
    def nnz(self) -> int:
        """Stored entries of W (twice the edges)."""
        return self.pattern.nnz if self.pattern is not None else int(self._weights.nnz)

    @property
    def weights(self) -> sp.csr_matrix:
        """(npix, npix) float64 CSR W (written from the pattern on each access for pattern graphs)."""
        return self._weights if self.pattern is None else self.pattern.weights(self.sampling)

    def _matrix(self, scale: float = 1.0, shift: float = 0.0, dtype=np.float64) -> sp.csr_matrix:
        if self.pattern is None:
            with step("values"):
                return laplacian_csr(self._weights, self.laplacian_kind, scale, shift, dtype=dtype)
        p = self.pattern
        with step("values"):
            vals = p.values(self.sampling, self.laplacian_kind, scale, shift, dtype=dtype)
        M = sp.csr_matrix((vals, p.indices, p.indptr), shape=(p.npix, p.npix), copy=False)
        M.has_sorted_indices = True
        return M

    @property
    def laplacian(self) -> sp.csr_matrix:
        """(npix, npix) float64 CSR of kind ``laplacian_kind`` (written on each access)."""
        return self._matrix()

    def rescaled_laplacian(self, dtype=np.float64) -> sp.csr_matrix:
        """2 L / lmax - I, spectrum in [-1, 1] (CSR, values computed in float64, stored as ``dtype``)."""
        return self._matrix(2.0 / self.lmax, -1.0, dtype=dtype)

    def to_torch(self, dtype=torch.float32, device=None, rescaled: bool = True) -> torch.Tensor:
        """(npix, npix) torch sparse CSR tensor (int32 indices when they fit) of the rescaled
        (default) or plain Laplacian.  On CPU its index arrays are the graph's own (no copy):
        treat them as read-only."""
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        if rescaled and dtype == torch.float32 and self._rescaled32 is not None:  # kept by build_graph
            p = self.pattern
            M = sp.csr_matrix((self._rescaled32, p.indices, p.indptr), shape=(p.npix, p.npix), copy=False)
        else:
            M = self._matrix(*((2.0 / self.lmax, -1.0) if rescaled else ()), dtype=np_dtype)
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
    check_sampling(sampling)
    check_laplacian_kind(laplacian)
    if kind not in GRAPH_KINDS:
        raise ValueError(f"unknown graph kind {kind!r}; choose one of {GRAPH_KINDS}")
    if kind in ("knn", "optimized"):
        k = check_neighbours(sampling, k)
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
    if kind == "knn" and footprint_pieces(sampling) is not None:
        params["ring_links"] = 1  # equiangular kNN graphs link the rings no kNN edge joins (knn_graph); HEALPix keys unchanged
    if kind == "knn" and pole_rings(sampling):
        params["pole_split"] = 1  # a pole ring's copies share the pole's edges, not linked to each other (knn_graph)
    return params


def build_graph(sampling, k: int = 20, sigma: float | None = None, laplacian: str = "combinatorial",
                kind: str = "knn", cache: bool = True, cache_dir=None) -> SphereGraph:
    """Graph, Laplacian and lmax of ``sampling``; loaded from / saved to the disk cache.

    kind ``"knn"``: :func:`knn_graph` (k, sigma; on HEALPix stored as its kNN pattern, see
    :class:`SphereGraph`); ``"optimized"``: :func:`optimized_graph` (the kNN edges, weights
    fitted for equivariance; full-sky HEALPix); ``"4neighbour"``:
    :func:`equiangular_4neighbour_graph` (k and sigma ignored).  A pole ring's coincident pixels
    share the pole's kNN edges, split evenly, and are not linked to each other (:func:`knn_graph`;
    their graphs have their own cache entries).  On equiangular grids the kNN
    edges alone fall apart near the poles: :func:`knn_graph` links the rings they leave apart,
    and a graph still in pieces (k = 1) comes, built or from the cache, with a RuntimeWarning
    naming its components and the remedies (``kind="4neighbour"``, a larger k).
    The cache entry is keyed
    by :func:`graph_params` (sampling key, k, sigma, kinds, package version) and lives in
    ``cache_dir``, else $DEEPSPHERE_GEN_CACHE, else $XDG_CACHE_HOME/deepsphere_gen, else
    ~/.cache/deepsphere_gen (sub-folder graphs/ in each case).  An entry holds the stored
    matrix (W, or the kNN pattern), lmax, and for graphs over 16M non-zeros (HEALPix k = 20:
    nside >= 512) the float32 rescaled values (``<entry>.rescaled-float32.npy``, memory-mapped
    on load, CRC-checked, as large as the pattern: 1.0 GiB at nside 1024): a cached build
    runs no Lanczos, and at that size no values pass either.  An entry lacking them (or
    whose file does not match its record: CRC-32, dtype, size, lmax, :data:`VALUES_FORMAT`,
    the CRC-32s of the pattern's npz members; or whose lmax was made by another
    :data:`LMAX_RULE` or precision, or from other npz members than the entry's: CRC-32s
    recorded beside it, an lmax recorded without them is recomputed once) is completed by the
    next build.  A cache folder that cannot be written (read-only, full) gives a
    RuntimeWarning naming the cause, not an error.
    ``$DEEPSPHERE_GEN_GRAPH_CACHE_VALUES=0``: the values are neither written nor read.
    Cost, HEALPix nside 1024, k = 20 (12.6M nodes, 254M stored weights), no cache: ~45 s of
    CPU and 2.7 GiB peak for the whole process including a float32 ChebConv on it (the
    ``graph_build`` benchmark); the graph keeps 1.0 GiB of int32 pattern and, above 16M
    non-zeros, 1.0 GiB of float32 rescaled values that float32 layers share.  A fresh HEALPix
    kNN build whose :func:`build_memory` exceeds the available memory is refused before it
    allocates anything (MemoryError naming nside, k, the memory needed and available, the
    remedies; :func:`check_build_memory`).  Writing a new entry while the folder holds entries
    of the same parameters from other package versions (never read: the version is in the
    key) gives one RuntimeWarning with their size; :func:`~deepsphere_gen.graph.prune_cache`
    removes them.
    """
    params = graph_params(sampling, k, sigma, laplacian, kind)
    directory = cache_directory(cache_dir)
    with step("load_pattern"):
        hit = load_cached(directory, params) if cache else None
    W, pattern, realign = None, None, False
    if hit is not None:
        stored, meta, source, realign = hit
        if isinstance(stored, tuple):
            pattern = KnnPattern(*stored, params["sigma"])
        else:
            W = stored
            if kind == "knn":  # as knn_graph warns on a fresh build
                warn_if_disconnected(sampling, W, params["k"], cached=True)
    elif kind == "knn" and isinstance(sampling, HealpixSampling):
        check_build_memory(sampling, params["k"])
        pattern = healpix_knn_pattern(sampling, params["k"], params["sigma"])
    elif kind == "knn":
        W = knn_graph(sampling, params["k"], params["sigma"])
    elif kind == "optimized":
        W = optimized_graph(sampling, params["k"], params["sigma"])
    else:
        W = equiangular_4neighbour_graph(sampling)
    graph = SphereGraph(sampling, W, 1.0, params["k"], params["sigma"], kind, params["laplacian"],
                        from_cache=hit is not None, pattern=pattern)
    lmax = None
    if hit is not None and all(meta.get(key) == value for key, value in _lmax_tags(graph, source).items()):
        lmax = _valid_lmax(meta.get("lmax"))
    new_lmax = lmax is None  # not in the cache (or an entry without a usable one): Lanczos
    if new_lmax:
        lmax, graph._rescaled32 = _lmax(graph)
    graph.lmax = lmax
    from_file = False
    store_values = values_cached()
    if hit is not None and graph._rescaled32 is None and _keeps_rescaled32(graph):
        if store_values:
            with step("load_values"):
                graph._rescaled32 = load_array(directory, params, meta, _RESCALED32, _values_tags(lmax, source))
        from_file = graph._rescaled32 is not None
        if not from_file:  # an entry without them (or with a damaged or outdated file): written once, below
            graph._rescaled32 = _rescaled32(graph)
    if not cache:
        return graph
    add_values = graph._rescaled32 is not None and not from_file and store_values
    if hit is not None and not (new_lmax or add_values or realign):
        return graph
    try:  # a read-only folder, a full disk: the graph is returned, the entry is left as it was or incomplete
        with step("save"):
            if hit is None:
                source = save_cached(directory, params, W if pattern is None else (pattern.indptr, pattern.indices),
                                     lambda source: {"lmax": lmax, **_lmax_tags(graph, source), "nnz": graph.nnz})
                _note_other_versions(directory, params)
            else:  # complete the entry
                if realign:  # a pattern npz written before its members were aligned (loaded as copies): same member bytes
                    save_pattern(directory, params, stored)
                if new_lmax:
                    update_meta(directory, params, lmax=lmax, **_lmax_tags(graph, source))
            if add_values:
                save_array(directory, params, _RESCALED32, graph._rescaled32, _values_tags(lmax, source))
    except OSError as err:
        what = "not written" if hit is None else "not completed"
        warnings.warn(f"graph cache entry in {directory} {what} ({err}); each build recomputes what it lacks",
                      RuntimeWarning, stacklevel=2)
    return graph


def _note_other_versions(directory, params: dict) -> None:
    """One RuntimeWarning when ``directory`` holds entries for ``params`` written by other package
    versions (never read by this one): their number, total size and how to remove them."""
    old = other_versions(directory, params)
    if old:
        size = sum(entry["bytes"] for entry in old) / 2**20
        versions = ", ".join(sorted({str(entry["version"]) for entry in old}))
        warnings.warn(f"{len(old)} graph cache entr{'y' if len(old) == 1 else 'ies'} for these parameters written by "
                      f"deepsphere_gen {versions} ({size:.1f} MiB) in {directory} are no longer read; remove them with "
                      f"deepsphere_gen.graph.prune_cache()", RuntimeWarning, stacklevel=caller_stacklevel((PACKAGE,)))


def build_memory(npix: int, k: int, npix_full: int | None = None) -> int:
    """Estimated peak bytes of a fresh HEALPix kNN build (:func:`build_graph`, ``kind="knn"``, no
    cache hit) on ``npix`` pixels (of ``npix_full`` on the full sky, for a partial sky), above
    what the process held before.

    The largest of the build's two phases, from the arrays each allocates (``b``: bytes per
    index, 4 or 8, and ``cap`` ~ ``npix * (k + 1 + k / 16)`` entries of the pattern's index buffer,
    both from :func:`~._pattern.pattern_buffer`; ``m = npix * (k + 1) * 1.01`` entries of the
    pattern, diagonal and ~1 % reverse edges included):

    - neighbour search (:func:`healpix_knn_pattern`): the index buffer ``b * cap``,
      x, y, z and the k-th distances (40 bytes per pixel), each search thread's face grids
      (2 bytes per pixel and thread), a partial sky's map of the full sky (8 bytes per pixel of it);
    - lmax (:func:`_lmax`): the pattern ``b * (m + npix)``, its values ``(4 or 8) * m`` (float32
      above 16M non-zeros), four Lanczos vectors;

    plus 128 MiB of row-block and chunk temporaries (a partial sky's search chunks are the
    largest).  Measured peaks (``ru_maxrss`` above the post-import RSS, 1 thread, no cache)
    against the estimate, k = 20: nside 256: 264 vs 346 MiB, 512: 591 vs 697 MiB, 1024: 2272
    vs 2404 MiB (6 % over).  Grows as npix: ~9.0 GiB at nside 2048, ~52 GiB at 4096 (int64
    indices from there on)."""
    nnz_cap, itype = pattern_buffer(npix, k)
    b = itype.itemsize
    m = int(npix * (k + 1) * 1.01)
    search = b * nnz_cap + 40 * npix + 2 * npix * search_workers() + (8 * npix_full if npix_full else 0)
    big = m - npix > _FLOAT32_LANCZOS_NNZ
    lmax = b * (m + npix) + (4 if big else 8) * (m + 4 * npix)
    return max(search, lmax) + (128 << 20)


def check_build_memory(sampling, k: int) -> None:
    """MemoryError (one line: nside, pixels, k, memory needed and available, remedies) when
    :func:`build_memory` exceeds the memory the system can still give
    (:func:`~deepsphere_gen._memory.available_memory`; no check where that is unknown)."""
    need = build_memory(sampling.npix, k, None if sampling.is_full_sky else sampling.npix_full)
    free = available_memory()
    if free is not None and need > free:
        raise MemoryError(f"a k={k} kNN graph of HEALPix nside {sampling.nside} ({sampling.npix:,} pixels) needs "
                          f"~{need / 2**30:.1f} GiB of memory to build, {free / 2**30:.1f} GiB is available: use a "
                          f"smaller nside or k, a partial sky (HealpixSampling(nside, indices=...)), or a machine "
                          f"with more memory")


def _valid_lmax(value) -> float | None:
    """A cached lmax if it is a positive finite number, else None (recomputed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        return None
    return float(value)


#: above this many non-zeros, the Lanczos of :func:`_lmax` runs on a float32 Laplacian
_FLOAT32_LANCZOS_NNZ = 1 << 24


#: cache tag of the float32 rescaled values of large pattern graphs (see :func:`build_graph`)
_RESCALED32 = "rescaled-float32"

#: version of the computation of the stored float32 rescaled values, recorded with them and
#: compared on load (a mismatch: recomputed and rewritten).  BUMP IT whenever a change could
#: alter their bits: ``KnnPattern.values`` (kernel, degrees, block coordinates, operation
#: order), ``_rescaled32`` / ``_rescale32``, the pixel coordinates (``xyz_of``).
VALUES_FORMAT = 1

#: version of the lmax rule, recorded with lmax and compared on load (a mismatch: a new
#: Lanczos).  BUMP IT whenever :func:`_lmax` could give another value: ``estimate_lmax`` /
#: ``lanczos_lmax`` (tolerance 5e-3, safety factor 1.01, seed 0, 300 steps at most,
#: ``lanczos_ritz``), the float32 precision rule.
LMAX_RULE = 1

def _values_tags(lmax: float, source: dict) -> dict:
    """What stored rescaled values must have been made with: lmax, :data:`VALUES_FORMAT`, and the
    CRC-32s of the npz members of the pattern (``source``)."""
    return {"lmax": float(lmax), "format": VALUES_FORMAT, "source": source}


def _lmax_tags(graph: SphereGraph, source: dict) -> dict:
    """What a stored lmax must have been made with: the precision of the Lanczos
    (:func:`_lmax_dtype`), :data:`LMAX_RULE`, and the CRC-32s of the npz members of the stored
    matrix (``source``, as the stored values are bound to them)."""
    return {"lmax_dtype": _lmax_dtype(graph), "lmax_rule": LMAX_RULE, "lmax_source": source}


def _lmax_dtype(graph: SphereGraph) -> str:
    """The precision of :func:`_lmax`'s Lanczos for this graph (part of what a cached lmax must
    match; an entry without it is recomputed)."""
    return "float64" if graph.nnz <= _FLOAT32_LANCZOS_NNZ else "float32"


def _keeps_rescaled32(graph: SphereGraph) -> bool:
    """True for the graphs whose float32 rescaled values are kept (and cached): pattern graphs
    over :data:`_FLOAT32_LANCZOS_NNZ` non-zeros."""
    return graph.pattern is not None and _lmax_dtype(graph) == "float32"


def _lmax(graph: SphereGraph) -> tuple[float, np.ndarray | None]:
    """:func:`estimate_lmax` of the graph's Laplacian, and for large pattern graphs its float32
    rescaled values.

    Large graphs: the same Lanczos with the Laplacian's values and the Lanczos vectors in
    float32 (a torch CSR sharing the index arrays; half the memory traffic of each of the
    ~40 products and half the vectors' memory; dot products in float64; the estimate moves
    by ~1e-6 relative, far inside its 1 % margin).  The float32 values are then rescaled in
    place (:func:`_rescale32`) and kept by the graph for ``to_torch(torch.float32)``: a
    float32 layer then shares them instead of writing its own (one pass over the pattern
    less, no coordinates in memory).
    """
    if _lmax_dtype(graph) == "float64":
        L = graph.laplacian
        with step("lanczos"):
            return estimate_lmax(L), None
    if graph.pattern is None:
        L32 = graph.to_torch(dtype=torch.float32, rescaled=False)
        values = None
    else:
        p = graph.pattern
        with step("values"):
            values = p.values(graph.sampling, graph.laplacian_kind, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            L32 = torch.sparse_csr_tensor(torch.from_numpy(p.indptr), torch.from_numpy(p.indices),
                                          torch.from_numpy(values), size=(p.npix, p.npix), check_invariants=False)

    def matvec(x):
        return torch.mv(L32, torch.from_numpy(x)).numpy()

    with step("lanczos"):
        lmax = lanczos_lmax(matvec, graph.npix, dtype=np.float32)
    if values is not None:
        _rescale32(values, graph.pattern, lmax)
    return lmax, values


def _rescaled32(graph: SphereGraph) -> np.ndarray:
    """The float32 rescaled values :func:`_lmax` keeps, written again from the pattern (bit for
    bit the same: the float32 Laplacian values, then :func:`_rescale32`); one values pass and
    the rescaling: 7.0-7.1 s + 0.5 s of CPU at HEALPix nside 1024, k = 20, 1.5 s + 0.1 s at
    nside 512 (1 thread, patterns from the cache)."""
    with step("values"):
        values = graph.pattern.values(graph.sampling, graph.laplacian_kind, dtype=np.float32)
    _rescale32(values, graph.pattern, graph.lmax)
    return values


def _rescale32(values: np.ndarray, pattern: KnnPattern, lmax: float) -> None:
    """``2 L / lmax - I`` in place on float32 Laplacian values (float32 product and difference)."""
    with step("rescale"):
        diagonal = pattern.diagonal_offsets()
        values *= np.float32(2.0 / lmax)
        rows = 1 << 20
        for s in range(0, pattern.npix, rows):  # positions in slices: no (npix,) int64 temporary
            e = min(pattern.npix, s + rows)
            values[pattern.indptr[s:e] + diagonal[s:e]] -= np.float32(1.0)
