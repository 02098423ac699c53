"""S2 input layer: maps / coefficients -> generalized signal, equivariance through the SHT."""
import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen.equivariance import assert_equivariant, assert_map_equivariant
from deepsphere_gen.nn import GeneralizedSignal, S2InputLayer
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling


def rotations(n, seed=0):
    """Uniform random rotations on SO(3) (ZYZ angles, float64)."""
    return list(random_rotations(n, seed))


def rotate_coeffs(c, a):
    return GeneralizedSignal.from_coefficients(c).rotate(a).to_coefficients()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 5e-7)])
def test_equivariance_coefficients(dtype, tol):
    torch.manual_seed(0)
    layer = S2InputLayer(6, 2, 3, tau=2).to(dtype)
    x = torch.randn(2, 36, 2, dtype=dtype)
    y = layer(x)
    assert (y.L, y.channels, y.type) == (6, 3, (2,) * 6)
    assert_equivariant(layer, x, rotations(3), rotate_coeffs, lambda s, a: s.rotate(a), tol=tol)


def test_equivariance_maps_gauss_legendre():
    """Band-limited maps on an exact (GL) grid: rotating the map = rotating its coefficients."""
    torch.manual_seed(0)
    L = 6
    s = GaussLegendreSampling(L)
    layer = S2InputLayer(L, 1, 2, sampling=s, dtype=torch.float64).double()
    res = assert_map_equivariant(layer, s, L=L, rotations=3, tol=1e-12)  # output: signal.rotate
    assert res.errors.shape == (3, 2)


def test_per_degree_weights_against_healpy():
    """Degree-l output = healpy's alm (converted to our real basis) times W^l."""
    torch.manual_seed(0)
    nside, L = 8, 6
    s = HealpixSampling(nside)
    layer = S2InputLayer(L, 1, 1, sampling=s, dtype=torch.float64, iterations=3).double()
    np.random.seed(0)
    ring = hp.synfast(np.ones(L), nside, lmax=L - 1, pixwin=False)
    nested = hp.reorder(ring, r2n=True)
    alm = hp.map2alm(ring, lmax=L - 1, iter=3, use_pixel_weights=False)
    y = layer(torch.tensor(nested)[None, :, None])
    for l in range(L):
        # |real coefficients| of degree l = |complex alm| with both m signs: compare power
        power_hp = abs(alm[hp.Alm.getidx(L - 1, l, 0)]) ** 2 + 2 * sum(
            abs(alm[hp.Alm.getidx(L - 1, l, m)]) ** 2 for m in range(1, l + 1))
        w = layer.weight[l].item()
        assert np.isclose(y.fragments[l].pow(2).sum().item(), w * w * power_hp, rtol=1e-6)


def test_bad_input():
    layer = S2InputLayer(4, 1, 2)
    with pytest.raises(ValueError, match="L\\*L = 16"):
        layer(torch.randn(1, 15, 1))
    with pytest.raises(ValueError, match="channels"):
        layer(torch.randn(1, 16, 2))
    x = torch.randn(1, 16, 1)
    x[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        layer(x)
    with pytest.raises(ValueError, match="pixels"):
        S2InputLayer(4, 1, 2, sampling=GaussLegendreSampling(4))(torch.randn(1, 10, 1))
