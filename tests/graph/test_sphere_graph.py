import healpy as hp
import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh
from torch_geometric.utils import get_laplacian, to_scipy_sparse_matrix

from deepsphere_gen.graph import SphereGraph, build_graph, estimate_lmax, kernel_width, knn_graph, laplacian
from deepsphere_gen.sampling import DriscollHealySampling, HealpixSampling, McEwenWiauxSampling


@pytest.fixture(scope="module")
def graph():
    return build_graph(HealpixSampling(4), k=8, cache=False)


def test_attributes(graph):
    s = graph.sampling
    assert isinstance(graph, SphereGraph)
    assert (graph.k, graph.sigma, graph.kind, graph.laplacian_kind) == (8, kernel_width(4, 8), "knn", "combinatorial")
    assert abs(graph.weights - knn_graph(s, 8)).max() == 0
    assert abs(graph.laplacian - laplacian(graph.weights)).max() == 0
    assert graph.lmax == estimate_lmax(graph.laplacian)
    assert graph.npix == s.npix == 192 and not graph.from_cache


def real_harmonics_nested(nside, lmax):
    """Real orthonormalised Y_lm maps (l <= lmax) in NESTED order via healpy.alm2map, with their degrees."""
    maps, degrees = [], []
    for ell in range(lmax + 1):
        for m in range(ell + 1):
            for part in (1, 1j) if m > 0 else (1,):
                alm = np.zeros(hp.Alm.getsize(lmax), dtype=complex)
                alm[hp.Alm.getidx(lmax, ell, m)] = part
                y = hp.reorder(hp.alm2map(alm, nside, lmax=lmax), r2n=True)
                maps.append(y / np.linalg.norm(y))
                degrees.append(ell)
    return np.array(maps), np.array(degrees)


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_spectrum_multiplets_and_harmonics(kind):
    """Low end of the HEALPix nside-8 k=20 graph spectrum: multiplets of 2l+1 eigenvalues,
    eigenvalue ratios close to l(l+1)/2, eigenvectors spanning the Y_lm of each degree.

    Measured (nside 8): captured energy of each Y_lm (l <= 3) in the eigenvectors of its
    multiplet >= 0.99976 (combinatorial), 0.99953 (normalized); ratios within 2.8 % / 3.2 %.
    """
    G = build_graph(HealpixSampling(8), k=20, laplacian=kind, cache=False)
    e, V = eigsh(G.laplacian, k=17, sigma=-1e-2, which="LM")
    order = np.argsort(e)
    e, V = e[order], V[:, order]
    assert abs(e[0]) < 1e-10
    for ell in (1, 2, 3):
        multiplet = e[ell**2 : (ell + 1) ** 2] / e[1]
        np.testing.assert_allclose(multiplet, ell * (ell + 1) / 2, rtol=0.035)
        assert e[(ell + 1) ** 2] / e[(ell + 1) ** 2 - 1] > 1.4  # gap to the next multiplet
    Y, deg = real_harmonics_nested(8, 3)
    captured_16 = np.sum((Y @ V[:, :16]) ** 2, axis=1)
    assert captured_16.min() > 0.999
    for ell in range(4):
        sub = V[:, ell**2 : (ell + 1) ** 2]
        assert np.sum((Y[deg == ell] @ sub) ** 2, axis=1).min() > 0.999
    # a degree-4 harmonic lies (almost) outside the span of the first 16
    Y4, deg4 = real_harmonics_nested(8, 4)
    assert np.sum((Y4[deg4 == 4] @ V[:, :16]) ** 2, axis=1).max() < 0.01


@pytest.mark.parametrize("rescaled", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_torch(graph, rescaled, dtype):
    T = graph.to_torch(dtype=dtype, rescaled=rescaled)
    assert T.layout == torch.sparse_csr and T.dtype == dtype and T.shape == (192, 192)
    ref = graph.rescaled_laplacian() if rescaled else graph.laplacian
    np.testing.assert_allclose(T.to_dense().double().numpy(), ref.toarray(), rtol=1e-6 if dtype == torch.float32 else 0)
    x = torch.randn(192, 3, dtype=dtype)
    np.testing.assert_allclose((T @ x).double().numpy(), ref @ x.double().numpy(),
                               rtol=1e-5, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_to_pygsp(graph):
    G = graph.to_pygsp()
    assert abs(G.W - graph.weights).max() == 0
    np.testing.assert_allclose(G.coords, graph.sampling.xyz)
    np.testing.assert_allclose(G.L.toarray(), graph.laplacian.toarray(), atol=1e-14)
    G2 = build_graph(graph.sampling, k=8, laplacian="normalized", cache=False).to_pygsp()
    assert G2.lap_type == "normalized"


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_to_pyg(kind):
    g = build_graph(HealpixSampling(4), k=8, laplacian=kind, cache=False)
    data = g.to_pyg(dtype=torch.float64)
    assert data.num_nodes == 192 and data.edge_index.dtype == torch.int64
    W = to_scipy_sparse_matrix(data.edge_index, data.edge_weight, 192).tocsr()
    assert abs(W - g.weights).max() == 0
    np.testing.assert_allclose(data.pos.numpy(), g.sampling.xyz)
    ei, ew = get_laplacian(data.edge_index, data.edge_weight, normalization=None if kind == "combinatorial" else "sym",
                           num_nodes=192)
    L = to_scipy_sparse_matrix(ei, ew, 192)
    np.testing.assert_allclose(L.toarray(), g.laplacian.toarray(), atol=1e-14)
    assert g.to_pyg().edge_weight.dtype == torch.float32


def test_partial_sky_and_equiangular_graphs():
    s = HealpixSampling(16, indices=np.arange(100, 700))
    g = build_graph(s, k=20, cache=False)
    assert g.weights.shape == (600, 600) and g.sigma == kernel_width(16, 20)
    for s in (DriscollHealySampling(6), McEwenWiauxSampling(6)):
        g = build_graph(s, kind="4neighbour", laplacian="normalized", cache=False)
        assert g.kind == "4neighbour" and g.k is None and g.sigma is None
        e = np.linalg.eigvalsh(g.rescaled_laplacian().toarray())
        assert e.min() >= -1 - 1e-12 and e.max() <= 1


def test_errors():
    s = HealpixSampling(1)
    with pytest.raises(ValueError, match="k=12"):
        build_graph(s, k=12, cache=False)
    with pytest.raises(ValueError, match="unknown Laplacian kind"):
        build_graph(s, k=4, laplacian="rw", cache=False)
    with pytest.raises(ValueError, match="unknown graph kind"):
        build_graph(s, k=4, kind="8neighbour", cache=False)
    with pytest.raises(ValueError, match="equiangular"):
        build_graph(s, kind="4neighbour", cache=False)
    with pytest.raises(ValueError, match="nside"):
        build_graph(HealpixSampling(12), cache=False)
