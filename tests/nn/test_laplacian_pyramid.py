"""nn.LaplacianPyramid and nn.SharedLaplacians: one Laplacian per resolution, shared by the convs."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from deepsphere_gen.graph import build_graph
from deepsphere_gen.nn import ChebConv, LaplacianPyramid, SharedLaplacians
from deepsphere_gen.sampling import DriscollHealySampling, HealpixSampling


def _dense(csr: torch.Tensor) -> np.ndarray:
    return csr.to_dense().numpy()


def test_one_laplacian_per_sampling_equal_to_the_graphs(tmp_path):
    pyr = LaplacianPyramid(k=8, dtype=torch.float64, cache_dir=tmp_path)
    fine, coarse = HealpixSampling(4), HealpixSampling(1)
    a = pyr(fine)
    assert pyr(HealpixSampling(4)) is a and len(pyr) == 1  # memoised by the sampling's key
    ref = build_graph(fine, k=8, cache_dir=tmp_path).rescaled_laplacian()
    np.testing.assert_allclose(_dense(a.matrix), sp.csr_matrix(ref).toarray(), atol=1e-12)
    part = pyr(HealpixSampling(4, indices=np.arange(64)))
    assert part.npix == 64 and part is not a and len(pyr) == 2
    wide = LaplacianPyramid(k=20, dtype=torch.float64, cache_dir=tmp_path)
    c = wide(coarse)  # 12 pixels < k + 1: complete graph (k capped at npix - 1), whatever was built before
    ref = build_graph(coarse, k=11, cache_dir=tmp_path).rescaled_laplacian()
    np.testing.assert_allclose(_dense(c.matrix), sp.csr_matrix(ref).toarray(), atol=1e-12)


def test_a_pole_grid_level_is_capped_at_its_distinct_points(tmp_path):
    """LaplacianPyramid(k=20) on DH(2) (16 pixels, its 4-pixel pole ring one point: 13 points) asked build_graph for
    k=15 and failed; the cap counts the distinct points, as the kNN graph does."""
    s = DriscollHealySampling(2)
    pyr = LaplacianPyramid(k=20, dtype=torch.float64, cache_dir=tmp_path)
    lap = pyr(s)
    assert pyr.describe_k() == "k=20 (12 at 13 points of 16 pixels: capped at points - 1)"  # was "at 16 pixels: ...pixels"
    ref = build_graph(s, k=12, cache_dir=tmp_path)
    np.testing.assert_allclose(_dense(lap.matrix), sp.csr_matrix(ref.rescaled_laplacian()).toarray(), atol=1e-12)
    W = ref.weights.toarray()
    rest = np.arange(4, 16)  # all but the pole ring: every pair linked (a complete graph of the 13 points)
    assert np.count_nonzero(W[np.ix_(rest, rest)]) == 12 * 11 and np.all(W[:4][:, rest] > 0)
    with pytest.raises(ValueError, match=r"k=13 neighbours needs more than k distinct points; the sampling has 13 "
                                         r"\(16 pixels"):
        build_graph(s, k=13, cache=False)


class _Two(SharedLaplacians):
    def __init__(self, pyr):
        super().__init__()
        s = HealpixSampling(2)
        self.a, self.b = ChebConv(1, 2, 3, pyr(s)), ChebConv(2, 1, 3, pyr(s))


def test_sharing_survives_to_and_load_state_dict(tmp_path):
    pyr = LaplacianPyramid(k=8, dtype=torch.float32, cache_dir=tmp_path)
    m = _Two(pyr)
    assert m.a.laplacian is m.b.laplacian
    m = m.double()
    assert m.a.laplacian is m.b.laplacian and m.a.laplacian.dtype == torch.float64
    # a checkpoint with another graph replaces each conv's Laplacian; the base class re-shares them
    other = _Two(LaplacianPyramid(k=6, dtype=torch.float64, cache_dir=tmp_path)).state_dict()
    m.load_state_dict(other)
    assert m.a.laplacian is m.b.laplacian and m.a.laplacian.values().numel() < 456  # k = 6 < 8
    x = torch.randn(2, 48, 1, dtype=torch.float64)
    twin = _Two(LaplacianPyramid(k=6, dtype=torch.float64, cache_dir=tmp_path)).double()
    twin.load_state_dict(other)
    assert torch.equal(twin.b(twin.a(x)), m.b(m.a(x)))
    plain = nn.Module()  # without the base class the loaded tensors stay separate
    plain.a, plain.b = ChebConv(1, 2, 3, pyr(HealpixSampling(2))), ChebConv(2, 1, 3, pyr(HealpixSampling(2)))
    plain.double().load_state_dict(other)
    assert plain.a.laplacian is not plain.b.laplacian


def test_one_pixel_sampling_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="1 pixel: a graph needs at least 2"):
        LaplacianPyramid(k=8, cache_dir=tmp_path)(HealpixSampling(4, indices=np.array([5])))
