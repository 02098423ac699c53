"""pyccl spectra, log-normal shift, beam and pixel window of the mass-map generator."""
from pathlib import Path

import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets._spectra import (
    COSMOLOGIES,
    Cosmology,
    convergence_cl,
    empty_beam_convergence,
    gaussian_beam,
    hilbert2011_shift,
    lognormal_shift,
    pixel_window,
    source_nz,
)

DATA = Path(__file__).resolve().parents[2] / "data"


def test_cl_matches_shipped_reference_and_is_cached():
    ref = np.load(DATA / "massmaps_reference_cl.npz")
    for c, cosmo in enumerate(COSMOLOGIES):
        cl = convergence_cl(cosmo, 300)
        assert cl.shape == (301,) and cl[0] == cl[1] == 0 and np.all(cl[2:] > 0)
        np.testing.assert_allclose(cl[2:], ref[f"cl_kappa_{c}"][2:301], rtol=1e-6)
        assert convergence_cl(cosmo, 300) is cl  # computed once
        assert not cl.flags.writeable


def test_two_cosmologies_nearly_degenerate_in_cl():
    a, b = (convergence_cl(c, 1000) for c in COSMOLOGIES)
    ratio = b[2:] / a[2:]
    ell = np.arange(2, 1001)
    # measured: 1.30 at l=10, 1.16 at l=30, 1.03-1.05 for 100 <= l <= 1000
    assert np.all(np.abs(ratio[ell >= 30] - 1) < 0.20)
    assert np.all(np.abs(ratio[ell >= 100] - 1) < 0.06)
    assert np.max(np.abs(ratio[ell >= 100] - 1)) > 0.01  # not identical


def test_source_nz_normalised_and_smail_median():
    z, nz = source_nz()
    assert np.trapezoid(nz, z) == pytest.approx(1.0, rel=1e-9)
    cdf = np.cumsum(nz) / nz.sum()
    assert 0.8 < z[np.searchsorted(cdf, 0.5)] < 1.0  # Euclid-like median ~0.9


def test_hilbert_fit_and_cosmology_dependent_shift():
    assert hilbert2011_shift(1.0) == pytest.approx(0.008 + 0.029 - 0.0079 + 0.00065)
    s0, s1 = (lognormal_shift(c) for c in COSMOLOGIES)
    e0, e1 = (empty_beam_convergence(c) for c in COSMOLOGIES)
    assert 0.02 < s1 < s0 < 0.05  # lower Omega_m -> smaller shift -> more skewed
    assert s1 / s0 == pytest.approx(e1 / e0, rel=1e-12)
    # the shift is a fraction of the physical bound |kappa_empty|
    assert s0 < e0 and s1 < e1


def test_bad_cosmology_and_lmax():
    with pytest.raises(ValueError, match="omega_m"):
        Cosmology(1.2, 0.8)
    with pytest.raises(ValueError, match="sigma8"):
        Cosmology(0.3, -1)
    with pytest.raises(ValueError, match="lmax"):
        convergence_cl(COSMOLOGIES[0], 1)
    for bad in (-1.0, float("nan"), float("inf")):  # NaN gave NaN beams, inf a NaN at l = 0
        with pytest.raises(ValueError, match="FWHM"):
            gaussian_beam(bad, 10)


def test_gaussian_beam_is_gaussian_in_l():
    b = gaussian_beam(3.0, 3000)
    sigma = np.radians(3.0 / 60) / np.sqrt(8 * np.log(2))
    ell = np.arange(3001)
    np.testing.assert_allclose(b, np.exp(-ell * (ell + 1) * sigma**2 / 2), rtol=1e-10)


def test_pixel_window_against_pixel_averaging():
    """w_l of nside 16 equals the cross-spectrum ratio of a band-limited field averaged into pixels."""
    nside, lmax, up = 16, 40, 8
    rng = np.random.default_rng(3)
    ratios = []
    for _ in range(4):
        ell_idx, m_idx = hp.Alm.getlm(lmax)
        alm = (rng.standard_normal(ell_idx.size) + 1j * rng.standard_normal(ell_idx.size)) / np.sqrt(2)
        alm[m_idx == 0] = alm[m_idx == 0].real * np.sqrt(2)
        fine = hp.reorder(hp.alm2map(alm, nside * up, lmax=lmax, pixwin=False), r2n=True)
        coarse = fine.reshape(-1, up * up).mean(axis=1)  # pixel average over 64 nested sub-pixels
        blm = hp.map2alm(hp.reorder(coarse, n2r=True), lmax=lmax, iter=5, use_pixel_weights=False)
        ratios.append(hp.alm2cl(blm, alm) / hp.alm2cl(alm))
    measured = np.mean(ratios, axis=0)
    w = pixel_window(nside, lmax)
    assert w[0] == 1.0 and np.all(np.diff(w) <= 1e-12)
    # band-averaged over 8 degrees: measured |difference| <= 0.005 (sampling, map2alm error)
    diff = (measured[1:] - w[1:]).reshape(5, 8).mean(axis=1)
    assert np.all(np.abs(diff) < 0.01), diff
    assert w[lmax] < 0.9  # the window matters at high l
