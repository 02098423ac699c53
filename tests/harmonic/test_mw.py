"""McEwen-Wiaux sampling: exact forward and inverse transforms."""
import ducc0.sht.experimental as ducc
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import (SHT, healpy_alm_to_real, mw_theta_mixing, mw_weight, real_spherical_harmonics,
                                     real_to_healpy_alm)
from deepsphere_gen.sampling import McEwenWiauxSampling

F64 = torch.float64


def _coeffs(L, batch=2, channels=2, dtype=F64):
    g = torch.Generator().manual_seed(L)
    return torch.randn(batch, L * L, channels, generator=g, dtype=dtype)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_weight_function_closed_form():
    q = np.arange(-6, 7)
    theta = np.linspace(0, np.pi, 20001)
    num = np.trapezoid(np.exp(1j * np.outer(q, theta)) * np.sin(theta), theta, axis=1)
    np.testing.assert_allclose(mw_weight(q), num, atol=1e-7)


def test_mixing_integrates_exactly():
    # sum_t lambda(theta_t) (M G)_t = int_0^pi G lambda sin: with G = cos(theta)^2, lambda = 1 -> 2/3
    L = 5
    theta = np.pi * (2 * np.arange(L) + 1) / (2 * L - 1)
    M = mw_theta_mixing(L)
    assert np.sum(M[0] @ np.cos(theta) ** 2) == pytest.approx(2 / 3, abs=1e-14)
    # odd parity: G = sin(theta), lambda = sin(theta) (both odd) -> int sin^3 = 4/3
    assert np.sin(theta) @ (M[1] @ np.sin(theta)) == pytest.approx(4 / 3, abs=1e-14)


@pytest.mark.parametrize("L", [1, 2, 3, 16, 64])
def test_round_trip_exact_float64(L):
    S = McEwenWiauxSampling(L)
    assert S.npix == (L - 1) * (2 * L - 1) + 1
    sht = SHT(S, L, dtype=F64)
    a = _coeffs(L)
    assert _rel(sht(sht.inverse(a)), a) <= 1e-10


@pytest.mark.slow
def test_round_trip_exact_float64_L256():
    L = 256
    sht = SHT(McEwenWiauxSampling(L), L, dtype=F64)
    a = _coeffs(L, batch=1, channels=1)
    assert _rel(sht(sht.inverse(a)), a) <= 1e-10


def test_inverse_is_direct_evaluation_and_forward_inverts_it():
    L = 10
    S = McEwenWiauxSampling(L)
    Y = torch.as_tensor(real_spherical_harmonics(L, S.theta, S.phi))
    a = _coeffs(L)
    f = torch.einsum("pi,bic->bpc", Y, a)
    sht = SHT(S, L, dtype=F64)
    assert _rel(sht.inverse(a), f) <= 1e-13
    assert _rel(sht(f), a) <= 1e-12


def test_lower_bandlimit_on_larger_grid():
    S = McEwenWiauxSampling(12)
    sht = SHT(S, 7, dtype=F64)
    a = _coeffs(7)
    assert _rel(sht(sht.inverse(a)), a) <= 1e-12


@pytest.mark.parametrize("engine", ["ducc0", "torch"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3)])
def test_analysis_below_the_grid_bandlimit_is_the_truncated_analysis(engine, shape):
    """A map band-limited at the grid's L = 16 analysed at L = 8: the first 64 coefficients of the
    analysis at 16, and of ducc0's own MW analysis at lmax 15 (ducc0 at lmax 7 is off by 3e-2)."""
    Lg, L = 16, 8
    S = McEwenWiauxSampling(Lg)
    a = _coeffs(Lg, *shape)
    grid = ducc.synthesis_2d(alm=real_to_healpy_alm(a[0, :, 0].numpy(), Lg)[None], spin=0, lmax=Lg - 1,
                             geometry="MW", ntheta=Lg, nphi=2 * Lg - 1)
    f = SHT(S, Lg, dtype=F64, engine=engine).inverse(a)
    torch.testing.assert_close(f[0, :, 0], torch.from_numpy(grid.reshape(-1)[: S.npix]), atol=1e-13, rtol=0)
    low = SHT(S, L, dtype=F64, engine=engine)(f)
    torch.testing.assert_close(low, SHT(S, Lg, dtype=F64, engine=engine)(f)[:, : L * L], atol=1e-13, rtol=0)
    torch.testing.assert_close(low, a[:, : L * L], atol=1e-13, rtol=0)
    theirs = healpy_alm_to_real(ducc.analysis_2d(map=grid, spin=0, lmax=Lg - 1, geometry="MW")[0], Lg)[: L * L]
    np.testing.assert_allclose(low[0, :, 0].numpy(), theirs, atol=1e-13, rtol=0)


@pytest.mark.parametrize("Lg,L", [(16, 8), (9, 4), (12, 7), (7, 1), (7, 6), (33, 16)])
def test_ducc0_ring_path_below_the_grid_bandlimit_equals_the_full_analysis(Lg, L):
    """ducc0's ring path (map2leg, MW's mixing at Lg, leg2alm at L) against the reference (the
    engine's analysis_2d at the grid's Lg, truncated): maps band-limited at Lg, batch and channels,
    float64 and float32; the adjoints too (on any coefficients: the two are one linear map)."""
    from deepsphere_gen.harmonic._sht_ducc import DuccEngine
    from deepsphere_gen.harmonic._sht_geometry import RingGeometry

    S = McEwenWiauxSampling(Lg)
    f = SHT(S, Lg, dtype=F64).inverse(_coeffs(Lg, 3, 2))
    geom = RingGeometry.from_sampling(S, L)
    fast, full = DuccEngine(geom), DuccEngine(RingGeometry.from_sampling(S, Lg))  # the reference: at Lg, truncated
    assert fast._mw_mix is not None and full._mw_mix is None  # the ring path, and the plain analysis
    c = _coeffs(L, 3, 2)
    for x, tol in ((f, 1e-12), (f[1:2, :, 1:], 1e-12), (f.float(), 3e-6)):
        want = full._analysis(x.double())[:, : L * L]
        got = fast._analysis(x)
        assert got.dtype == x.dtype and got.shape == (x.shape[0], L * L, x.shape[2])
        assert float((got.double() - want).abs().max()) <= tol * float(want.abs().max())
        cx = c[: x.shape[0], :, : x.shape[2]]
        want = full._adjoint_analysis(torch.nn.functional.pad(cx, (0, 0, 0, Lg * Lg - L * L)))  # truncation's adjoint
        got = fast._adjoint_analysis(cx.to(x.dtype))
        assert float((got.double() - want).abs().max()) <= tol * float(want.abs().max())


@pytest.mark.parametrize("Lg,L", [(6, 3), (5, 2)])
def test_gradcheck_below_the_grid_bandlimit(Lg, L):
    """The ring path and its adjoint, first and second order."""
    S = McEwenWiauxSampling(Lg)
    sht = SHT(S, L, dtype=F64)
    for shape in ((1, S.npix, 1), (2, S.npix, 2)):
        x = torch.randn(*shape, dtype=F64, requires_grad=True)
        assert torch.autograd.gradcheck(sht, (x,))
        assert torch.autograd.gradgradcheck(sht, (x,))


def test_float32_tolerance():
    # documented float32 tolerance: relative round-trip error <= 1e-5 at L = 32
    L = 32
    sht = SHT(McEwenWiauxSampling(L), L)
    a = _coeffs(L, dtype=torch.float32)
    assert _rel(sht(sht.inverse(a)), a) <= 1e-5


def test_gradcheck():
    L = 4
    S = McEwenWiauxSampling(L)
    sht = SHT(S, L, dtype=F64)
    a = _coeffs(L, batch=1, channels=1).requires_grad_()
    x = torch.randn(1, S.npix, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(sht.inverse, (a,), fast_mode=True)
    assert torch.autograd.gradcheck(sht, (x,), fast_mode=True)


def test_forward_is_a_left_inverse_as_linear_maps():
    # A S = I exactly, and S A is the projection onto band-limited maps (idempotent)
    L = 6
    S = McEwenWiauxSampling(L)
    sht = SHT(S, L, dtype=F64)
    eye = torch.eye(S.npix, dtype=F64)[:, :, None]
    P = sht.inverse(sht(eye))[:, :, 0]  # (npix, npix) rows = P applied to basis maps
    torch.testing.assert_close(P @ P, P, atol=1e-12, rtol=0)
    assert torch.linalg.matrix_rank(P).item() == L * L


def test_bad_input():
    S = McEwenWiauxSampling(8)
    with pytest.raises(ValueError, match="too large"):
        SHT(S, 9)
    sht = SHT(S, 8)
    with pytest.raises(ValueError, match="pixels|shaped"):
        sht(torch.zeros(1, 8 * 15, 1))
    with pytest.raises(ValueError, match="NaN"):
        sht(torch.full((1, S.npix, 1), float("nan")))
