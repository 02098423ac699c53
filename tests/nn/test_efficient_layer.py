"""Efficient generalized layer: equivariance, shapes, scale through depth, gradients."""
import pytest
import torch

from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen.equivariance import assert_equivariant
from deepsphere_gen.nn import EfficientGeneralizedLayer, GeneralizedSignal


def rotations(n, seed=0):
    """Uniform random rotations on SO(3) (ZYZ angles, float64)."""
    return list(random_rotations(n, seed))


def signal(L, K, tau, B=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GeneralizedSignal([torch.randn(B, K, 2 * l + 1, tau, generator=g, dtype=torch.float64).to(dtype)
                              for l in range(L)])


@pytest.mark.parametrize("mixing", ["full", "mst", "rmst"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 5e-7)])
def test_equivariance(mixing, dtype, tol):
    torch.manual_seed(0)
    layer = EfficientGeneralizedLayer(6, 3, 2, L_out=4, channels_out=5, type_out=2, mixing=mixing).to(dtype)
    x = signal(6, 3, 2, dtype=dtype)
    y = layer(x)
    assert (y.L, y.channels, y.type) == (4, 5, (2,) * 4)
    assert_equivariant(layer, x, rotations(3), lambda s, a: s.rotate(a), tol=tol)


def test_scale_stable_through_depth_and_gradients():
    torch.manual_seed(0)
    L, K = 6, 4
    layers = torch.nn.ModuleList(EfficientGeneralizedLayer(L, K, 2, type_out=2) for _ in range(5))
    x = signal(L, K, 2, B=8, dtype=torch.float32)
    x = GeneralizedSignal([f * 3.0 for f in x.fragments])  # arbitrary input scale
    for layer in layers:
        x = layer(x)
        rms = torch.cat([f.reshape(-1) for f in x.fragments]).pow(2).mean().sqrt().item()
        assert 0.1 < rms < 10, rms
    loss = sum(f.pow(2).sum() for f in x.fragments)
    loss.backward()
    for name, p in layers.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_input():
    layer = EfficientGeneralizedLayer(4, 2, 1, L_out=3)
    with pytest.raises(ValueError, match="expects L=4"):
        layer(signal(3, 2, 1, dtype=torch.float32))
    with pytest.raises(ValueError, match="L_out"):
        EfficientGeneralizedLayer(4, 2, 1, L_out=5)
    bad = signal(4, 2, 1, dtype=torch.float32)
    bad.fragments[2] = bad.fragments[2].clone()
    bad.fragments[2][0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN/inf"):
        layer(GeneralizedSignal(bad.fragments))
