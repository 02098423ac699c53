"""Full Clebsch-Gordan layer (Kondor et al. 2018): products across all channels."""
import itertools

import pytest
import torch

from deepsphere_gen.equivariance import assert_equivariant
from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen.nn import FullCGLayer, GeneralizedSignal, TensorProductActivation

L, K, TAU = 3, 2, 2


def signal(L=L, K=K, tau=TAU, B=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GeneralizedSignal([torch.randn(B, K, 2 * l + 1, tau, generator=g, dtype=torch.float64).to(dtype)
                              for l in range(L)])


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("mixing", ["full", "mst"])
def test_equivariance(dtype, tol, mixing):
    torch.manual_seed(0)
    layer = FullCGLayer(L, K, TAU, L_out=2, channels_out=3, type_out=2, mixing=mixing).to(dtype)
    y = layer(signal(dtype=dtype))
    assert y.channels == 3 and y.type == (2, 2)
    assert_equivariant(layer, signal(dtype=dtype), list(random_rotations(2, seed=1)), lambda s, a: s.rotate(a), tol=tol)


def test_degree_zero_products_cross_channels():
    # L = 1: every product f_i f_j (i <= j) of the degree-0 scalars of all channels (CG(0,0,0) = 1)
    x = signal(L=1, K=3, tau=1, B=1)
    layer = FullCGLayer(1, 3, 1, normalize=False)
    flat = GeneralizedSignal([x.fragments[0].permute(0, 2, 1, 3).reshape(1, 1, 1, 3)])
    got = sorted(layer.activation(flat).fragments[0].flatten().tolist())
    v = x.fragments[0].flatten().tolist()
    want = sorted(a * b for a, b in itertools.combinations_with_replacement(v, 2))
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-14)


def test_one_channel_equals_channelwise_activation_and_growth():
    x = signal(K=1)
    full = FullCGLayer(L, 1, TAU, normalize=False)
    cw = TensorProductActivation(L, 1, TAU, mixing="full")
    assert full.activation.type_out == cw.type_out
    for a, b in zip(full.activation(x).fragments, cw(x).fragments):
        assert torch.allclose(a, b)
    # across K channels the expanded type grows quadratically in K, channel-wise linearly
    wide = FullCGLayer(L, 4, TAU, normalize=False)
    cw4 = TensorProductActivation(L, 4, TAU, mixing="full")
    assert sum(wide.activation.type_out) > 3 * 4 * sum(cw4.type_out) / 4
    assert wide.flops > 3 * cw4.flops


def test_bad_inputs():
    layer = FullCGLayer(L, K, TAU)
    with pytest.raises(ValueError, match="channels"):
        layer(signal(K=3))
    with pytest.raises(ValueError, match="type"):
        layer(signal(tau=1))
    with pytest.raises(ValueError, match="GeneralizedSignal"):
        layer(torch.zeros(2, 9, 2))
    with pytest.raises(ValueError, match="channels_in"):
        FullCGLayer(L, 0, TAU)
