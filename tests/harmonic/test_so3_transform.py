"""Wigner transforms on SO(3) grids: exactness against a direct sum of wigner_D_real, round
trips, Parseval, rotation equivariance, autograd and bad inputs."""
import math

import pytest
import torch

from deepsphere_gen.harmonic import SO3Transform, random_rotations, rotate_fragments, so3_coefficient_count, wigner_D_real
from deepsphere_gen.sampling import GaussLegendreSO3Sampling, McEwenSO3Sampling, SOFTSampling, so3_sampling

GRIDS = [SOFTSampling, GaussLegendreSO3Sampling, McEwenSO3Sampling]


def fragments(L, B=2, C=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, C, 2 * l + 1, 2 * l + 1, generator=g, dtype=torch.float64).to(dtype) for l in range(L)]


def direct_synthesis(frags, angles):
    """f(R) = sum_l sqrt((2l+1)/8pi^2) sum_mn F_mn D^l_mn(R), point by point."""
    out = 0
    for l, f in enumerate(frags):
        c = math.sqrt((2 * l + 1) / (8 * math.pi**2))
        out = out + c * torch.einsum("pmn,bcmn->bpc", wigner_D_real(l, angles), f)
    return out


@pytest.mark.parametrize("make", GRIDS)
def test_synthesis_matches_wigner_D_and_round_trip(make):
    L = 5
    s = make(L)
    T = SO3Transform(s)
    F = fragments(L)
    x = T.inverse(F)
    assert x.shape == (2, s.npoints, 3)
    assert torch.allclose(x, direct_synthesis(F, torch.as_tensor(s.angles)), atol=1e-13)
    back = T(x)
    assert max(float((a - b).abs().max()) for a, b in zip(back, F)) < 1e-13


@pytest.mark.parametrize("make", [SOFTSampling, GaussLegendreSO3Sampling])
def test_parseval(make):
    s = make(4)
    F = fragments(4, B=1, C=1)
    x = SO3Transform(s).inverse(F)
    energy = float((x[0, :, 0] ** 2 * torch.as_tensor(s.weights)).sum())
    assert math.isclose(energy, sum(float((f**2).sum()) for f in F), rel_tol=1e-13)


@pytest.mark.parametrize("kind", ["mw", "gl", "soft"])
def test_round_trip_L16_float64(kind):
    L = 16
    T = SO3Transform(so3_sampling(kind, L))
    F = fragments(L, B=1, C=1)
    err = max(float((a - b).abs().max()) for a, b in zip(T(T.inverse(F)), F))
    assert err < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mw", "gl"])
def test_round_trip_L32_float64(kind):
    L = 32
    T = SO3Transform(so3_sampling(kind, L))
    F = fragments(L, B=1, C=1)
    err = max(float((a - b).abs().max()) for a, b in zip(T(T.inverse(F)), F))
    assert err < 1e-10


def test_float32_round_trip_and_oversampled_grid():
    T = SO3Transform(McEwenSO3Sampling(8), L=5)  # finer grid than needed
    F = fragments(5, dtype=torch.float32)
    x = T.inverse(F)
    assert x.dtype == torch.float32
    assert max(float((a - b).abs().max()) for a, b in zip(T(x), F)) < 1e-5
    # the same grid at full bandlimit sees only l < 5
    full = SO3Transform(McEwenSO3Sampling(8))(x.double())
    assert all(float(f.abs().max()) < 1e-5 for f in full[5:])


def test_rotation_acts_on_the_left():
    # samples of f(Q^-1 R) on the grid -> coefficients D(Q) F
    L = 4
    s = GaussLegendreSO3Sampling(L)
    F = fragments(L, B=1, C=1)
    Q = random_rotations(1, seed=3)[0]
    rotated = rotate_fragments([f for f in F], Q)
    want = SO3Transform(s).inverse(rotated)
    # D(Q^-1 R) = D(Q)^T D(R): evaluate f there directly
    got = 0
    for l, f in enumerate(F):
        c = math.sqrt((2 * l + 1) / (8 * math.pi**2))
        D = wigner_D_real(l, Q).T @ wigner_D_real(l, torch.as_tensor(s.angles))
        got = got + c * torch.einsum("pmn,bcmn->bpc", D, f)
    assert torch.allclose(got, want, atol=1e-13)


def test_autograd():
    T = SO3Transform(McEwenSO3Sampling(3))
    F = [f.requires_grad_() for f in fragments(3, B=1, C=1)]
    x = T.inverse(F)
    (x**2).sum().backward()
    assert all(f.grad is not None and torch.isfinite(f.grad).all() for f in F)
    small = SO3Transform(McEwenSO3Sampling(2))
    y = torch.randn(1, small.npoints, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: small(t)[1], (y,))


def test_coefficient_count():
    assert so3_coefficient_count(4) == 1 + 9 + 25 + 49


def test_bad_inputs():
    T = SO3Transform(SOFTSampling(3))
    with pytest.raises(ValueError, match="SO3Sampling"):
        SO3Transform("mw")
    with pytest.raises(ValueError, match="bandlimit"):
        SO3Transform(SOFTSampling(3), L=4)
    with pytest.raises(ValueError, match="points"):
        T(torch.zeros(1, 10, 1))
    with pytest.raises(ValueError, match="NaN"):
        T(torch.full((1, T.npoints, 1), float("nan")))
    with pytest.raises(ValueError, match="float32 or float64"):
        T(torch.zeros(1, T.npoints, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="3 fragments"):
        T.inverse(fragments(2))
    with pytest.raises(ValueError, match="fragment l=1"):
        T.inverse([torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 5, 5)])
