"""Constrained generalized convolutions and degree normalisation."""
import pytest
import torch

from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen.equivariance import assert_equivariant
from deepsphere_gen.nn import ChannelWiseConv, CrossChannelConv, DegreeNorm, GeneralizedSignal, UniformConv

L, K, TAU = 5, 3, (2, 3, 1, 2, 2)


def rotations(n, seed=0):
    """Uniform random rotations on SO(3) (ZYZ angles, float64)."""
    return list(random_rotations(n, seed))


def signal(dtype=torch.float64, K=K, tau=TAU, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GeneralizedSignal([torch.randn(B, K, 2 * l + 1, t, generator=g, dtype=torch.float64).to(dtype)
                              for l, t in enumerate(tau)])


LAYERS = {
    "uniform": lambda: UniformConv(L, K, TAU, 2),
    "channelwise": lambda: ChannelWiseConv(L, K, TAU, (1, 2, 3, 1, 2)),
    "cross": lambda: CrossChannelConv(L, K, 4, TAU),
    "norm": lambda: DegreeNorm(L, K, TAU),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 5e-7)])
def test_equivariance(name, dtype, tol):
    torch.manual_seed(0)
    layer = LAYERS[name]().to(dtype)
    assert_equivariant(layer, signal(dtype), rotations(3), lambda x, a: x.rotate(a), tol=tol)


def test_formulas():
    torch.manual_seed(0)
    x = signal()
    u = UniformConv(L, K, TAU, 2).double()
    c = ChannelWiseConv(L, K, TAU, 2).double()
    m = CrossChannelConv(L, K, 4, TAU).double()
    l = 3
    f = x.fragments[l]
    assert torch.allclose(u(x).fragments[l], torch.einsum("bkmi,io->bkmo", f, u.weight[l]))
    assert torch.allclose(c(x).fragments[l], torch.einsum("bkmi,kio->bkmo", f, c.weight[l]))
    assert torch.allclose(m(x).fragments[l], torch.einsum("bkmi,kj->bjmi", f, m.weight[l]))
    assert sum(p.numel() for p in u.parameters()) == sum(t * 2 for t in TAU)
    assert sum(p.numel() for p in c.parameters()) == K * sum(t * 2 for t in TAU)
    assert sum(p.numel() for p in m.parameters()) == L * K * 4
    n = DegreeNorm(L, K, TAU, affine=False)(x)
    for f in n.fragments:
        assert torch.allclose(f.pow(2).mean(dim=(2, 3)), torch.ones(2, K, dtype=torch.float64), atol=1e-4)


def test_init_keeps_scale():
    torch.manual_seed(0)
    big = (16,) * L
    x = signal(torch.float32, K=8, tau=big, B=16)
    for _ in range(6):
        x = CrossChannelConv(L, 8, 8, big)(ChannelWiseConv(L, 8, big, big)(UniformConv(L, 8, big, big)(x)))
    for f in x.fragments:
        rms = f.pow(2).mean().sqrt().item()
        assert 0.2 < rms < 5.0, rms


def test_bad_input():
    u = UniformConv(L, K, TAU, 2)
    with pytest.raises(ValueError, match="L=4, the layer expects L=5"):
        u(signal(torch.float32, tau=TAU[:4]))
    with pytest.raises(ValueError, match="type"):
        u(signal(torch.float32, tau=(1,) * L))
    with pytest.raises(ValueError, match="channels"):
        u(signal(torch.float32, K=2))
    with pytest.raises(ValueError, match="one per degree"):
        UniformConv(L, K, (1, 2), 2)
    with pytest.raises(ValueError, match="eps"):
        DegreeNorm(L, K, TAU, eps=0)
