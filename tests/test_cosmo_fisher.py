"""Fisher forecast of the power-spectrum analysis: Knox covariance, analytic amplitude case, f_sky scaling."""
import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets.cosmo_grid import CosmoGridConfig
from deepsphere_gen.experiments.cosmo.fisher import (
    band_average,
    fisher_matrix,
    knox_covariance,
    marginal_errors,
    power_spectrum_forecast,
)


def test_amplitude_error_matches_the_analytic_mode_count():
    # one field, flat signal S and noise N: C_l = A S + N; band b of width dl gives
    # F_AA = sum_b S^2 dl^2 f_sky / (2 (S + N)^2 sum_{l in b} 1 / (2l + 1))
    S, N, fsky, lmax = 2.0, 0.5, 0.1, 60
    edges = np.array([5, 12, 30, 61])
    signal = np.full((1, 1, lmax + 1), S)
    total = signal + N
    fisher = fisher_matrix(band_average(signal, edges)[None], knox_covariance(total, edges, fsky))
    ell = np.arange(lmax + 1)
    expect = sum(S**2 * (hi - lo) ** 2 * fsky / (2 * (S + N) ** 2 * np.sum(1 / (2 * ell[lo:hi] + 1)))
                 for lo, hi in zip(edges[:-1], edges[1:]))
    assert fisher[0, 0] == pytest.approx(expect, rel=1e-12)
    assert marginal_errors(fisher)[0] == pytest.approx(expect**-0.5, rel=1e-12)


def test_knox_covariance_equals_simulated_gaussian_spectra():
    # two correlated full-sky Gaussian fields (healpy synalm): the scatter of the band averages
    # of C^00, C^01, C^11 matches the Knox covariance at f_sky = 1
    lmax, n = 40, 600
    ell = np.arange(lmax + 1)
    c00 = 1.0 / (ell + 5.0) ** 1.5
    c11 = 0.5 / (ell + 3.0)
    c01 = 0.6 * np.sqrt(c00 * c11)
    edges = np.array([4, 10, 20, 41])
    np.random.seed(1)
    samples = []
    for _ in range(n):
        a = hp.synalm([c00, c11, c01], lmax=lmax, new=True)  # new ordering: TT, EE, TE ~ 00, 11, 01
        cl = np.array([[hp.alm2cl(a[0]), hp.alm2cl(a[0], a[1])], [hp.alm2cl(a[1], a[0]), hp.alm2cl(a[1])]])
        samples.append(band_average(cl, edges))
    theory = np.array([[c00, c01], [c01, c11]])
    cov = knox_covariance(theory, edges, 1.0)
    sim = np.cov(np.array(samples), rowvar=False)
    diag = np.diag(sim) / np.diag(cov)
    assert np.all(np.abs(diag - 1) < 0.2)  # 600 samples: 6 % scatter of a variance
    corr = lambda c: c / np.sqrt(np.outer(np.diag(c), np.diag(c)))  # noqa: E731
    np.testing.assert_allclose(corr(sim), corr(cov), atol=0.12)  # cross-pair correlations within a band, 0 across
    np.testing.assert_allclose(np.mean(samples, 0), band_average(theory, edges), rtol=0.05)


def test_forecast_scales_with_the_sky_fraction():
    grid = CosmoGridConfig(nside=32, n_bins=2, n_train=2, n_test=1)
    npix = 12 * 32**2
    edges = np.array([8, 16, 32, 64])
    half, quarter = np.arange(npix) < npix // 2, np.arange(npix) < npix // 4
    a = power_spectrum_forecast(grid, [0.01, 0.01], mask=half, edges=edges)
    b = power_spectrum_forecast(grid, [0.01, 0.01], mask=quarter, edges=edges)
    assert b["fsky"] == pytest.approx(0.25)
    for key in ("omega_m", "s8", "sigma8"):
        assert b[key] / a[key] == pytest.approx(np.sqrt(2), rel=1e-9)  # Knox: errors ~ f_sky^-1/2
    noisier = power_spectrum_forecast(grid, [0.05, 0.05], mask=half, edges=edges)
    assert noisier["s8"] > a["s8"]
    assert a["s8_with_box_prior"] <= a["s8"] + 1e-12
    with pytest.raises(ValueError, match="noise_std"):
        power_spectrum_forecast(grid, [0.01], mask=half, edges=edges)
