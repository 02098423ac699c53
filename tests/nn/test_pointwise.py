"""Pointwise activations on grids (S2 ReLU, SO(3) ReLU): the non-equivariant baselines.

Ground truth: the identity activation must return its input exactly (exact transforms);
ReLU of a positive signal is the identity; the S2 ReLU equals a direct evaluation with
real_spherical_harmonics, ReLU and the Gauss-Legendre quadrature; the equivariance error
is far from float level and shrinks with oversampling.
"""
import pytest
import torch

from deepsphere_gen.equivariance import equivariance_error
from deepsphere_gen.harmonic import random_rotations, real_spherical_harmonics
from deepsphere_gen.nn import S2Pointwise, S2ReLU, SO3Pointwise, SO3ReLU
from deepsphere_gen.sampling import GaussLegendreSampling

from ._signals import s2_signal, so3_signal

L = 4


def max_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a.fragments, b.fragments))


@pytest.mark.parametrize("grid", ["mw", "gl", "dh"])
def test_s2_identity_activation_is_exact(grid):
    x = s2_signal()
    layer = S2Pointwise(L, 2, grid=grid, activation=lambda t: t, oversampling=1.5, dtype=torch.float64)
    assert max_diff(layer(x), x) < 1e-12


@pytest.mark.parametrize("grid", ["mw", "gl", "soft"])
def test_so3_identity_activation_is_exact(grid):
    x = so3_signal(L=3)
    layer = SO3Pointwise(3, 2, grid=grid, activation=lambda t: t)
    assert max_diff(layer(x), x) < 1e-12


def test_relu_of_positive_signal_is_identity():
    x = so3_signal(L=3, C=1)
    x.fragments[0] = x.fragments[0].abs() + 100.0  # a large constant keeps the signal positive
    assert max_diff(SO3ReLU(3, 1)(x), x) < 1e-10
    y = s2_signal(C=1)
    y.fragments[0] = y.fragments[0].abs() + 100.0
    assert max_diff(S2ReLU(L, 1, dtype=torch.float64)(y), y) < 1e-10


def test_s2_relu_matches_direct_quadrature():
    x = s2_signal(B=1, C=1)
    Lg = 6
    layer = S2ReLU(L, 1, oversampling=Lg / L, grid="gl", dtype=torch.float64)
    got = torch.cat([f[0, 0, :, 0] for f in layer(x).fragments])
    grid = GaussLegendreSampling(Lg)
    Y = torch.as_tensor(real_spherical_harmonics(Lg, grid.theta, grid.phi))
    coeffs = torch.cat([f[0, 0, :, 0] for f in x.fragments])
    values = torch.relu(Y[:, : L * L] @ coeffs)
    want = (Y[:, : L * L] * torch.as_tensor(grid.weights)[:, None]).T @ values
    assert torch.allclose(got, want, atol=1e-12)


def test_output_bandlimit_and_dtype():
    y = SO3ReLU(4, 2, L_out=2)(so3_signal(dtype=torch.float32))
    assert y.L == 2 and y.type == (1, 3) and y.dtype == torch.float32
    z = S2ReLU(4, 2, L_out=6)(s2_signal(dtype=torch.float32))
    assert z.L == 6 and z.dtype == torch.float32


def test_relu_is_not_equivariant_and_oversampling_helps():
    rots = list(random_rotations(2, seed=0))
    x = s2_signal(L=6, C=1, B=2)
    e1 = equivariance_error(S2ReLU(6, 1, dtype=torch.float64), x, rots, lambda s, a: s.rotate(a)).mean
    e4 = equivariance_error(S2ReLU(6, 1, oversampling=3, dtype=torch.float64), x, rots, lambda s, a: s.rotate(a)).mean
    assert e1 > 1e-2 and e4 < e1 / 3, (e1, e4)
    y = so3_signal(L=3, C=1, B=2)
    f1 = equivariance_error(SO3ReLU(3, 1), y, rots, lambda s, a: s.rotate(a)).mean
    f3 = equivariance_error(SO3ReLU(3, 1, oversampling=3), y, rots, lambda s, a: s.rotate(a)).mean
    assert f1 > 1e-2 and f3 < f1 / 3, (f1, f3)


def test_autograd():
    x = so3_signal(L=3, C=1)
    for f in x.fragments:
        f.requires_grad_()
    y = SO3ReLU(3, 1)(x)
    sum((f**2).sum() for f in y.fragments).backward()
    assert all(torch.isfinite(f.grad).all() for f in x.fragments)


def test_bad_inputs():
    with pytest.raises(ValueError, match="oversampling"):
        S2ReLU(4, 1, oversampling=0.5)
    with pytest.raises(ValueError, match="unknown sphere grid"):
        S2ReLU(4, 1, grid="healpix")
    with pytest.raises(ValueError, match="unknown SO\\(3\\) sampling"):
        SO3ReLU(4, 1, grid="healpix")
    with pytest.raises(ValueError, match="SO\\(3\\) signal"):
        SO3ReLU(L, 2)(s2_signal())
    with pytest.raises(ValueError, match="S2 signal"):
        S2ReLU(L, 2)(so3_signal())
    with pytest.raises(ValueError, match="channels"):
        S2ReLU(L, 3)(s2_signal(dtype=torch.float32))
    with pytest.raises(ValueError, match="callable"):
        S2Pointwise(L, 1, activation="relu")
