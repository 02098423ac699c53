"""dtype= of the harmonic layers and models builds every parameter in that dtype; a signal
or map of another dtype is a ValueError that names the mismatch (not torch's "expected m1
and m2 to have the same dtype")."""
import pytest
import torch

from deepsphere_gen.models import HarmonicClassifier, KondorCGNet
from deepsphere_gen.nn import EfficientGeneralizedLayer, GeneralizedSignal, InvariantReadout, S2InputLayer
from deepsphere_gen.sampling import GaussLegendreSampling

L = 6
GL = GaussLegendreSampling(L)


def _dtypes(module):
    return {p.dtype for p in module.parameters()}


def test_s2_input_layer_dtype_builds_the_weights():
    layer = S2InputLayer(L, 1, 3, sampling=GL, dtype=torch.float64)
    assert _dtypes(layer) == {torch.float64}
    y = layer(torch.randn(2, GL.npix, 1, dtype=torch.float64))
    assert y.dtype == torch.float64 and y.L == L
    # a map of another dtype: check_dtype's message (through the layer's SHT)
    with pytest.raises(ValueError, match=r"dtype torch.float32 differs from the SHT's torch.float64; cast the input"):
        layer(torch.randn(2, GL.npix, 1))
    with pytest.raises(ValueError, match=r"dtype torch.float64 differs .* build the module with dtype=torch.float64"):
        S2InputLayer(L, 1, 3, sampling=GL)(torch.randn(2, GL.npix, 1, dtype=torch.float64))
    # coefficient input (no transform): the weights' dtype is checked
    coeffs = S2InputLayer(L, 1, 3, dtype=torch.float64)
    assert coeffs(torch.randn(2, L * L, 1, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match=r"torch.float32 differs from the layer's torch.float64"):
        coeffs(torch.randn(2, L * L, 1, dtype=torch.float32))


def test_harmonic_classifier_dtype_float64():
    model = HarmonicClassifier(3, bandlimits=(L, 4), channels=(2, 3), sampling=GL, dtype=torch.float64)
    assert _dtypes(model) == {torch.float64}
    out = model(torch.randn(2, GL.npix, 1, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (2, 3)
    with pytest.raises(ValueError, match=r"dtype torch.float32 differs from the SHT's torch.float64; cast the input"):
        model(torch.randn(2, GL.npix, 1))
    with pytest.raises(ValueError, match=r"dtype torch.float64 differs .* build the module with dtype=torch.float64"):
        HarmonicClassifier(3, bandlimits=(L, 4), channels=(2, 3), sampling=GL)(torch.randn(2, GL.npix, 1,
                                                                                         dtype=torch.float64))
    # coefficient input, float32 model, float64 coefficients: named, not torch's matmul error
    with pytest.raises(ValueError, match="differs"):
        HarmonicClassifier(3, bandlimits=(L, 4), channels=(2, 3))(torch.randn(2, L * L, 1, dtype=torch.float64))


def test_kondor_dtype_float64():
    model = KondorCGNet(4, L=4, tau=2, n_layers=2, hidden=(8,), sampling=GaussLegendreSampling(4), dtype=torch.float64)
    assert _dtypes(model) == {torch.float64}
    assert model(torch.randn(2, GaussLegendreSampling(4).npix, 1, dtype=torch.float64)).dtype == torch.float64


def _signal(dtype, channels=4, tau=1):
    return GeneralizedSignal([torch.randn(2, channels, 2 * l + 1, tau, dtype=dtype) for l in range(L)])


def test_efficient_layer_and_readout_refuse_another_dtype():
    layer = EfficientGeneralizedLayer(L, 4, 1)  # float32 parameters
    with pytest.raises(ValueError, match=r"EfficientGeneralizedLayer input dtype torch.float64 differs"):
        layer(_signal(torch.float64))
    assert layer.double()(_signal(torch.float64)).dtype == torch.float64  # .double() is the cure it names
    readout = InvariantReadout(L, 4, 1, 3)
    with pytest.raises(ValueError, match=r"InvariantReadout input dtype torch.float64 differs"):
        readout(_signal(torch.float64))


def test_double_after_construction_equals_building_in_float64(tmp_path):
    """As the docstrings say: a harmonic model cast with .double() computes what one built with
    dtype=float64 computes (transform and CG tables recomputed, not cast from float32); a
    DeepSphere model's .double() keeps the float32-rounded Laplacian values."""
    from deepsphere_gen.models import DeepSphereClassifier
    from deepsphere_gen.nn import ChebConv
    from deepsphere_gen.sampling import HealpixSampling
    hs = HealpixSampling(4)
    up = HarmonicClassifier(3, bandlimits=(L, 4), channels=(2, 3), sampling=hs).double()
    built = HarmonicClassifier(3, bandlimits=(L, 4), channels=(2, 3), sampling=hs, dtype=torch.float64)
    built.load_state_dict(up.state_dict())
    x = torch.randn(2, hs.npix, 1, dtype=torch.float64)
    assert torch.equal(up(x), built(x))
    lap = [next(m for m in net.modules() if isinstance(m, ChebConv)).laplacian.values()
           for net in (DeepSphereClassifier(4, 1, channels=(2,), cache_dir=tmp_path).double(),
                       DeepSphereClassifier(4, 1, channels=(2,), dtype=torch.float64, cache_dir=tmp_path))]
    assert 1e-10 < (lap[0] - lap[1]).abs().max() < 1e-6
