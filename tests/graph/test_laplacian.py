import numpy as np
import pytest
import scipy.sparse as sp
from pygsp import graphs

from deepsphere_gen.graph import estimate_lmax, knn_graph, laplacian, rescale_laplacian
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling


@pytest.fixture(scope="module")
def W():
    return knn_graph(HealpixSampling(4), 8)


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_equals_pygsp(W, kind):
    G = graphs.Graph(W)
    G.compute_laplacian(kind)
    L = laplacian(W, kind)
    assert L.format == "csr" and L.dtype == np.float64
    np.testing.assert_allclose(L.toarray(), G.L.toarray(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_isolated_node_like_pygsp(kind):
    A = np.array([[0, 2, 0, 0], [2, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=float)
    G = graphs.Graph(A)
    G.compute_laplacian(kind)
    np.testing.assert_allclose(laplacian(sp.csr_matrix(A), kind).toarray(), G.L.toarray(), atol=1e-15)


def test_rows_sum_to_zero(W):
    L = laplacian(W)
    np.testing.assert_allclose(np.asarray(L.sum(axis=1)).ravel(), 0, atol=1e-12)


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_lmax_bounds_spectrum(kind):
    W = knn_graph(GaussLegendreSampling(10), 8)  # 190 nodes: Lanczos path
    L = laplacian(W, kind)
    exact = np.linalg.eigvalsh(L.toarray())[-1]
    est = estimate_lmax(L)
    assert exact <= est <= 1.011 * exact
    G = graphs.Graph(W, lap_type=kind)
    G.estimate_lmax()
    assert est == pytest.approx(G.lmax, rel=6e-3)
    assert estimate_lmax(L) == est  # reproducible
    if kind == "normalized":
        assert est <= 2 * 1.01


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_rescaled_spectrum_in_unit_interval(W, kind):
    L = laplacian(W, kind)
    lmax = estimate_lmax(L)
    e = np.linalg.eigvalsh(rescale_laplacian(L, lmax).toarray())
    assert e[0] == pytest.approx(-1, abs=1e-12)
    assert -1 - 1e-12 <= e[0] and e[-1] <= 1
    assert e[-1] > 0.97
    np.testing.assert_allclose(rescale_laplacian(L, lmax).toarray(), 2 * L.toarray() / lmax - np.eye(L.shape[0]),
                               atol=1e-15)


def test_errors(W):
    with pytest.raises(ValueError, match="unknown Laplacian kind"):
        laplacian(W, "random-walk")
    with pytest.raises(ValueError, match="square"):
        laplacian(sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match="negative"):
        laplacian(sp.csr_matrix(-np.ones((2, 2))))
    with pytest.raises(ValueError, match="NaN"):
        laplacian(sp.csr_matrix(np.array([[0, np.nan], [np.nan, 0]])))
    with pytest.raises(ValueError, match="lmax"):
        rescale_laplacian(laplacian(W), 0.0)
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        estimate_lmax(sp.csr_matrix((5, 5)))


def test_lanczos_ritz_values_lie_inside_the_spectrum():
    """The one Lanczos of the package: Ritz values inside [min, max] of a known spectrum, the
    extremes found after n steps, and the lmax stop rule on top of it."""
    from deepsphere_gen.graph import lanczos_lmax, lanczos_ritz

    eig = np.linspace(-0.9, 0.7, 200) ** 3
    ritz = lanczos_ritz(lambda v: eig * v, eig.size, max_steps=30)
    assert ritz.size == 30 and ritz[0] >= eig.min() - 1e-12 and ritz[-1] <= eig.max() + 1e-12
    assert abs(ritz[0] - eig.min()) < 1e-3 and abs(ritz[-1] - eig.max()) < 1e-3
    psd = np.linspace(0.0, 3.0, 500)
    lam = lanczos_lmax(lambda v: psd * v, psd.size)
    assert 3.0 <= lam <= 3.0 * 1.01 * (1 + 5e-3)
