"""HybridClassifier: shapes, end-to-end training, invariance of the part after the bridge, errors."""
import copy

import pytest
import torch

from deepsphere_gen.equivariance import equivariance_error, map_equivariance_error
from deepsphere_gen.harmonic import random_rotations, synthesis
from deepsphere_gen.models.hybrid import HybridClassifier
from deepsphere_gen.nn import ChebConv
from deepsphere_gen.sampling import HealpixSampling
from tests._copies import deep_and_pickled_copies


def _model(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    args = dict(graph_channels=(3, 4), K=3, k=8, bandlimits=(4, 3), harmonic_channels=(4,), hidden=(8,), dtype=dtype)
    args.update(kw)
    return HybridClassifier(8, 1, 3, **args)


def test_shapes_and_parts():
    m = _model()
    x = torch.randn(2, 12 * 64, 1, dtype=torch.float64)
    assert m(x).shape == (2, 3)
    assert m.low_sampling.nside == 2 and m.graph_features(x).shape == (2, 48, 4)
    assert m.signal(x).L == 3


def test_empty_batch_gives_empty_logits_and_gradients():
    """As DeepSphereClassifier: (0, n_classes) logits, and a backward that reaches the input (was: a
    reshape error in the tensor-product activation, then a ZeroDivisionError in ChebConv's backward)."""
    m = _model().eval()
    x = torch.zeros(0, 12 * 64, 1, dtype=torch.float64, requires_grad=True)
    y = m(x)
    assert y.shape == (0, 3)
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_trains_end_to_end_float32():
    m = _model(dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 12 * 64, 1, generator=gen)
    y = torch.randint(0, 3, (8,), generator=gen)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_after_bridge_is_equivariant_to_float64_precision_and_total_error_small():
    m = _model(graph_channels=(3,), bandlimits=(6, 4), pool_levels=1).eval()  # nside 8 -> 4, L=6 <= 2*4
    s = HealpixSampling(8)
    a = torch.randn(2, 36, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rots = list(random_rotations(2, seed=3))
    with torch.no_grad():
        sig = m.bridge(m.graph_features(synthesis(a, s, 6)))
    res = equivariance_error(m.harmonic_signal, sig, rots, lambda f, R: f.rotate(R))
    assert res.mean < 1e-12
    total = map_equivariance_error(m, s, L=6, rotations=rots, seed=2, invariant=True)  # seed 2: the coefficients a
    assert 1e-8 < total.mean < 0.5  # the graph part's (non-zero, moderate) error


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="harmonic_channels"):
        _model(harmonic_channels=(4, 4))
    with pytest.raises(ValueError, match="non-increasing"):
        _model(bandlimits=(3, 4))
    with pytest.raises(ValueError, match="exceeds"):
        _model(bandlimits=(20, 4))
    with pytest.raises(ValueError, match="pixels"):
        _model()(torch.zeros(1, 10, 1, dtype=torch.float64))


def test_deepcopy_and_pickle_are_independent_and_equal():
    m = _model(dtype=torch.float32)
    x = torch.randn(2, 12 * 64, 1)
    m(x).sum().backward()
    m.eval()
    y = m(x)
    twin, loaded = deep_and_pickled_copies(m)
    for c in (twin, loaded):
        torch.testing.assert_close(c(x), y, rtol=0, atol=0)
        for a, b in zip(_convs(m), _convs(c)):
            assert b.laplacian.dtype == a.laplacian.dtype and b.laplacian.device == a.laplacian.device
            assert b.laplacian.values().data_ptr() != a.laplacian.values().data_ptr()
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(-1.5)
    torch.testing.assert_close(m(x), y, rtol=0, atol=0)


def _convs(model):
    return [c for c in model.modules() if isinstance(c, ChebConv)]


def test_convs_of_one_resolution_share_one_laplacian():
    """Without pooling the three graph convs hold one Laplacian, also after .double() and deepcopy."""
    m = _model(dtype=torch.float32, graph_channels=(3, 4, 4), pool_levels=0, bandlimits=(4,), harmonic_channels=()).eval()
    x = torch.randn(2, 12 * 64, 1, dtype=torch.float64)
    want = m(x.float()).double()
    assert len(_convs(m)) == 3 and _distinct_laplacians(m) == 1
    m.double()
    assert _distinct_laplacians(m) == 1 and _distinct_laplacians(copy.deepcopy(m)) == 1
    torch.testing.assert_close(m(x), want, rtol=1e-4, atol=1e-5)


def _distinct_laplacians(model):
    return len({(c.laplacian.crow_indices().data_ptr(), c.laplacian.col_indices().data_ptr(),
                 c.laplacian.values().data_ptr()) for c in _convs(model)})
