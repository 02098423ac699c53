"""Nested base patches as square images and their FFT band powers, against healpy."""
import math

import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets.patch_psd import fft_band_powers, fft_ell, patch_square_order, to_square


@pytest.mark.parametrize("nside, level", [(16, 0), (64, 2)])
def test_square_image_neighbours_are_sphere_neighbours(nside, level):
    side = nside >> level
    npatch, n = 12 * 4**level, side * side
    d = math.sqrt(4 * math.pi / (12 * nside**2))
    for p in (0, npatch // 2 + 1, npatch - 1):
        pix = (p * n + np.arange(n))[patch_square_order(side)].reshape(side, side)
        v = np.stack(hp.pix2vec(nside, pix, nest=True), axis=-1)
        for axis in (0, 1):
            a, b = v.take(range(1, side), axis), v.take(range(side - 1), axis)
            ang = np.arccos(np.clip(np.sum(a * b, axis=-1), -1, 1))
            assert ang.max() < 1.6 * d and ang.min() > 0.4 * d
    # a permutation of the patch
    assert np.array_equal(np.sort(patch_square_order(side)), np.arange(n))


def test_to_square_errors():
    with pytest.raises(ValueError, match="side\\^2 pixels"):
        to_square(np.zeros((2, 48)))
    with pytest.raises(ValueError, match="hold no FFT mode"):
        fft_band_powers(np.zeros((1, 8, 8)), 8, np.array([2.0, 2.1, 3.0]))
    with pytest.raises(ValueError, match="increasing"):
        fft_band_powers(np.zeros((1, 8, 8)), 8, np.array([5.0, 3.0]))


def test_fft_band_powers_match_anafast_on_the_full_sky():
    """The 12 base patches of Gaussian maps: FFT band powers agree with anafast's C_l within 10 %
    for l >= 30 (the curved rhombus and the window matter at the lowest multipoles only)."""
    nside, lmax = 64, 191
    ell = np.arange(lmax + 1)
    cl = np.zeros(lmax + 1)
    cl[2:] = 1.0 / (ell[2:] + 10.0) ** 2
    rng_seed = 3
    np.random.seed(rng_seed)
    edges = np.array([30, 45, 60, 80, 100, 130])
    ratios = []
    for _ in range(6):
        m = hp.synfast(cl, nside, lmax=lmax)
        an = hp.anafast(m, lmax=lmax, iter=0)
        ref = np.array([an[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
        bp = fft_band_powers(to_square(hp.reorder(m, r2n=True).reshape(12, -1)), nside, edges).mean(0)
        ratios.append(bp / ref)
    ratios = np.mean(ratios, axis=0)
    assert np.all(np.abs(ratios - 1) < 0.1), ratios
    # and the estimator sees a 20 % change of amplitude
    m2 = hp.synfast(1.2 * cl, nside, lmax=lmax)
    bp2 = fft_band_powers(to_square(hp.reorder(m2, r2n=True).reshape(12, -1)), nside, edges).mean(0)
    ref2 = np.array([cl[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    assert np.all(np.abs(bp2 / ref2 / 1.2 - 1) < 0.15) and np.mean(bp2 / ref2) > 1.1
    # Nyquist along an axis: l = pi / d, d the pixel spacing
    assert abs(fft_ell(64, nside)[0, 32] - math.pi / math.sqrt(4 * math.pi / (12 * nside**2))) < 1e-9
