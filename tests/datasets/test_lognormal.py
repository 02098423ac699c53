"""C_l <-> xi transforms and shifted log-normal synthesis."""
import healpy as hp
import numpy as np
import pytest
from scipy.stats import lognorm, skew

from deepsphere_gen.datasets._lognormal import (
    cl_to_xi,
    field_variance,
    gauss_legendre,
    lognormal_gaussian_cl,
    lognormal_map,
    lognormal_skewness,
    synthesize_alm,
    xi_to_cl,
)


def test_cl_xi_roundtrip_and_variance():
    rng = np.random.default_rng(0)
    cl = rng.random(41)
    mu, w = gauss_legendre(40)
    xi = cl_to_xi(cl, mu)
    np.testing.assert_allclose(xi_to_cl(xi, mu, w, 40), cl, rtol=1e-10, atol=1e-12)
    assert cl_to_xi(cl, np.array([1.0]))[0] == pytest.approx(field_variance(cl))


def test_xi_matches_healpy_bl2beam():
    """xi(theta) = sum (2l+1)/(4 pi) C_l P_l: compare with healpy's beam profile (same Legendre sum)."""
    cl = np.exp(-np.arange(30) / 5.0)
    theta = np.linspace(0, 1.0, 7)
    np.testing.assert_allclose(cl_to_xi(cl, np.cos(theta)), hp.bl2beam(cl, theta),
                               rtol=1e-10)


def test_gaussian_cl_small_amplitude_limit_and_exact_inverse():
    ell = np.arange(65)
    cl = np.where(ell >= 2, 1e-9 / (ell + 1.0) ** 1.2, 0.0)
    shift = 0.03
    cl_g = lognormal_gaussian_cl(cl, shift)
    # weak field: xi_G ~ xi / shift^2
    np.testing.assert_allclose(cl_g[2:], cl[2:] / shift**2, rtol=0.02)
    # the log-normal field built from C_l^G reproduces C_l (xi = shift^2 (exp(xi_G) - 1))
    mu, w = gauss_legendre(64)
    back = xi_to_cl(shift**2 * np.expm1(cl_to_xi(cl_g, mu)), mu, w, 64)
    np.testing.assert_allclose(back[2:], cl[2:], rtol=1e-4)


def test_gaussian_cl_rejects_small_shift():
    cl = np.r_[0, 0, np.full(20, 1e-3)]
    with pytest.raises(ValueError, match="shift"):
        lognormal_gaussian_cl(cl, 0.0)
    with pytest.raises(ValueError, match="too small"):
        lognormal_gaussian_cl(-cl, 0.01)


def test_skewness_formula_matches_scipy_lognormal():
    for s in (0.05, 0.3, 1.0):
        shift = 0.7
        var = shift**2 * np.expm1(s**2)
        expected = float(lognorm(s).stats(moments="s"))
        assert lognormal_skewness(var, shift) == pytest.approx(expected, rel=1e-10)


def test_synthesize_alm_spectrum_and_seed():
    cl = np.r_[0.0, 0.0, np.linspace(1, 2, 199)]
    alm = synthesize_alm(cl, np.random.default_rng(1))
    _, m = hp.Alm.getlm(200)
    assert np.all(alm[m == 0].imag == 0)
    measured = hp.alm2cl(alm)
    ell = np.arange(201)
    z = (measured[2:] - cl[2:]) / (cl[2:] * np.sqrt(2 / (2 * ell[2:] + 1)))
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and 0.8 < z.std() < 1.2
    np.testing.assert_array_equal(alm, synthesize_alm(cl, np.random.default_rng(1)))


def test_lognormal_map_one_point_distribution():
    """Pixel values of kappa = lam (exp(G - var/2) - 1): bound, mean, variance, skewness."""
    nside, lmax, shift = 32, 95, 0.01
    ell = np.arange(lmax + 1)
    cl = np.where(ell >= 2, 3e-6 / (ell + 10.0), 0.0)
    cl_g = lognormal_gaussian_cl(cl, shift)
    var_g = field_variance(cl_g)
    maps = [lognormal_map(cl_g, shift, nside, np.random.default_rng(i)) for i in range(8)]
    assert all(m.min() > -shift for m in maps)
    var = shift**2 * np.expm1(var_g)
    assert np.mean([m.var() for m in maps]) == pytest.approx(var, rel=0.1)
    sk = np.array([skew(m) for m in maps])
    pred = lognormal_skewness(var, shift)
    assert pred > 0.5  # clearly non-Gaussian
    assert abs(sk.mean() - pred) < 4 * sk.std(ddof=1) / np.sqrt(sk.size)
