"""Orthonormal associated Legendre functions and real harmonics vs scipy and analytic facts."""
import numpy as np
import pytest
import scipy.special as sp

from deepsphere_gen.harmonic import normalized_legendre, real_spherical_harmonics


def test_matches_scipy_without_condon_shortley():
    L = 12
    theta = np.linspace(0, np.pi, 17)
    tab = normalized_legendre(L, theta)
    assert tab.shape == (L, L, theta.size)
    for ell in range(L):
        for m in range(ell + 1):
            ref = (-1) ** m * sp.sph_harm_y(ell, m, theta, 0.0).real
            np.testing.assert_allclose(tab[m, ell], ref, atol=1e-14, rtol=1e-12)
    # zero where l < m
    assert np.all(tab[np.tril_indices(L, -1)] == 0)


def test_real_harmonics_match_scipy():
    L = 7
    rng = np.random.default_rng(1)
    theta, phi = rng.uniform(0, np.pi, 20), rng.uniform(0, 2 * np.pi, 20)
    Y = real_spherical_harmonics(L, theta, phi)
    for ell in range(L):
        for m in range(-ell, ell + 1):
            c = sp.sph_harm_y(ell, abs(m), theta, phi)  # Condon-Shortley, healpy's complex basis
            if m > 0:
                ref = np.sqrt(2) * (-1) ** m * c.real
            elif m < 0:
                ref = np.sqrt(2) * (-1) ** m * c.imag
            else:
                ref = c.real
            np.testing.assert_allclose(Y[:, ell * ell + ell + m], ref, atol=1e-13)


def test_orthonormal_under_gauss_legendre_quadrature():
    L = 20
    x, w = np.polynomial.legendre.leggauss(L)
    tab = normalized_legendre(L, np.arccos(x))
    for m in range(L):
        gram = 2 * np.pi * (tab[m] * w) @ tab[m].T
        expect = np.diag((np.arange(L) >= m).astype(float))
        np.testing.assert_allclose(gram, expect, atol=1e-13)


def test_stable_at_L1024_near_the_poles():
    L = 1024
    theta = np.array([0.0, 1e-10, 1e-5, 1e-3, 0.5, np.pi / 2, np.pi - 1e-3, np.pi - 1e-5, np.pi - 1e-10, np.pi])
    tab = normalized_legendre(L, theta)
    assert np.all(np.isfinite(tab))
    # Unsold: sum_m |Y_l^m|^2 = (2l+1)/(4pi) at every theta
    total = tab[0] ** 2 + 2 * np.sum(tab[1:] ** 2, axis=0)
    ell = np.arange(L)
    np.testing.assert_allclose(total, np.broadcast_to(((2 * ell + 1) / (4 * np.pi))[:, None], total.shape), rtol=1e-9)
    # at the poles only m = 0 survives; parity lambda(pi - t) = (-1)^(l+m) lambda(t)
    assert np.all(tab[1:, :, 0] == 0) and np.all(tab[1:, :, -1] == 0)
    m, l_ = np.meshgrid(np.arange(L), ell, indexing="ij")
    par = np.where((l_ + m) % 2 == 0, 1.0, -1.0)
    np.testing.assert_allclose(tab[:, :, 6], par * tab[:, :, 3], rtol=1e-9, atol=1e-12)


def test_sectoral_values_do_not_underflow_to_garbage():
    # lambda_m^m(theta) ~ sin(theta)^m: 1e-5^1000 is far below the float64 range -> exact 0, never NaN
    tab = normalized_legendre(1024, np.array([1e-5]), 1000, 1024)
    assert np.all(np.isfinite(tab)) and np.all(tab == 0)


def test_chunks_equal_full_table():
    L = 40
    theta = np.linspace(0.01, 3.1, 9)
    full = normalized_legendre(L, theta)
    parts = [normalized_legendre(L, theta, a, min(L, a + 7)) for a in range(0, L, 7)]
    np.testing.assert_array_equal(np.concatenate(parts), full)


@pytest.mark.parametrize(
    "args",
    [(0, [0.1]), (2.5, [0.1]), (4, [-0.1]), (4, [4.0]), (4, [np.nan]), ("x", [0.1])],
)
def test_bad_input(args):
    with pytest.raises(ValueError):
        normalized_legendre(*args)


def test_bad_order_range_and_points():
    with pytest.raises(ValueError, match="order range"):
        normalized_legendre(4, [0.1], 3, 6)
    with pytest.raises(ValueError, match="equal length"):
        real_spherical_harmonics(4, [0.1, 0.2], [0.0])
