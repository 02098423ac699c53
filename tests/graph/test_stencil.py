"""Moment-fitted stencil graphs: symmetric, non-negative, consistent Laplace-Beltrami on low degrees."""
import numpy as np
import pytest
import scipy.sparse as sp

from deepsphere_gen.graph import build_graph, knn_graph, laplacian
from deepsphere_gen.graph._stencil import stencil_graph
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling


@pytest.fixture(scope="module")
def graphs():
    s = HealpixSampling(8)
    return s, stencil_graph(s, 20), knn_graph(s, 20)


def test_symmetric_nonnegative_same_edges(graphs):
    s, W, G = graphs
    assert abs(W - W.T).max() == 0 and W.data.min() >= 0 and W.diagonal().sum() == 0
    assert set(zip(*W.nonzero())) <= set(zip(*G.nonzero()))


def test_degree_one_harmonics_are_eigenvectors(graphs):
    # x, y, z restricted to the sphere are degree-1 harmonics: -Delta x = 2 x.  A consistent
    # stencil with one scale s gives L x = 2 s x at every pixel; the v2 Gaussian graph does not.
    s, W, G = graphs

    def rel(Wm):
        L = laplacian(Wm)
        X = s.xyz
        Y = L @ X
        c = (X * Y).sum() / (X * X).sum()
        return np.linalg.norm(Y - c * X) / np.linalg.norm(c * X)

    assert rel(W) < 0.2 * rel(G)
    assert rel(W) < 5e-3


def test_positive_semidefinite_constants_in_kernel(graphs):
    s, W, _ = graphs
    L = laplacian(W).toarray()
    ev = np.linalg.eigvalsh(L)
    assert ev[0] > -1e-10 and abs(ev[0]) < 1e-9
    np.testing.assert_allclose(L @ np.ones(s.npix), 0, atol=1e-12)


def test_build_graph_kind_stencil(tmp_path):
    g = build_graph(HealpixSampling(8), k=20, kind="stencil", cache_dir=tmp_path)
    assert g.kind == "stencil" and g.k == 20 and g.lmax > 0
    assert build_graph(HealpixSampling(8), k=20, kind="stencil", cache_dir=tmp_path).from_cache


def test_rejects_other_samplings():
    with pytest.raises(ValueError, match="full-sky HEALPix"):
        stencil_graph(GaussLegendreSampling(8), 8)
    with pytest.raises(ValueError, match="full-sky HEALPix"):
        stencil_graph(HealpixSampling(4, indices=np.arange(10)), 4)
    with pytest.raises(ValueError, match="moments"):
        stencil_graph(HealpixSampling(4), 8, moments=4)
