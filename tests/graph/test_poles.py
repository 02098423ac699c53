"""kNN graphs of grids with a pole ring (DH, lat-lon with the poles): the ring's copies of the pole are one point,
its edges split evenly over them (graph/_poles.py); grids without such a ring and HEALPix are unchanged."""
import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from scipy.sparse.csgraph import connected_components

from deepsphere_gen.equivariance import map_equivariance_error
from deepsphere_gen.graph import _knn, build_graph, default_sigma, graph_params, knn_graph, laplacian_csr
from deepsphere_gen.graph._connectivity import ring_links
from deepsphere_gen.graph._poles import pole_rings
from deepsphere_gen.nn import ChebConv
from deepsphere_gen.sampling import DriscollHealySampling, EquiangularSampling, GaussLegendreSampling, McEwenWiauxSampling

from ._points import Points, distinct_pixels

LATLON = EquiangularSampling(9, np.linspace(0, np.pi, 19), 36, None)  # 10-degree grid with both poles


@pytest.mark.parametrize("s", [DriscollHealySampling(8), LATLON], ids=["dh", "latlon"])
def test_the_graph_of_the_distinct_points_with_each_pole_split_over_its_copies(s):
    k, sigma = 8, 0.3
    W = knn_graph(s, k, sigma)
    poles = pole_rings(s)
    assert len(poles) == (1 if isinstance(s, DriscollHealySampling) else 2)
    copies = np.concatenate(poles)
    keep = distinct_pixels(s)
    plain = np.setdiff1d(keep, copies)
    # ground truth for the rest: the kNN graph of the distinct points as a point set, same sigma, bit for bit
    D = knn_graph(Points(s.theta[keep], s.phi[keep]), k, sigma)
    inner = np.isin(keep, plain)
    assert (W[plain][:, plain] != D[inner][:, inner]).nnz == 0
    assert abs(W - W.T).max() == 0 and W.diagonal().max() == 0
    assert connected_components(W, directed=False)[0] == 1
    xyz = s.xyz
    for p in poles:
        assert W[p][:, copies].nnz == 0  # no copy linked to another (nor, here, to the other pole)
        rows = W[p].toarray()
        assert np.all(rows == rows[0])  # every copy the same neighbourhood
        # the pole's k nearest: all pixels of the next ring(s), those tied at the k-th distance sharing the slots left
        d2 = np.sum((xyz[plain] - xyz[p[0]]) ** 2, axis=1)
        kth = np.sort(d2)[k - 1]
        closer, tied = d2 < kth * (1 - 1e-9), np.abs(d2 - kth) <= kth * 1e-9
        w = np.exp(-np.log(2) * d2 / sigma**2)
        want = w * np.where(closer, 1.0, (k - closer.sum()) / tied.sum() * tied)
        # and the points that count the pole among their k nearest distinct points: w (the larger, as max(W, W^T))
        others = np.sum((xyz[plain][:, None] - xyz[keep][None]) ** 2, axis=2)
        others[others == 0] = np.inf  # not itself
        kth_j = np.sort(others, axis=1)[:, k - 1]
        assert np.all(np.abs(d2 - kth_j) > 1e-9 * kth_j)  # no tie at the pole: each point lists it or not
        want = np.where(d2 < kth_j, np.maximum(want, w), want)
        assert np.allclose(rows[0, plain] * p.size, want, rtol=1e-13, atol=0)


def test_dh_lmax_is_the_pole_free_one_and_copies_give_equal_outputs():
    """DH(32), k = 8 had lambda_max 65.0 (links among the 64 pole copies; 10.6 without the pole ring)."""
    s = DriscollHealySampling(32)
    g = build_graph(s, k=8, cache=False)
    W = g.weights
    rest = np.arange(64, s.npix)  # all but the pole ring
    free = sla.eigsh(laplacian_csr(W[rest][:, rest]), k=1, which="LA")[0][0]
    assert free < 11.0 and g.lmax < 1.05 * free  # 10.81 against 10.67
    torch.manual_seed(0)
    conv = ChebConv(1, 4, K=5, laplacian=g, dtype=torch.float64)
    x = torch.randn(2, s.npix, 1, dtype=torch.float64)
    x[:, :64] = x[:, :1]  # one value at the pole
    with torch.no_grad():
        y = conv(x)
    assert y[:, :64].std(dim=1).max() <= 1e-12 * y.abs().max()
    assert y[:, :64].std() > 0  # ... not a constant either


def test_dh_equivariance_is_that_of_a_grid_without_a_pole_ring():
    """A ChebConv on DH(32) looked 7x more equivariant than on GL(32) (2.7e-2 vs 1.9e-1) only because the
    pole links squeezed its filters; now both are ~0.15-0.19 (seed 0, 4 random rotations)."""
    err = {}
    for s in (DriscollHealySampling(32), GaussLegendreSampling(32)):
        torch.manual_seed(0)
        conv = ChebConv(1, 4, K=5, laplacian=build_graph(s, k=8, cache=False), dtype=torch.float64)
        err[s.name] = map_equivariance_error(conv, s, L=16, rotations=4).mean
    assert 0.5 < err["dh"] / err["gl"] < 2, err


@pytest.mark.parametrize("s", [GaussLegendreSampling(16), McEwenWiauxSampling(16),
                               EquiangularSampling(16, np.pi * (np.arange(32) + 0.5) / 32, 64, None)],
                         ids=["gl", "mw", "cell-centred"])
def test_grids_without_a_pole_ring_are_unchanged(s, monkeypatch):
    """MW's south pole is one sample: no copies.  Bit-equality with the code before the split was checked
    against it (GL, MW, cell-centred lat-lon, HEALPix, k = 1, 2, 8, 20); here: the split is never reached, and
    the graph is the kNN graph of the pixels themselves (default sigma from their own neighbour distances)."""
    assert pole_rings(s) == []
    monkeypatch.setattr(_knn, "split_poles", None)  # called: a TypeError
    W = knn_graph(s, 8)  # the pixels as a point set, with the ring links
    sigma = default_sigma(s, 8)
    assert (W != ring_links(s, knn_graph(Points(s.theta, s.phi), 8, sigma), sigma)).nnz == 0
    assert "pole_split" not in graph_params(s, k=8)


def test_pole_grids_get_their_own_cache_entries(tmp_path):
    s = DriscollHealySampling(8)
    assert graph_params(s, k=8)["pole_split"] == 1  # entries made before the split are not read
    g = build_graph(s, k=8, cache_dir=tmp_path)
    again = build_graph(s, k=8, cache_dir=tmp_path)
    assert again.from_cache and (again.weights != g.weights).nnz == 0 and again.lmax == g.lmax


def test_capped_k_counts_distinct_points_or_takes_their_number():
    """capped_k caps at the distinct points - 1 (DH(2): 16 pixels, its 4-pixel pole ring one point: 13 points), or at
    a given number of points - 1 (massmaps' build_model passes its HEALPix input's pixels: no sampling built)."""
    from deepsphere_gen.graph import capped_k, n_points
    from deepsphere_gen.sampling import HealpixSampling

    assert capped_k(DriscollHealySampling(2), 20) == 12 == capped_k(13, 20) == capped_k(np.int64(13), 20)
    s = HealpixSampling(1)
    assert capped_k(s, 20) == capped_k(s.npix, 20) == capped_k(n_points(s), 20) == 11
    assert capped_k(768, 20) == 20
    with pytest.raises(ValueError, match="k"):
        capped_k(768, 0)
