"""Tomographic spectra (pyccl) and correlated log-normal maps."""
import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets._spectra import Cosmology
from deepsphere_gen.datasets.tomography import (
    gaussian_cl_matrix,
    lognormal_maps,
    redshift_bins,
    tomographic_cl,
    tomographic_shifts,
)

FID = Cosmology(0.3, 0.8)


def test_redshift_bins_hold_equal_counts():
    z, nz, edges = redshift_bins(3)
    counts = np.trapezoid(nz, z, axis=1)
    np.testing.assert_allclose(counts / counts.sum(), 1 / 3, atol=0.01)
    assert np.all(np.diff(edges) > 0) and edges[0] == 0


def test_spectra_match_a_direct_pyccl_call_and_shifts_grow_with_redshift():
    import pyccl

    cl = tomographic_cl(FID, 2, 100)
    cosmo = FID.to_pyccl()
    z, nz, _ = redshift_bins(2)
    t0, t1 = (pyccl.WeakLensingTracer(cosmo, dndz=(z, n)) for n in nz)
    ell = np.arange(2, 101, dtype=float)
    np.testing.assert_allclose(cl[0, 1, 2:], pyccl.angular_cl(cosmo, t0, t1, ell), rtol=1e-10)
    np.testing.assert_array_equal(cl, np.swapaxes(cl, 0, 1))
    shifts = tomographic_shifts(FID, 3)
    assert np.all(shifts > 0) and np.all(np.diff(shifts) > 0)


def test_generated_auto_and_cross_spectra_match_pyccl():
    """Spectra measured on full-sky maps vs theory within cosmic variance (l <= 2 nside)."""
    nside, n_bins, n_maps = 64, 3, 8
    lmax = 3 * nside - 1
    cl = tomographic_cl(FID, n_bins, lmax)
    lam = tomographic_shifts(FID, n_bins)
    cl_g, clipped = gaussian_cl_matrix(cl, lam)
    assert clipped < 1e-6
    meas = np.zeros_like(cl)
    for r in range(n_maps):
        maps = lognormal_maps(cl_g, lam, nside, np.random.default_rng(r))
        assert maps.shape == (n_bins, 12 * nside**2) and np.all(maps > -lam[:, None])
        alms = [hp.map2alm(hp.reorder(m, n2r=True), lmax=lmax, iter=3) for m in maps]
        for i in range(n_bins):
            for j in range(n_bins):
                meas[i, j] += hp.alm2cl(alms[i], alms[j]) / n_maps
    edges = [2, 12, 24, 40, 64, 96, 129]
    for i in range(n_bins):
        for j in range(i, n_bins):
            for a, b in zip(edges[:-1], edges[1:]):
                ell = np.arange(a, b)
                ratio = meas[i, j, a:b].sum() / cl[i, j, a:b].sum()
                # Gaussian cosmic variance of the band (the log-normal adds a little)
                err = np.sqrt(np.sum((cl[i, i, a:b] * cl[j, j, a:b] + cl[i, j, a:b] ** 2) / (2 * ell + 1)) / n_maps)
                err /= cl[i, j, a:b].sum()
                assert abs(ratio - 1) < 4 * err + 0.01, (i, j, a, b, ratio, err)


def test_maps_are_reproducible_from_the_rng():
    cl = tomographic_cl(FID, 2, 47)
    lam = tomographic_shifts(FID, 2)
    g, _ = gaussian_cl_matrix(cl, lam)
    a = lognormal_maps(g, lam, 16, np.random.default_rng(5))
    b = lognormal_maps(g, lam, 16, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="redshift bins"):
        redshift_bins(0)
    with pytest.raises(ValueError, match="shifts"):
        gaussian_cl_matrix(np.zeros((2, 2, 10)), np.array([1.0, -1.0]))


def test_the_grid_refuses_bins_out_of_range_before_any_work():
    """CosmoGridConfig checks n_bins with tomography's rule (was: a positive integer only, so 50 bins passed until
    the generation, after its plan line); the rule's name is the caller's."""
    from deepsphere_gen.datasets.cosmo_grid import CosmoGridConfig
    from deepsphere_gen.datasets.tomography import MAX_BINS, check_n_bins

    for bad in (0, MAX_BINS + 1, 50, 1.5, True):
        with pytest.raises(ValueError, match=rf"n_bins must be an integer in \[1, {MAX_BINS}\], got {bad!r}"):
            CosmoGridConfig(n_bins=bad)
        with pytest.raises(ValueError, match=r"--bins must be an integer in \[1, 8\]"):
            check_n_bins(bad, "--bins")
    assert CosmoGridConfig(n_bins=MAX_BINS).n_bins == len(redshift_bins(MAX_BINS)[1]) == MAX_BINS
