"""kNN graphs on equiangular grids are connected (ring links where no kNN edge joins two rings); a graph that
is still disconnected is warned about; partial footprints in pieces are not; HEALPix graphs and keys unchanged."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from deepsphere_gen.graph import _knn, build_graph, graph_params, knn_graph
from deepsphere_gen.graph._connectivity import footprint_pieces, ring_links
from deepsphere_gen.nn import ChebConv
from deepsphere_gen.sampling import (DriscollHealySampling, EquiangularSampling, GaussLegendreSampling,
                                     HealpixSampling, McEwenWiauxSampling)


def _components(W) -> int:
    return connected_components(sp.csr_matrix(W), directed=False)[0]


def _plain_knn(monkeypatch, s, k):
    """The kNN edges alone (knn_graph with its ring links switched off: what it returned before them), and the
    sigma of their weights."""
    seen = {}

    def no_links(sampling, W, sigma):
        seen["sigma"] = sigma
        return W

    with monkeypatch.context() as m, warnings.catch_warnings():
        m.setattr(_knn, "ring_links", no_links)
        warnings.simplefilter("ignore", RuntimeWarning)  # the kNN edges alone may be in pieces
        W = knn_graph(s, k)
    return W, seen["sigma"]


LATLON = EquiangularSampling(9, np.linspace(0, np.pi, 19), 36, None)  # 10-degree ERA5-like grid with both poles

# cases once found split (the plain kNN graph had 2, 4, 3, 3, 3 components); on the grids with pole rings a k that
# still splits the plain graph now that the pole copies share the pole's edges (DH(16), lat-lon: connected from k = 6)
CASES = [(DriscollHealySampling(16), 5), (DriscollHealySampling(32), 8), (GaussLegendreSampling(64), 20),
         (McEwenWiauxSampling(64), 20), (LATLON, 5),
         (EquiangularSampling(9, np.linspace(np.pi, 0, 19), 36, None), 5)]  # its rings listed from the south pole


@pytest.mark.parametrize("s,k", CASES, ids=lambda v: repr(v) if not isinstance(v, int) else f"k{v}")
def test_equiangular_knn_graphs_are_connected_and_keep_their_knn_edges(s, k, tmp_path, monkeypatch):
    plain, _ = _plain_knn(monkeypatch, s, k)
    assert _components(plain) > 1  # the plain kNN graph falls apart near the poles
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # connected: no warning
        g = build_graph(s, k=k, cache_dir=tmp_path)
        cached = build_graph(s, k=k, cache_dir=tmp_path)
    W = g.weights
    assert cached.from_cache and _components(W) == 1 and _components(cached.weights) == 1
    assert abs(W - W.T).max() == 0 and W.diagonal().max() == 0
    added = (W - plain).tocoo()
    assert added.min() >= 0 and (W.multiply(plain.astype(bool)) != plain).nnz == 0  # every kNN edge kept as it was
    theta = np.asarray(s.theta)
    assert np.all(theta[added.row] != theta[added.col])  # the links join rings
    rings, ring = np.unique(theta, return_inverse=True)
    assert np.all(np.minimum(ring[added.row], rings.size - 1 - ring[added.row]) <= 2)  # the 3 rings nearest a pole only


def test_a_chebconv_passes_across_the_pole_ring():
    """On DH(16), k = 8 an input equal to 1 on ring 1 gave exactly 0.0 on the pole ring."""
    s = DriscollHealySampling(16)
    conv = ChebConv(1, 1, K=6, laplacian=build_graph(s, k=8, cache=False), dtype=torch.float64)
    x = torch.zeros(1, s.npix, 1, dtype=torch.float64)
    x[0, 32:64, 0] = 1.0
    with torch.no_grad():
        y = conv(x)
    assert y[0, :32, 0].abs().min() > 1e-6


def test_ring_links_leave_a_graph_with_an_edge_across_every_gap_as_it_is(monkeypatch):
    s = DriscollHealySampling(8)
    plain, sigma = _plain_knn(monkeypatch, s, 8)
    assert _components(plain) == 1
    assert ring_links(s, plain, sigma) is plain
    assert (knn_graph(s, 8) != plain).nnz == 0


def test_a_disconnected_graph_is_warned_about_built_or_cached(tmp_path):
    s = DriscollHealySampling(8)
    for _ in range(2):  # built, then from the cache
        with pytest.warns(RuntimeWarning, match=r"DriscollHealySampling\(dh-L8, npix=256\), k = 1.*: the graph has \d+ "
                          r"connected components, though the grid's footprint is one piece.*at colatitude .* deg "
                          r"\(\d+ pixels\).*kind='4neighbour'.*or a larger k") as record:
            build_graph(s, k=1, cache_dir=tmp_path)
        assert record[0].filename == __file__  # points at the caller


def test_footprints_in_pieces_and_healpix_are_not_warned_about():
    caps = EquiangularSampling(8, np.concatenate([np.linspace(0.05, 0.3, 6), np.linspace(2.84, 3.09, 6)]), 16, None)
    assert footprint_pieces(caps) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        W = knn_graph(caps, 8)
        assert _components(W) == 2  # the caps are not linked to each other
        two_patches = HealpixSampling(8, indices=np.concatenate([np.arange(0, 64), np.arange(512, 576)]))
        assert footprint_pieces(two_patches) is None
        knn_graph(two_patches, 8)


@pytest.mark.parametrize("nside", [1, 2, 4, 8, 16])
def test_healpix_knn_graphs_are_connected_from_k_2(nside):
    """Why HEALPix graphs are not checked (footprint_pieces' docstring): connected for every k >= 2 (k = 1 pairs
    pixels)."""
    s = HealpixSampling(nside)
    assert _components(knn_graph(s, 1)) > 1
    for k in (2, 3, 8, 20):
        if k < s.npix:
            assert _components(knn_graph(s, k)) == 1


def test_healpix_cache_keys_are_unchanged_and_equiangular_ones_are_new():
    p = graph_params(HealpixSampling(8), 20)
    assert set(p) == {"format", "version", "sampling", "npix", "kind", "k", "sigma", "laplacian"} and p["format"] == 2
    assert graph_params(DriscollHealySampling(8), 20)["ring_links"] == 1  # the graphs without links are not reused
    assert "ring_links" not in graph_params(DriscollHealySampling(8), kind="4neighbour")
